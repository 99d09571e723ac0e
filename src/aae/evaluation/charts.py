"""PNG charts on axes: latent scatter plots and training curves.

As every picture of :mod:`aae.evaluation.grids`, each writes one PNG to ``path`` (creating parent
directories), returns the :class:`pathlib.Path` and releases its figure, without pyplot;
matplotlib is imported only when a chart is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aae.errors import ConfigError, DataError
from aae.evaluation.grids import new_figure, save_figure, to_numpy

__all__ = ["latent_scatter", "curves"]


def latent_scatter(
    codes: Any,
    path: str | Path,
    *,
    labels: Any = None,
    prior_samples: Any = None,
    title: str | None = None,
    n_classes: int = 10,
    highlight: Any = None,
) -> Path:
    """Scatter of codes (n, k) coloured by label; PCA to 2-D if k > 2; prior samples in a right panel;
    ``highlight`` points (h, k), such as cluster heads, drawn as black crosses.

    Labels must be in 0..n_classes-1, or -1 for unlabelled points (drawn grey).
    """
    z = to_numpy(codes).astype(np.float64)
    if z.ndim != 2 or z.shape[1] < 2 or len(z) == 0:
        raise DataError(f"codes must be (n, k) with n >= 1 and k >= 2, got shape {z.shape}")
    p = None if prior_samples is None else to_numpy(prior_samples).astype(np.float64)
    if p is not None and (p.ndim != 2 or p.shape[1] != z.shape[1] or len(p) == 0):
        raise DataError(f"prior_samples must be (m, {z.shape[1]}) like codes, got shape {p.shape}")
    if int(n_classes) < 1:
        raise ConfigError(f"n_classes must be an integer >= 1, got {n_classes!r}")
    k = z.shape[1]
    xlabel, ylabel = "z1", "z2"
    if k > 2:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2).fit(z)
        z = pca.transform(z)
        p = None if p is None else pca.transform(p)
        highlight = None if highlight is None else pca.transform(to_numpy(highlight).astype(np.float64))
        xlabel, ylabel = f"PC1 (PCA of {k}-D codes)", f"PC2 (PCA of {k}-D codes)"
    y = None
    if labels is not None:
        y = to_numpy(labels).reshape(-1)
        if len(y) != len(z):
            raise DataError(f"labels must have one entry per code ({len(z)}), got {len(y)}")
        y = y.astype(np.int64)
        if y.min() < -1 or y.max() >= n_classes:
            raise DataError(
                f"labels must be -1 or in 0..{n_classes - 1} (n_classes={n_classes}), "
                f"got values in {y.min()}..{y.max()}"
            )
    both = np.concatenate(
        [z]
        + ([p] if p is not None else [])
        + ([to_numpy(highlight).astype(np.float64).reshape(-1, 2)] if highlight is not None else [])
    )
    lo, hi = both.min(0), both.max(0)
    pad = 0.05 * np.maximum(hi - lo, 1e-6)
    lo, hi = lo - pad, hi + pad

    npanel = 1 if p is None else 2
    aspect = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
    panel_h = float(np.clip(4.5 * aspect, 2.0, 7.0)) + 0.9
    fig = new_figure((5.0 * npanel + (0.9 if y is not None else 0.0), panel_h), layout="constrained")
    axes = [fig.add_subplot(1, npanel, i + 1) for i in range(npanel)]
    ax = axes[0]
    if y is None:
        ax.scatter(z[:, 0], z[:, 1], s=2, c="tab:blue", linewidths=0)
    else:
        un = y < 0
        if un.any():
            ax.scatter(z[un, 0], z[un, 1], s=2, c="lightgrey", linewidths=0, label="unlabelled")
        if n_classes <= 20:
            from matplotlib import colormaps

            cmap = colormaps["tab10" if n_classes <= 10 else "tab20"]
            for c in range(n_classes):
                sel = y == c
                if sel.any():
                    ax.scatter(z[sel, 0], z[sel, 1], s=2, color=cmap(c), linewidths=0, label=str(c))
            fig.legend(loc="outside right upper", markerscale=4, fontsize=7, frameon=False)
        else:
            sel = ~un
            sc = ax.scatter(
                z[sel, 0], z[sel, 1], s=2, c=y[sel], cmap="viridis", vmin=0, vmax=n_classes - 1, linewidths=0
            )
            fig.colorbar(sc, ax=axes, label="label", shrink=0.8)
    if highlight is not None:
        h = to_numpy(highlight).astype(np.float64).reshape(-1, 2)
        ax.scatter(h[:, 0], h[:, 1], s=40, c="black", marker="x", linewidths=1.5)
    ax.set_title("codes" if p is not None else (title or "codes"), fontsize=10)
    if p is not None:
        axes[1].scatter(p[:, 0], p[:, 1], s=2, c="tab:gray", linewidths=0)
        axes[1].set_title("prior samples", fontsize=10)
        if title:
            fig.suptitle(title, fontsize=11)
    for a in axes:
        a.set_xlim(lo[0], hi[0])
        a.set_ylim(lo[1], hi[1])
        a.set_aspect("equal", adjustable="box")
        a.set_xlabel(xlabel, fontsize=8)
        a.set_ylabel(ylabel, fontsize=8)
        a.tick_params(labelsize=7)
    return save_figure(fig, path)


def curves(
    history: Sequence[dict[str, Any]], keys: Sequence[str], path: str | Path, *, title: str | None = None
) -> Path:
    """Line plot of ``history[i][key]`` against ``history[i]["epoch"]``; keys with no values are skipped."""
    if isinstance(keys, str):
        raise ConfigError(f"keys must be a list of metric names, got the string {keys!r}")
    fig = new_figure((6.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    drawn = 0
    for key in keys:
        pts = []
        for i, row in enumerate(history):
            v = row.get(key)
            try:
                v = float(v)  # also torch / numpy scalars
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                pts.append((float(row.get("epoch", i + 1)), v))
        if pts:
            ex, vy = zip(*pts)
            ax.plot(ex, vy, marker="o" if len(pts) < 30 else None, markersize=3, label=key)
            drawn += 1
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(
            0.5, 0.5, "no values for " + ", ".join(map(str, keys)), ha="center", va="center", transform=ax.transAxes
        )
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return save_figure(fig, path)
