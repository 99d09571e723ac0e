"""Writing files: every file aae writes goes through here, so that every write

- goes to the path asked for and nowhere else: never through a symbolic link (a link where a file
  or a run's folder goes is refused, one line), nor into a file that is also linked elsewhere
  (a hard link) where it appends in place;
- is atomic: to a temporary name beside the file, flushed, then renamed into place, so a reader
  sees the old file or the new one, never half of one;
- has the mode the umask gives (``0o666 & ~umask``), as ``open()`` would, not the temporary
  file's 0600;
- leaves no temporary file behind, whether an error or a SIGTERM stops it (where no handler of
  the program's own is set for SIGTERM, one is set for the length of the write that removes the
  temporary file and then ends the process as SIGTERM would).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import PathError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_TEMPORARY: set[str] = set()
"""temporary files being written, removed by :func:`_on_sigterm`"""
_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux), else read
    by setting it and setting it back."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # pragma: no cover - not Linux
        old = os.umask(0o077)
        os.umask(old)
    return old


def file_mode() -> int:
    """The mode of a new file: what ``open()`` gives, 0o666 less the umask."""
    return 0o666 & ~umask()


def refuse_links(path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    """Refuse (:class:`~aae.errors.PathError`) to write ``path`` where it is a symbolic link or, below
    ``root`` (a run directory, say), one of its folders is one. ``root`` itself may be a link: the
    user chose it."""
    path = Path(path)
    links = [path]
    if root is not None:
        with contextlib.suppress(ValueError):
            below = Path(root)
            for part in path.relative_to(root).parts[:-1]:
                below = below / part
                links.append(below)
    for p in links:
        if p.is_symlink():
            raise PathError(
                f"{p} is a symbolic link; aae never writes through one: remove the link, or choose another path"
            )


def make_dirs(folder: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Create ``folder`` and its parents, refusing a symbolic link below ``root`` on the way."""
    folder = Path(folder)
    if root is not None:
        refuse_links(folder / "_", root)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_writable(folder: str | os.PathLike, what: str = "the run directory") -> None:
    """Refuse (:class:`~aae.errors.ConfigError`), before any data is read, a folder that cannot be
    made and written: under a file, under a folder not writable, or a name too long."""
    from .errors import ConfigError

    folder = Path(folder)
    try:
        first = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    except OSError as exc:
        raise ConfigError(f"cannot write {what} {folder}: {os_error_line(exc)}") from None
    try:
        longest = os.pathconf(first, "PC_NAME_MAX") if first.is_dir() else 255
    except (OSError, ValueError):
        longest = 255
    too_long = next((part for part in folder.parts if len(os.fsencode(part)) > longest), None)
    if too_long is not None:
        raise ConfigError(
            f"cannot write {what} {folder}: file name too long ({len(too_long)} characters, "
            f"at most {longest}); choose a shorter name"
        )
    if not first.is_dir():
        raise ConfigError(f"cannot write {what} {folder}: {first} is a file, not a directory")
    if not os.access(first, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} {folder}: {first} is not writable")


def replace_own(path: str | os.PathLike, text: str, first_line: str) -> Path:
    """Write ``text`` (whose first line is ``first_line``) to ``path`` (:func:`atomic_write`), refusing
    to replace a file there that does not begin with the same line: a file of the same name that the
    command did not write (a README.md in the folder given as --out, say)."""
    check_own(path, first_line)
    return atomic_write(path, text)


def check_own(path: str | os.PathLike, first_line: str) -> None:
    """Refuse (:class:`~aae.errors.PathError`) a file at ``path`` that does not begin with ``first_line``."""
    path = Path(path)
    if path.is_file() and not path.is_symlink():
        try:
            with open(path, "rb") as f:
                head = f.readline(4096).decode("utf-8", "replace").rstrip("\n")
        except OSError as exc:
            raise _named(exc, path) from None
        if head != first_line:
            raise PathError(f"{path} is a file aae did not write; move it away, or choose another --out")


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (the file asked for, not the temporary one)."""
    if exc.errno is None:
        return exc
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def atomic_write(path: str | os.PathLike, data: bytes | str, root: str | os.PathLike | None = None) -> Path:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half of
    one; never through a symbolic link (at ``path``, or below ``root`` on its way), with the mode
    the umask gives. An OSError names ``path``."""
    path = Path(path)
    refuse_links(path, root)
    try:
        make_dirs(path.parent, root)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:200]}.", suffix=".tmp")
    except OSError as exc:
        raise _named(exc, path) from None
    with _removed_on_sigterm(tmp):
        try:
            os.fchmod(fd, file_mode())
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _named(exc, path) from None
            raise
    return path


def open_own(path: str | os.PathLike, flags: int) -> int:
    """``os.open`` of a file that is the command's own: never through a symbolic link, and refused
    where the file is not a plain file or has other names (a hard link), since writing it in place
    would change a file elsewhere. New files get the mode the umask gives. Returns the descriptor."""
    path = Path(path)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) or path.is_symlink():
            refuse_links(path)
        raise _named(exc, path) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        what = "has other names (a hard link)" if stat.S_ISREG(info.st_mode) else "is not a plain file"
        raise PathError(f"{path} {what}; aae writes only files of its own there: move it away")
    if _NONBLOCK:
        os.set_blocking(fd, True)
    return fd


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing), never through a link (:func:`open_own`)."""
    fd = open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        with os.fdopen(fd, "a", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise _named(exc, Path(path)) from None


def sigterm_unclaimed() -> bool:
    """Whether SIGTERM would end the process without running any code (no handler of the program's
    own) and this thread, the main one, may install one."""
    return threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    )


@contextlib.contextmanager
def _removed_on_sigterm(tmp: str) -> Iterator[None]:
    """While ``tmp`` is written: where SIGTERM would end the process without running any code (no
    handler of the program's own), a handler that removes it first."""
    _TEMPORARY.add(tmp)
    guard = sigterm_unclaimed()
    if guard:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        _TEMPORARY.discard(tmp)
        if guard and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _on_sigterm(signum, frame) -> None:
    for tmp in list(_TEMPORARY):
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # end as SIGTERM would have


_ADVICE = {
    errno.EACCES: "permission denied; choose a folder you may write (--out), or change its permissions",
    errno.EPERM: "operation not permitted; choose a folder you may write (--out), or change its permissions",
    errno.ENOSPC: "no space left on the device; free some space, or choose a folder on another disk",
    errno.EDQUOT: "disk quota exceeded; free some space, or choose a folder on another disk",
    errno.ENAMETOOLONG: "file name too long; choose a shorter name",
    errno.EISDIR: "a directory is where a file goes; move it away, or choose another name",
    errno.ENOTDIR: "a part of the path is a file, not a directory; choose another path",
    errno.EROFS: "read-only file system; choose a folder on a writable disk",
    errno.EEXIST: "a file is where a folder goes; move it away, or choose another path",
    errno.ELOOP: "too many levels of symbolic links; give the real path",
    errno.ENOENT: "no such file or directory; check the path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or run fewer at once",
    errno.EFBIG: "file too large for this file system; choose a folder on another disk",
}


def os_error_line(exc: OSError) -> str:
    """An OSError as one line: the path, what went wrong, and what to do."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = _ADVICE.get(exc.errno) or f"{exc.strerror or exc}; check the path and try again"
    return f"{where}: {what}" if where else what
