"""From a config to a trained model: data, model, trainer, metrics and figures, in one place
that the command line and the reproductions use. A run's figures (``figures/`` of its directory)
follow from what the model has: latent scatter beside prior samples, decoded samples,
reconstructions, and by capability the manifold, the style grid, the cluster heads and the map of
Section 7."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config.checks import check_model_size
from .config.load import from_dict
from .config.schema import ExperimentConfig
from .data.sets import load
from .data.splits import Splits, check_labels, label_budget
from .errors import CheckpointError, ConfigError, one_line
from .evaluation import charts, grids
from .evaluation.evaluate import embed, encode, epoch_metrics, final_metrics
from .files import atomic_write, check_writable, refuse_links
from .model.autoencoder import AdversarialAutoencoder, build_model
from .model.capabilities import Capabilities
from .model.priors import describe
from .training.checkpoint import CHECKPOINT, ESTIMATOR, config_of, read_checkpoint
from .training.checkpoint import load as load_model
from .training.resume import check_run_dir
from .training.runlog import read_history
from .training.trainer import Trainer

log = logging.getLogger("aae")


FINAL = "final.json"


@dataclass
class Result:
    model: torch.nn.Module | None
    """None for a run read back from its record (final.json and metrics.jsonl) without weights"""
    splits: Splits | None
    history: list[dict]
    metrics: dict

    @property
    def epochs(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    @property
    def seconds(self) -> float:
        """Training wall time summed over epochs, so a resumed run counts each of its parts."""
        return float(sum(r.get("seconds", 0.0) for r in self.history))


def prepare_data(cfg: ExperimentConfig, progress: bool = True) -> Splits:
    """The data a config names, with its subset and label budget applied to the training split."""
    d = cfg.data
    splits = load(
        d.name,
        d.data_dir,
        download=d.download,
        valid_size=d.valid_size,
        seed=d.label_seed,
        progress=progress,
        image_size=d.image_size,
    )
    if d.subset is not None:
        splits.train = splits.train.subset(slice(0, d.subset))
    if d.n_labeled is not None and splits.train.y is not None:
        splits.train.y = label_budget(splits.train.y, d.n_labeled, seed=d.label_seed, n_classes=splits.train.n_classes)
    if cfg.model.output == "bernoulli" and not splits.train.unit:
        raise ConfigError(
            f"data {d.name!r} has values outside [0, 1], which model.output = 'bernoulli' cannot "
            f"model; set model.output = 'gaussian' (and standardize the features)"
        )
    return splits


def train_labels(cfg: ExperimentConfig, splits: Splits) -> np.ndarray | None:
    """The labels the regime may see: none for regimes that use no labels, nor where the config
    keeps none (``data.n_labeled = 0``) and the regime can train without."""
    model, y = Capabilities.of(cfg.model), splits.train.y
    if not model.reads_labels or y is None:
        return None
    # labels the data gives as all -1 stay an error (labels_for_regime says so); the config's own 0 is a choice
    return None if model.labels_optional and cfg.data.n_labeled == 0 else y


def run(
    cfg: ExperimentConfig,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    require_checkpoint: bool = False,
    figures: bool = True,
    splits: Splits | None = None,
    prior=None,
    device: str = "auto",
    progress: bool = True,
    log_dir: str | None = None,
) -> Result:
    """Train the experiment ``cfg`` (resuming from ``out`` if asked), then measure and draw it.
    ``prior`` is a prior function or object for a config whose prior is ``callable``; ``log_dir``
    receives TensorBoard event files."""
    if prior is not None:
        cfg.model.prior = describe(prior)
    elif cfg.model.prior.get("name") == "callable":
        raise ConfigError(
            f"model.prior names the function {cfg.model.prior.get('fn')!r}; aae never imports code "
            f"named in a file: pass the function itself (aae.experiment.run(cfg, prior=fn))"
        )
    if out is not None:
        check_writable(out)
        check_run_dir(out, cfg, resume=resume, require_checkpoint=require_checkpoint)
    splits = splits or prepare_data(cfg, progress)
    if Capabilities.of(cfg.model).reads_labels:
        # every split, not only the one training reads: a bad test label would skew the metrics
        for part in ("train", "valid", "test"):
            data = getattr(splits, part)
            if data.y is not None:
                check_labels(data.y, cfg.model.n_classes, len(data), where=f"{part} labels")
    torch.manual_seed(cfg.train.seed)  # the initial weights too follow train.seed
    check_model_size(cfg.model, splits.train.x.shape[1])
    model = build_model(cfg.model, splits.train.x.shape[1], prior=prior, image_shape=splits.train.image_shape)
    trainer = Trainer(
        model, cfg, out, evaluate=epoch_metrics(splits, cfg), device=device, progress=progress, log_dir=log_dir
    )
    history = trainer.fit(
        splits.train.x, train_labels(cfg, splits), resume=resume, require_checkpoint=require_checkpoint
    )
    model = trainer.result.eval()
    if not trainer.main:  # under torchrun, process 0 measures and writes
        return Result(model, splits, history, {})
    metrics = final_metrics(model, splits, cfg)
    selection = trainer.selection
    if selection.model is not None:
        metrics.update(selected_epoch=selection.epoch, **{f"selected_{cfg.train.select_by}": selection.value})
    if out is not None:
        write_final(out, metrics)
        if figures:
            write_figures(model, splits, Path(out), history)
    return Result(model, splits, history, metrics)


def write_final(run_dir: str | Path, metrics: dict) -> Path:
    """A run's final metrics as its record (``final.json``), which the reproductions read back."""
    path = Path(run_dir) / FINAL
    atomic_write(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def trained_epochs(run_dir: str | Path) -> tuple[int, int]:
    """(epochs a run has trained, epochs its config asks for), from its checkpoint."""
    _, meta = read_checkpoint(run_dir)
    try:
        return int(meta["epoch"]), from_dict(json.loads(meta["config"]), strict=False).train.epochs
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{run_dir}: its config is unreadable ({one_line(exc)}); train again") from None


def redraw_figures(run_dir: str | Path, data_dir: str | None = None) -> list[Path]:
    """Draw a trained run's figures again, from its checkpoint and its ``metrics.jsonl``."""
    model, _, splits = open_run(run_dir, data_dir, progress=False)
    return write_figures(model, splits, Path(run_dir), read_history(run_dir))


def open_run(run_dir: str | Path, data_dir: str | None = None, prior=None, progress: bool = True):
    """A trained run directory's model, config and data (from ``data_dir`` if given)."""
    _, meta = read_checkpoint(Path(run_dir) / CHECKPOINT if Path(run_dir).is_dir() else run_dir)
    if ESTIMATOR in meta:
        raise CheckpointError(
            f"{run_dir} is an estimator's: it names no data set to measure or draw; load it with "
            f"aae.load_estimator({str(run_dir)!r}), or decode samples with aae sample --run {run_dir}"
        )
    cfg = config_of(meta, run_dir, prior)
    if data_dir is not None:
        cfg.data.data_dir = data_dir
    return load_model(run_dir, prior=prior), cfg, prepare_data(cfg, progress)


# -- a run's figures ------------------------------------------------------------------------
def _decoded_grid(model: AdversarialAutoencoder, n_per: int, n_classes: int) -> tuple[np.ndarray, str]:
    """Samples laid out one row per class/part where the model has classes, else a plain grid."""
    k = torch.arange(n_classes).repeat_interleave(n_per)
    if model.decoder_reads_label:
        # Figure 7: each row one style z, each column one label.
        z = model.sample_prior("z", n_per).repeat_interleave(n_classes, 0)
        labels = torch.arange(n_classes).repeat(n_per).to(model.device)
        return model.generate(len(z), labels=labels, z=z).cpu().numpy(), "style"
    if model.has_y_head:
        return model.generate(len(k), labels=k).cpu().numpy(), "rows: categories"
    if model.label_conditions_prior and model.prior.n_parts is not None:
        return model.generate(len(k), labels=k).cpu().numpy(), "rows: prior parts"
    return model.generate(n_classes * n_per).cpu().numpy(), "prior samples"


def circle_projection(
    heads: np.ndarray, codes: np.ndarray | None = None, clusters: np.ndarray | None = None
) -> np.ndarray:
    """The linear map (k, 2) that sends the m cluster heads (m, k) to m points evenly spaced on the
    unit circle, in the least-squares sense (exactly when the heads are linearly independent).

    Given ``codes`` (n, k) and their ``clusters`` (n,), the map sends each code to its cluster's point
    instead: heads that are independent but close to a lower-dimensional subspace make the exact map
    blow the style part of the codes up along that subspace's normal, and the clusters smear into
    each other on the page; fitted on the codes, the map sees that spread and keeps it small."""
    angles = 2 * np.pi * np.arange(len(heads)) / len(heads)
    circle = np.stack([np.cos(angles), np.sin(angles)], 1)
    if codes is None:
        return np.linalg.lstsq(heads, circle, rcond=None)[0]
    return np.linalg.lstsq(codes, circle[clusters], rcond=None)[0]


def write_figures(
    model: AdversarialAutoencoder, splits: Splits, run_dir: Path, history: list[dict] | None = None
) -> list[Path]:
    """The run's pictures under ``run_dir/figures``: latent scatter beside prior samples, decoded
    prior samples, reconstructions, and by capability the manifold, style grid and cluster heads.
    Their random draws start from seed 0 on a forked stream: a run's figures are the same each
    time they are drawn, and the caller's random stream is left as it was."""
    fig = Path(run_dir) / "figures"
    refuse_links(fig / "latent.png", root=run_dir)  # a linked figures/ would send them elsewhere
    for old in sorted(fig.iterdir()) if fig.is_dir() else []:  # refused before any figure is redrawn
        refuse_links(old)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return _draw_figures(model, splits, fig, history)


def _draw_figures(model: AdversarialAutoencoder, splits: Splits, fig: Path, history: list[dict] | None) -> list[Path]:
    if not model.has_decoder:  # a classifier baseline: nothing to decode, only its curves
        keys = sorted({k for r in history or [] for k in r if k not in ("epoch", "seconds")})
        return [charts.curves(history, keys, fig / "curves.png")] if history else []
    test, shape = splits.test, splits.test.image_shape
    m = model.config.n_classes
    z, proba = encode(model, test.x[:5000])
    y = test.y[:5000] if test.y is not None else None
    paths = [
        charts.latent_scatter(
            z,
            fig / "latent.png",
            labels=y,
            prior_samples=model.prior.sample(len(z)).numpy(),
            title="test codes q(z) | prior samples p(z)",
            n_classes=m,
        )
    ]
    if shape is None:
        return paths
    images, layout = _decoded_grid(model, 10, min(m, 20))
    if layout == "style":
        paths.append(grids.style_grid(images, fig / "samples.png", image_shape=shape, n_styles=10, n_classes=m))
        x = torch.as_tensor(test.x[:10])
        grid = torch.cat([x[:, None].to(model.device), model.restyle(x)], 1).reshape(-1, x.shape[1]).cpu().numpy()
        paths.append(
            grids.image_grid(
                grid,
                fig / "restyle.png",
                image_shape=shape,
                nrow=10,
                title="test image, then its style under each label",
            )
        )
    else:
        paths.append(grids.image_grid(images, fig / "samples.png", image_shape=shape, nrow=min(m, 20), title=layout))
    labels = (
        torch.as_tensor(test.y[:20], device=model.device) if test.y is not None and model.decoder_reads_label else None
    )
    recon = model.reconstruct(torch.as_tensor(test.x[:20], device=model.device), labels).cpu().numpy()
    paths.append(grids.reconstructions(test.x[:20], recon, fig / "reconstructions.png", image_shape=shape, n=20))
    if model.config.z_dim == 2 and not model.has_y_head and not model.decoder_reads_label:
        lo, hi = np.percentile(model.prior.sample(5000).numpy(), [1, 99], axis=0)
        decode = lambda c: model.generate(len(c), z=torch.as_tensor(c)).cpu().numpy()  # noqa: E731
        paths.append(
            grids.manifold(decode, fig / "manifold.png", image_shape=shape, extent=(lo[0], hi[0], lo[1], hi[1]))
        )
    if proba is not None:
        heads = (
            model.generate(
                model.priors["y"].n_classes,
                labels=torch.arange(model.priors["y"].n_classes),
                z=torch.zeros(model.priors["y"].n_classes, model.config.z_dim),
            )
            .cpu()
            .numpy()
        )
        assign = proba.argmax(1)
        members = [test.x[:5000][assign == i][:10] for i in range(len(heads))]
        paths.append(grids.cluster_heads_grid(heads, members, fig / "cluster_heads.png", image_shape=shape))
    if model.has_cluster_heads:
        # Figure 11: the map r = W_C y + z of test images, with the cluster heads W_C
        r = embed(model, test.x[:5000])
        heads = model.cluster_heads.detach().cpu().numpy()
        title = "test images r = W_C y + z (x: cluster heads)"
        if r.shape[1] > 2:  # as the paper draws its 10-D map: a linear map that puts the clusters on a circle
            to_2d = circle_projection(heads, r, proba.argmax(1))
            r, heads, title = (
                r @ to_2d,
                heads @ to_2d,
                f"{title}\n{r.shape[1]}-D, mapped linearly to put the clusters on a circle",
            )
        paths.append(charts.latent_scatter(r, fig / "map.png", labels=y, n_classes=m, highlight=heads, title=title))
    if history:
        keys = sorted({k for r in history for k in r if k not in ("epoch", "seconds")})
        paths.append(charts.curves(history, keys, fig / "curves.png"))
    return paths
