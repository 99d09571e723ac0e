"""What a trained model is measured by and drawn as. Which metrics and figures apply follows
from what the model has (a categorical head, a label route, a 2-D code), never its name."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import metrics, plots
from .config import ExperimentConfig
from .data import Dataset, Splits
from .errors import ConfigError
from .losses import reconstruction_loss
from .model import AdversarialAutoencoder
from .train import image_shape_of, translate


def log_mean_softmax(views: list[torch.Tensor]) -> torch.Tensor:
    """log of the softmax of each (n, m) logit tensor in ``views``, averaged over the views, in
    float64 and exact both where q(y|x) is near 0 and where it is near 1. A sure head has logit
    margins past 37, where even float64's softmax (and log_softmax) is exactly 1 (0) for hundreds
    of images; at each view's top class, 1 - q = sigmoid(logsumexp of the other logits - the top
    logit) keeps them apart (only the top class can have q > 1/2)."""
    logits = torch.stack(views).double()  # (k, n, m)
    log_q = logits.log_softmax(2).logsumexp(0) - np.log(len(views))
    top = logits.argmax(2, keepdim=True)
    rest = logits.scatter(2, top, -np.inf).logsumexp(2, keepdim=True) - logits.gather(2, top)  # log((1 - q) / q)
    one_minus_q = (1 - logits.softmax(2)).scatter(2, top, rest.sigmoid())
    return torch.where(log_q > -np.log(2), torch.log1p(-one_minus_q.mean(0)), log_q)


@torch.no_grad()
def encode(model: AdversarialAutoencoder, x: np.ndarray, *, sample: bool = True, tta_shift: int = 0,
           log: bool = False, batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray | None]:
    """Codes z and, where the model has a y head, q(y|x), in batches; with ``tta_shift`` (config
    ``eval.tta_shift``) q(y|x) is averaged over every translation of x by up to that many pixels.
    With ``log``, log q(y|x) in float64 (`log_mean_softmax`): what ranks images by confidence."""
    if tta_shift < 0:
        raise ConfigError(f"eval.tta_shift = {tta_shift} must be 0 or more pixels")
    zs, ys = [], []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i:i + batch_size], device=model.device)
        codes = model.encode(xb, sample=sample)
        zs.append(codes.z.cpu().numpy())
        if codes.y_logits is not None:
            views = [codes.y_logits]
            if tta_shift:
                shape, k = image_shape_of(xb.shape[1], "eval.tta_shift"), range(-tta_shift, tta_shift + 1)
                views = [model.encode(translate(xb, dy, dx, tta_shift, shape), sample=False).y_logits for dy in k for dx in k]
            if log:
                ys.append(log_mean_softmax(views).cpu().numpy())
            else:
                ys.append((sum(v.softmax(1) for v in views) / len(views)).cpu().numpy())
    return np.concatenate(zs), (np.concatenate(ys) if ys else None)


@torch.no_grad()
def embed(model: AdversarialAutoencoder, x: np.ndarray, batch_size: int = 2000) -> np.ndarray:
    """The representation the decoder reads for ``x`` without a label: W_C y + z for a model with
    cluster heads (Section 7), else the code z (posterior mean / zero noise)."""
    out = []
    for i in range(0, len(x), batch_size):
        codes = model.encode(torch.as_tensor(x[i:i + batch_size], device=model.device), sample=False)
        out.append((model.representation(codes) if model.cluster_heads is not None else codes.z).cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def mean_reconstruction_loss(model: AdversarialAutoencoder, data: Dataset, batch_size: int = 2000) -> float:
    total = 0.0
    for i in range(0, len(data), batch_size):
        x = torch.as_tensor(data.x[i:i + batch_size], device=model.device)
        labels = torch.as_tensor(data.y[i:i + batch_size], device=model.device) if data.y is not None else None
        codes = model.encode(x, sample=False)
        total += reconstruction_loss(model.decode(model.representation(codes, labels)), x, model.config.output).item() * len(x)
    return total / len(data)


def _label_metrics(model: AdversarialAutoencoder, z: np.ndarray, proba: np.ndarray | None, data: Dataset) -> dict:
    out = {}
    if data.y is None:
        return out
    if model.regime.label_to == "discriminator" and model.prior.n_parts is not None:
        # the fraction of labeled codes that lie in their own class's part of the prior (Figures 4-5)
        labeled = data.y >= 0
        part = model.prior.assign_part(torch.as_tensor(z[labeled])).numpy()
        out["mode_accuracy"] = float((part == data.y[labeled]).mean())
    if proba is not None and proba.shape[1] == data.n_classes:
        out["error"] = metrics.classification_error(data.y, proba.argmax(1))
    return out


def _cluster_protocol_inputs(model: AdversarialAutoencoder, proba: np.ndarray, splits: Splits,
                             cfg: ExperimentConfig) -> tuple[np.ndarray, np.ndarray]:
    """What the paper's cluster protocol reads: log q(y|x) of the validation images (which rank
    each cluster's exemplar) and the test images' clusters, the argmax of their q(y|x) ``proba``."""
    return encode(model, splits.valid.x, tta_shift=cfg.eval.tta_shift, log=True)[1], proba.argmax(1)


def _cluster_metrics(model: AdversarialAutoencoder, proba: np.ndarray | None, splits: Splits, cfg: ExperimentConfig) -> dict:
    """Unsupervised clustering (Section 6), and a categorical head trained without labels (the
    unsupervised map of Section 7): the paper's protocol and the usual scores."""
    test = splits.test
    unsupervised = model.regime.label_to is None or cfg.data.n_labeled == 0
    if proba is None or test.y is None or not unsupervised:
        return {}
    valid_logp, assign = _cluster_protocol_inputs(model, proba, splits, cfg)
    # cluster sizes against the equal share n / m a q(y) matching the uniform prior would give
    sizes = np.bincount(assign, minlength=proba.shape[1]) * proba.shape[1] / len(assign)
    return {"cluster_error": metrics.cluster_error_paper(valid_logp, splits.valid.y, assign, test.y),
            "cluster_error_majority": metrics.cluster_error_paper(valid_logp, splits.valid.y, assign, test.y, majority=True),
            "hungarian_accuracy": metrics.hungarian_accuracy(test.y, assign), **metrics.cluster_scores(test.y, assign),
            "largest_cluster": float(sizes.max()), "smallest_cluster": float(sizes.min())}


def epoch_metrics(splits: Splits, cfg: ExperimentConfig, n: int = 2000) -> Callable[[AdversarialAutoencoder], dict]:
    """The cheap per-epoch metrics (logged each ``eval_every`` epochs): the code's MMD to the prior
    on ``n`` test points and, where labels give one, the test error, mode accuracy or cluster error."""
    test = splits.test

    def measure(model: AdversarialAutoencoder) -> dict:
        z, proba = encode(model, test.x, tta_shift=cfg.eval.tta_shift)
        row = {"test_mmd": metrics.mmd(z, model.prior.sample(len(z)).numpy(), max_points=n)}
        row.update({f"test_{k}": v for k, v in _label_metrics(model, z, proba, test).items()})
        row.update({f"test_{k}": v for k, v in _cluster_metrics(model, proba, splits, cfg).items()})
        valid = splits.valid
        if proba is not None and len(valid) and valid.y is not None:
            # what train.select_by can stop on without looking at the test set
            z, proba = encode(model, valid.x, tta_shift=cfg.eval.tta_shift)
            row.update({f"valid_{k}": v for k, v in _label_metrics(model, z, proba, valid).items()})
        return row

    return measure


def cluster_breakdown(model: AdversarialAutoencoder, splits: Splits, cfg: ExperimentConfig) -> list[dict]:
    """Each test cluster's classes and its labels by the paper's protocol and by validation
    majority (`aae.metrics.cluster_breakdown`): which clusters the cluster error comes from."""
    if splits.test.y is None or splits.valid.y is None:
        raise ConfigError("a cluster breakdown needs labeled validation and test splits")
    proba = encode(model, splits.test.x, tta_shift=cfg.eval.tta_shift)[1]
    if proba is None:
        raise ConfigError(f"{cfg.name} has no categorical head q(y|x): there are no clusters to break down")
    valid_logp, assign = _cluster_protocol_inputs(model, proba, splits, cfg)
    return metrics.cluster_breakdown(valid_logp, splits.valid.y, assign, splits.test.y)


def final_metrics(model: AdversarialAutoencoder, splits: Splits, cfg: ExperimentConfig) -> dict:
    """The full evaluation on the test set (``aae eval``)."""
    test = splits.test
    z, proba = encode(model, test.x, tta_shift=cfg.eval.tta_shift)
    out = {
        "test_reconstruction": mean_reconstruction_loss(model, test),
        "test_mmd": metrics.mmd(z, model.prior.sample(len(z)).numpy(), max_points=cfg.eval.mmd_points),
    }
    out.update({f"test_{k}": v for k, v in _label_metrics(model, z, proba, test).items()})
    out.update({f"test_{k}": v for k, v in _cluster_metrics(model, proba, splits, cfg).items()})
    if model.cluster_heads is not None and splits.valid.y is not None and test.y is not None:
        # how well the map r = W_C y + z keeps the classes apart (Section 7): a 1-nearest-neighbour
        # classifier on the map, the labeled validation images its reference set
        out["test_map_1nn_error"] = metrics.one_nn_error(embed(model, splits.valid.x), splits.valid.y, embed(model, test.x), test.y)
    return out


def _decoded_grid(model: AdversarialAutoencoder, n_per: int, n_classes: int) -> tuple[np.ndarray, str]:
    """Samples laid out one row per class/part where the model has classes, else a plain grid."""
    torch.manual_seed(0)
    k = torch.arange(n_classes).repeat_interleave(n_per)
    if model.regime.label_to == "decoder":
        # Figure 7: each row one style z, each column one label.
        z = model.sample_prior("z", n_per).repeat_interleave(n_classes, 0)
        labels = torch.arange(n_classes).repeat(n_per).to(model.device)
        return model.generate(len(z), labels=labels, z=z).cpu().numpy(), "style"
    if "y" in model.priors:
        return model.generate(len(k), labels=k).cpu().numpy(), "rows: categories"
    if model.regime.label_to == "discriminator" and model.prior.n_parts is not None:
        return model.generate(len(k), labels=k).cpu().numpy(), "rows: prior parts"
    return model.generate(n_classes * n_per).cpu().numpy(), "prior samples"


def circle_projection(heads: np.ndarray, codes: np.ndarray | None = None, clusters: np.ndarray | None = None) -> np.ndarray:
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


def write_figures(model: AdversarialAutoencoder, splits: Splits, run_dir: Path, history: list[dict] | None = None) -> list[Path]:
    """The run's pictures under ``run_dir/figures``: latent scatter beside prior samples, decoded
    prior samples, reconstructions, and by capability the manifold, style grid and cluster heads."""
    fig = Path(run_dir) / "figures"
    test, shape = splits.test, splits.test.image_shape
    m = model.config.n_classes
    z, proba = encode(model, test.x[:5000])
    y = test.y[:5000] if test.y is not None else None
    paths = [plots.latent_scatter(z, fig / "latent.png", labels=y, prior_samples=model.prior.sample(len(z)).numpy(),
                                  title="test codes q(z) | prior samples p(z)", n_classes=m)]
    if shape is None:
        return paths
    images, layout = _decoded_grid(model, 10, min(m, 20))
    if layout == "style":
        paths.append(plots.style_grid(images, fig / "samples.png", image_shape=shape, n_styles=10, n_classes=m))
        x = torch.as_tensor(test.x[:10])
        grid = torch.cat([x[:, None].to(model.device), model.restyle(x)], 1).reshape(-1, x.shape[1]).cpu().numpy()
        paths.append(plots.image_grid(grid, fig / "restyle.png", image_shape=shape, nrow=10,
                                      title="test image, then its style under each label"))
    else:
        paths.append(plots.image_grid(images, fig / "samples.png", image_shape=shape, nrow=min(m, 20), title=layout))
    labels = torch.as_tensor(test.y[:20], device=model.device) if test.y is not None and model.regime.label_to == "decoder" else None
    recon = model.reconstruct(torch.as_tensor(test.x[:20], device=model.device), labels).cpu().numpy()
    paths.append(plots.reconstructions(test.x[:20], recon, fig / "reconstructions.png", image_shape=shape, n=20))
    if model.config.z_dim == 2 and "y" not in model.priors and model.regime.label_to != "decoder":
        lo, hi = np.percentile(model.prior.sample(5000).numpy(), [1, 99], axis=0)
        decode = lambda c: model.generate(len(c), z=torch.as_tensor(c)).cpu().numpy()  # noqa: E731
        paths.append(plots.manifold(decode, fig / "manifold.png", image_shape=shape, extent=(lo[0], hi[0], lo[1], hi[1])))
    if proba is not None:
        heads = model.generate(model.priors["y"].n_classes, labels=torch.arange(model.priors["y"].n_classes),
                               z=torch.zeros(model.priors["y"].n_classes, model.config.z_dim)).cpu().numpy()
        assign = proba.argmax(1)
        members = [test.x[:5000][assign == i][:10] for i in range(len(heads))]
        paths.append(plots.cluster_heads(heads, members, fig / "cluster_heads.png", image_shape=shape))
    if model.cluster_heads is not None:
        # Figure 11: the map r = W_C y + z of test images, with the cluster heads W_C
        r = embed(model, test.x[:5000])
        heads = model.cluster_heads.detach().cpu().numpy()
        title = "test images r = W_C y + z (x: cluster heads)"
        if r.shape[1] > 2:  # as the paper draws its 10-D map: a linear map that puts the clusters on a circle
            to_2d = circle_projection(heads, r, proba.argmax(1))
            r, heads, title = r @ to_2d, heads @ to_2d, f"{title}\n{r.shape[1]}-D, mapped linearly to put the clusters on a circle"
        paths.append(plots.latent_scatter(r, fig / "map.png", labels=y, n_classes=m, highlight=heads, title=title))
    if history:
        keys = sorted({k for r in history for k in r if k not in ("epoch", "seconds")})
        paths.append(plots.curves(history, keys, fig / "curves.png"))
    return paths
