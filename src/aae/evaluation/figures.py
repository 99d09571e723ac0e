"""A run's figures (``figures/`` of a run directory), drawn by :mod:`aae.evaluation.plots` and
:mod:`aae.evaluation.charts` from what the model has: latent scatter beside prior samples, decoded samples,
reconstructions, and by capability the manifold, the style grid, the cluster heads and the map of
Section 7."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.splits import Splits
from ..files import refuse_links
from ..model.autoencoder import AdversarialAutoencoder
from . import charts, plots
from .evaluate import embed, encode


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
    prior samples, reconstructions, and by capability the manifold, style grid and cluster heads."""
    fig = Path(run_dir) / "figures"
    refuse_links(fig / "latent.png", root=run_dir)  # a linked figures/ would send them elsewhere
    for old in sorted(fig.iterdir()) if fig.is_dir() else []:  # refused before any figure is redrawn
        refuse_links(old)
    if model.prior is None:  # a classifier baseline: nothing to decode, only its curves
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
        paths.append(plots.style_grid(images, fig / "samples.png", image_shape=shape, n_styles=10, n_classes=m))
        x = torch.as_tensor(test.x[:10])
        grid = torch.cat([x[:, None].to(model.device), model.restyle(x)], 1).reshape(-1, x.shape[1]).cpu().numpy()
        paths.append(
            plots.image_grid(
                grid,
                fig / "restyle.png",
                image_shape=shape,
                nrow=10,
                title="test image, then its style under each label",
            )
        )
    else:
        paths.append(plots.image_grid(images, fig / "samples.png", image_shape=shape, nrow=min(m, 20), title=layout))
    labels = (
        torch.as_tensor(test.y[:20], device=model.device)
        if test.y is not None and model.regime.label_to == "decoder"
        else None
    )
    recon = model.reconstruct(torch.as_tensor(test.x[:20], device=model.device), labels).cpu().numpy()
    paths.append(plots.reconstructions(test.x[:20], recon, fig / "reconstructions.png", image_shape=shape, n=20))
    if model.config.z_dim == 2 and "y" not in model.priors and model.regime.label_to != "decoder":
        lo, hi = np.percentile(model.prior.sample(5000).numpy(), [1, 99], axis=0)
        decode = lambda c: model.generate(len(c), z=torch.as_tensor(c)).cpu().numpy()  # noqa: E731
        paths.append(
            plots.manifold(decode, fig / "manifold.png", image_shape=shape, extent=(lo[0], hi[0], lo[1], hi[1]))
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
        paths.append(plots.cluster_heads(heads, members, fig / "cluster_heads.png", image_shape=shape))
    if model.cluster_heads is not None:
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
