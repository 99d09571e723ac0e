"""The ``aae`` command: train | eval | sample | plot | demo | reproduce | configs.

Every error a user can fix ends in one line on stderr (``aae: error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path

from ._version import __version__
from .errors import AAEError, ConfigError, one_line

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


def _config_from(args: argparse.Namespace, base: dict | None = None):
    from .config.load import load_config

    overrides = list(args.set)
    for key, value in (("data.name", args.data), ("train.epochs", args.epochs), ("train.seed", args.seed)):
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    if args.data_dir:
        overrides.append(f"data.data_dir={json.dumps(args.data_dir)}")
    return load_config(args.config, overrides, base=base)


def _print_metrics(metrics: dict) -> None:
    for k, v in metrics.items():
        print(f"{k:28s} {v:.4f}" if isinstance(v, float) else f"{k:28s} {v}")


def cmd_train(args) -> None:
    from .experiment import run
    from .training import distributed

    cfg = _config_from(args)
    out = Path(args.out or f"runs/{Path(args.config).stem if args.config else cfg.name}")
    start = time.perf_counter()
    result = run(
        cfg,
        out,
        resume=args.resume,
        require_checkpoint=args.resume,
        figures=not args.no_figures,
        device=args.device,
        progress=not args.no_progress,
        log_dir=args.log_dir,
    )
    if not distributed.is_main():
        return
    print(f"trained {cfg.name} for {len(result.history)} epochs in {time.perf_counter() - start:.0f} s -> {out}")
    _print_metrics(result.metrics)


def cmd_eval(args) -> None:
    from .config.schema import MAX_SHIFT
    from .evaluation.evaluate import final_metrics, model_cluster_breakdown
    from .experiment import FINAL, open_run, trained_epochs, write_final
    from .files import refuse_links

    if args.write and args.tta_shift is not None:
        raise ConfigError("--write records the run's own evaluation; drop --tta-shift or --write")
    if args.tta_shift is not None and not 0 <= args.tta_shift <= MAX_SHIFT:
        raise ConfigError(f"--tta-shift {args.tta_shift} is not allowed; give 0 to {MAX_SHIFT} pixels")
    if args.write:  # a record is of a finished training: refused before anything is measured
        refuse_links(Path(args.run) / FINAL)
        epoch, epochs = trained_epochs(args.run)
        if epoch < epochs:
            raise ConfigError(
                f"{args.run} has trained {epoch} of its {epochs} epochs: --write records only a finished "
                f"run; finish it first (aae train --out {args.run} --resume, with its config), or drop --write"
            )
    model, cfg, splits = open_run(args.run, args.data_dir, progress=False)
    if args.tta_shift is not None:
        cfg.eval.tta_shift = args.tta_shift
    measured = final_metrics(model, splits, cfg)
    _print_metrics(measured)
    if args.clusters:
        _print_clusters(model_cluster_breakdown(model, splits, cfg))
    if args.write:  # after a fix to the evaluation: the record keeps its other keys (the selected epoch)
        path = Path(args.run) / FINAL
        try:
            record = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError, RecursionError):
            record = {}  # a broken record of the run's own is replaced
        record = record if isinstance(record, dict) else {}
        print(f"wrote {write_final(args.run, {**record, **measured})}")


def _print_clusters(rows: list[dict]) -> None:
    """One line per cluster, the costliest first: its test images, their three commonest classes,
    and its label by the paper's protocol and by validation majority with the test error each costs."""
    print(f"{'cluster':>7} {'size':>5}  {'paper label (cost)':<18}  {'majority (cost)':<16}  classes")
    for r in rows:
        top = sorted(range(len(r["classes"])), key=lambda c: -r["classes"][c])[:3]
        classes = " ".join(f"{c}:{r['classes'][c]}" for c in top if r["classes"][c]) or "(empty)"
        paper, majority = (f"{r[k + '_label']} ({100 * r[k + '_cost']:5.2f} %)" for k in ("paper", "majority"))
        print(f"{r['cluster']:>7} {r['size']:>5}  {paper:<18}  {majority:<16}  {classes}")


def cmd_plot(args) -> None:
    from .experiment import redraw_figures

    for p in redraw_figures(args.run, args.data_dir):
        print(p)


def cmd_sample(args) -> None:
    import io

    import numpy as np
    import torch

    from .config.schema import MAX_GRID, MAX_SEED, MAX_VALUES
    from .estimators.store import data_units
    from .evaluation import grids
    from .files import atomic_write, refuse_links
    from .model.autoencoder import n_categories
    from .training.checkpoint import load, read_checkpoint

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npy"):
        raise ConfigError(f"--out {out}: write a .png grid or a .npy array (not {out.suffix or 'no suffix'!r})")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    most = MAX_GRID if out.suffix.lower() == ".png" else MAX_VALUES
    if not 1 <= args.n <= most:
        raise ConfigError(f"-n {args.n} is not allowed; give 1 to {most} samples (a .png grid: at most {MAX_GRID})")
    if not 0 <= args.seed <= MAX_SEED:
        raise ConfigError(f"--seed {args.seed} is not allowed; give 0 to {MAX_SEED}")
    refuse_links(out)
    model, (tensors, meta) = load(args.run), read_checkpoint(args.run)
    units = data_units(tensors, meta, args.run)  # an estimator's standardized features: back to fit's units
    if args.n * model.x_dim > MAX_VALUES:
        raise ConfigError(
            f"-n {args.n} asks for {args.n} x {model.x_dim} values, more than {MAX_VALUES:.0e}; ask for fewer "
            f"(several calls with other --seed values)"
        )
    if not hasattr(model, "generate"):  # the classifier baselines: q(y|x) alone
        raise ConfigError(f"{args.run} is a model.objective = 'classifier' run: it has no decoder to sample from")
    labels, m = None, n_categories(model)
    if args.label is not None:
        if m is None:
            raise ConfigError(
                f"--label {args.label}: this {model.regime.name} model has no classes to sample from; drop --label"
            )
        if not 0 <= args.label < m:
            raise ConfigError(f"--label {args.label} is out of range; this model has labels 0..{m - 1}")
        labels = torch.full((args.n,), args.label, dtype=torch.long)
    elif model.regime.label_to == "decoder":
        labels = torch.arange(args.n) % model.config.n_classes
    if out.suffix.lower() == ".png":
        shape = tuple(args.image_shape) if args.image_shape is not None else _image_shape(args.run, meta, model)
        if shape is None:
            raise ConfigError("this data set has no image shape; write .npy, or pass --image-shape H W")
        if not 2 <= len(shape) <= 3 or math.prod(shape) != model.x_dim or min(shape) < 1:
            raise ConfigError(
                f"--image-shape {' '.join(map(str, shape))} does not fit this model's {model.x_dim} values: "
                f"give H W (or H W C) whose product is {model.x_dim}"
            )
    torch.manual_seed(args.seed)  # after the image shape, whose reading builds a model from the global stream
    images = model.generate(args.n, labels=labels).cpu().numpy()
    if units is not None:
        images = units(images).astype(_estimator_dtype(meta))
    if out.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, images)
        atomic_write(out, buf.getvalue())  # never through a link
    else:
        if units is not None and (images.min() < 0 or images.max() > 1):  # other units: the samples' own range
            low, high = float(images.min()), float(images.max())
            images = (images - low) / (high - low if high > low else 1.0)
        grids.image_grid(images, out, image_shape=shape)
    print(out)


def _image_shape(run: str, meta: dict, model):
    """The images' shape: the run's data set's; an estimator's (which names none), a square's where
    its features make one."""
    from .data.augment import image_shape_of
    from .experiment import open_run
    from .training.checkpoint import ESTIMATOR

    if ESTIMATOR not in meta:
        return open_run(run, progress=False)[2].test.image_shape
    try:  # the images an estimator was fitted on, else a square
        shape = json.loads(meta[ESTIMATOR]).get("image_shape")
        if isinstance(shape, list) and all(isinstance(s, int) for s in shape) and shape:
            return tuple(shape)
    except (ValueError, AttributeError, RecursionError):
        pass
    try:
        return image_shape_of(model.x_dim, "--image-shape")
    except ConfigError:
        return None


def _estimator_dtype(meta: dict) -> str:
    """The dtype of the data an estimator was fitted on (what its own sample() gives)."""
    from .training.checkpoint import ESTIMATOR

    try:
        dtype = json.loads(meta[ESTIMATOR]).get("dtype")
    except (KeyError, ValueError, AttributeError, RecursionError):
        dtype = None
    return dtype if dtype in ("float32", "float64") else "float64"


def cmd_demo(args) -> None:
    import shutil

    from .config.load import load_config
    from .experiment import FINAL, run
    from .files import refuse_links
    from .training.checkpoint import CHECKPOINT, LOCK
    from .training.runlog import CSV, JSONL, MACHINE

    own_output = {CHECKPOINT, "config.json", JSONL, CSV, MACHINE, FINAL, "figures", LOCK}  # what a run writes

    cfg = load_config("demo", [f"train.epochs={args.epochs}"] if args.epochs is not None else [])
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        for p in out.iterdir():  # never what a link points to: refused before anything is deleted
            refuse_links(p)
        figures = out / "figures"
        other = sorted(
            [p.name for p in out.iterdir() if p.name not in own_output or p.is_dir() != (p.name == "figures")]
            + [f"figures/{p.name}" for p in (figures.iterdir() if figures.is_dir() else []) if not _a_figure(p)]
        )
        if other or not (out / CHECKPOINT).is_file():
            shown = ", ".join(other[:3]) or "no demo checkpoint"
            raise ConfigError(f"{out} holds files the demo did not write ({shown}); give an empty or new --out")
        for p in out.iterdir():  # the demo's own previous output only
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    start = time.perf_counter()
    result = run(cfg, out, device=args.device, progress=not args.no_progress)
    print(
        f"demo: label-conditioned AAE on scikit-learn's digits, 10-mode mixture prior, "
        f"{len(result.history)} epochs in {time.perf_counter() - start:.0f} s"
    )
    _print_metrics(result.metrics)
    for p in sorted((out / "figures").glob("*.png")):
        print(f"figure: {p}")


def _a_figure(path: Path) -> bool:
    """A figure a run draws: a PNG file, no link, no folder."""
    return path.suffix == ".png" and path.is_file() and not path.is_symlink()


def cmd_configs(args) -> None:
    from .config.load import bundled_configs
    from .config.schema import CONFIG_DIR

    for name in bundled_configs():
        first = (CONFIG_DIR / f"{name}.toml").read_text().splitlines()[0].lstrip("# ")
        print(f"{name:32s} {first}")


def cmd_reproduce(args) -> None:
    from .paper.reproduce import EXPERIMENTS

    EXPERIMENTS[args.experiment](args)


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

    p = sub.add_parser("configs", help="list the bundled configs")
    p.set_defaults(func=cmd_configs)

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

    mine = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    )
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
