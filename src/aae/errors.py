"""Errors a user can act on. The CLI prints their message as one line and exits 2."""


class AAEError(Exception):
    """Base class: the message names what is wrong and what to do."""


class ConfigError(AAEError, ValueError):
    """A config key, value or argument is not allowed."""


class DataError(AAEError, ValueError):
    """A data file is missing, truncated, corrupt, or has the wrong shape or labels."""


class CheckpointError(AAEError):
    """A checkpoint or run directory cannot be read."""


class PathError(AAEError):
    """A path is not the command's to write: a symbolic link, a hard link, or a folder holding files
    of someone else's."""


class TrainingError(AAEError, RuntimeError):
    """Training cannot go on (for example a loss became NaN)."""


def one_line(obj: object) -> str:
    """``str(obj)`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(obj).split())
