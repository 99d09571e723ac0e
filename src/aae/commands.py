"""What each subcommand of the ``aae`` command does once :mod:`aae.cli` has read its arguments:
train, eval, plot, sample, demo, configs and reproduce, each a ``cmd_<name>(args)`` that prints
its result and raises an :class:`~aae.errors.AAEError` for anything the user can fix.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from .errors import ConfigError


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
    if not model.has_decoder:  # the classifier baselines: q(y|x) alone
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
    elif model.decoder_reads_label:
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
