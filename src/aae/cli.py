"""The ``aae`` command: train | eval | sample | plot | demo | reproduce | configs.

Every error a user can fix ends in one line on stderr (``aae: error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys

from ._version import __version__
from .commands import cmd_configs, cmd_demo, cmd_eval, cmd_plot, cmd_reproduce, cmd_sample, cmd_train
from .errors import AAEError, ConfigError, one_line
from .files import sigterm_unclaimed

log = logging.getLogger("aae")

TRAIN_HELP = """\
Train one experiment. The config is a TOML file (or the name of a bundled one, see
`aae configs`) with the tables [model], [train], [data], [eval]; --set overrides any key.

{keys}

The run directory (--out) receives checkpoint.safetensors, config.json, metrics.jsonl and
figures/. A killed run continues from its last checkpoint with --resume.

example: aae train --config mnist_mixture_aae --set train.epochs=5 --out runs/mix
several processes (each takes every N-th minibatch; train.batch_size is per process):
  torchrun --standalone --nproc-per-node N -m aae.cli train --config mnist_semi_1000 --out runs/semi
"""


def _configure_logging(quiet: bool) -> None:
    if not any(getattr(h, "_aae_cli", False) for h in log.handlers):  # once, however often main() runs
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._aae_cli = True
        log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="TOML config file, or a bundled config's name")
    p.add_argument(
        "--set",
        "-s",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=5 (repeatable)",
    )
    p.add_argument(
        "--data",
        help="data set: mnist, digits, svhn, a .npy/.npz path, an IDX directory or a folder of pictures "
        "(= --set data.name=...)",
    )
    p.add_argument("--data-dir", help="directory holding data sets (default: $AAE_DATA_DIR, else ~/.cache/aae)")
    p.add_argument("--epochs", type=int, help="number of epochs (= --set train.epochs=N)")
    p.add_argument("--seed", type=int, help="random seed (= --set train.seed=N)")
    _runtime_args(p)


def _runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's own choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    from .config.docs import key_lines

    parser = argparse.ArgumentParser(
        prog="aae", description="Adversarial Autoencoders (Makhzani et al., 2015) on PyTorch."
    )
    parser.add_argument("--version", action="version", version=f"aae {__version__}")
    parser.add_argument("--quiet", "-q", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train one experiment",
        description=TRAIN_HELP.format(keys=key_lines()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _experiment_args(p)
    p.add_argument("--out", "-o", help="run directory (default: runs/<config name>)")
    p.add_argument("--log-dir", help="also write TensorBoard event files here (needs the tensorboard package)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument("--no-figures", action="store_true", help="skip the figures at the end")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="print a trained run's test metrics")
    p.add_argument("--run", "-r", required=True, help="run directory")
    p.add_argument("--data-dir", help="directory holding data sets")
    p.add_argument(
        "--tta-shift",
        type=int,
        metavar="K",
        help="measure q(y|x) as its mean over every shift of the "
        "image by up to K pixels (default: the run's eval.tta_shift); the validation error printed "
        "beside the test error judges K without the test set",
    )
    p.add_argument(
        "--clusters",
        action="store_true",
        help="also print each cluster's test classes and its label "
        "by the paper's protocol and by validation majority, with the error each costs",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="also record the metrics in the run's final.json (what "
        "`aae reproduce` tables read), to re-measure finished runs after a fix to the evaluation",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("plot", help="(re)draw a trained run's figures")
    p.add_argument("--run", "-r", required=True, help="run directory")
    p.add_argument("--data-dir", help="directory holding data sets")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("sample", help="decode samples of the prior")
    p.add_argument("--run", "-r", required=True, help="run directory")
    p.add_argument("-n", type=int, default=100, help="number of samples (default 100)")
    p.add_argument("--label", type=int, help="class (supervised), category (y head) to decode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-shape", type=int, nargs="+", help="image shape for the PNG grid, e.g. 28 28")
    p.add_argument("--out", "-o", default="samples.png", help=".png grid or .npy array (default samples.png)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("demo", help="train a small AAE on scikit-learn's digits and write its figures (no download)")
    p.add_argument("--out", "-o", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument("--epochs", type=int, help="epochs (default: the demo config's)")
    _runtime_args(p)
    p.set_defaults(func=cmd_demo)

    sub.add_parser("configs", help="list the bundled configs").set_defaults(func=cmd_configs)

    from .paper.reproduce import EXPERIMENTS, add_arguments

    p = sub.add_parser("reproduce", help="run a paper result and print ours beside the paper's")
    p.add_argument("experiment", choices=sorted(EXPERIMENTS), help="which result")
    add_arguments(p)
    p.set_defaults(func=cmd_reproduce)
    return parser


class Terminated(BaseException):
    """SIGTERM, raised in the command's thread so that it stops as Ctrl-C does: every file whole,
    no temporary file left, the run's lock released."""


@contextlib.contextmanager
def _sigterm_stops_the_command():
    """SIGTERM raises :class:`Terminated` for the command's length (where it would otherwise end the
    process without running any code: no handler of the caller's own, on the main thread)."""

    def stop(signum, frame):
        raise Terminated

    mine = sigterm_unclaimed()
    if mine:
        signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        if mine:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stopped(args, how: str) -> str:
    again = (
        "the same command again continues every run from its last checkpoint"
        if args.func is cmd_reproduce
        else "a training run continues from its last checkpoint with --resume"
    )
    return f"aae: {how}; {again}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.quiet)
    from .files import os_error_line
    from .training.devices import flush_denormals
    from .training.distributed import finish

    # the whole command flushes subnormal floats: set before torch starts its worker threads, which
    # inherit the setting (each thread has its own), and restored for an in-process caller after
    with flush_denormals(), _sigterm_stops_the_command():
        try:
            if getattr(args, "threads", 0):
                if not 0 <= args.threads <= MAX_THREADS:
                    raise ConfigError(
                        f"--threads {args.threads} is not allowed; give 1 to {MAX_THREADS} (0: torch's choice)"
                    )
                import torch

                torch.set_num_threads(args.threads)
            args.func(args)
        except AAEError as exc:
            return _error(str(exc))
        except OSError as exc:  # permission denied, disk full, a name too long, a folder where a file goes
            return _error(os_error_line(exc))
        except MemoryError:
            return _error("out of memory: the sizes asked for are too large for this machine; ask for less")
        except RuntimeError as exc:
            if not _out_of_memory(exc):
                raise
            return _error(f"out of memory ({one_line(exc)[:200]}); ask for less")
        except RecursionError:
            return _error("an input is nested too deeply (a list or table thousands of levels deep); flatten it")
        except KeyboardInterrupt:
            print(_stopped(args, "interrupted"), file=sys.stderr)
            return 130
        except Terminated:
            print(_stopped(args, "terminated"), file=sys.stderr)
            return 128 + signal.SIGTERM
        finish(0)  # under torchrun: wait for the other processes, then exit (returns at once otherwise)
    return 0


MAX_THREADS = 4096


def _error(message: str) -> int:
    print(f"aae: error: {message}", file=sys.stderr)
    return 2


def _out_of_memory(exc: RuntimeError) -> bool:
    """Whether torch's allocator ran out (it raises RuntimeError, not MemoryError)."""
    text = str(exc)
    return "can't allocate memory" in text or "out of memory" in text.lower() or "not enough memory" in text


if __name__ == "__main__":
    sys.exit(main())
