"""Tests for aae.evaluation.grids and aae.evaluation.charts: each figure is a real PNG with a plausible shape."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aae.errors import ConfigError, DataError
from aae.evaluation.charts import curves, latent_scatter
from aae.evaluation.grids import cluster_heads_grid, image_grid, manifold, reconstructions, style_grid
from conftest import PNG_MAGIC


def _read(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.exists()
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def _imgs(n: int, d: int = 784, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


@pytest.mark.slow
def test_import_has_no_matplotlib_side_effect() -> None:
    code = (
        "import sys, aae.evaluation.grids, aae.evaluation.charts;"
        " print(sorted(m for m in sys.modules if m.startswith('matplotlib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # matplotlib (and so any backend) is imported only when a plot is made


def test_image_grid_shape_and_aspect(tmp_path: Path) -> None:
    out = image_grid(_imgs(6), tmp_path / "sub" / "dir" / "grid.png", image_shape=(28, 28), nrow=2)
    assert out == tmp_path / "sub" / "dir" / "grid.png"
    img = _read(out)
    h, w = img.shape[:2]
    # canvas is 2 rows x 3 columns of 28 px with 1-px gaps: 57 x 86 -> aspect 86/57
    assert 50 <= h and 80 <= w
    assert w / h == pytest.approx(86 / 57, rel=0.1)


def test_image_grid_gap_pixels_are_white_and_values_clipped(tmp_path: Path) -> None:
    black = np.zeros((4, 784))
    black[0] = -5.0  # clipped to 0
    img = _read(image_grid(black, tmp_path / "g.png", image_shape=(28, 28), nrow=1))
    rgb = img[..., :3]
    assert rgb.min() == pytest.approx(0.0)  # cells are black
    assert rgb.max() == pytest.approx(1.0)  # gaps are white


def test_image_grid_colour_and_labels(tmp_path: Path) -> None:
    imgs = _imgs(4, 32 * 32 * 3)
    out = image_grid(
        torch.from_numpy(imgs),
        tmp_path / "c.png",
        image_shape=(32, 32, 3),
        nrow=2,
        title="colour",
        row_labels=["a", "b"],
        col_labels=["x", "y"],
    )
    _read(out)
    # channels-first images are accepted too
    _read(image_grid(imgs, tmp_path / "chw.png", image_shape=(3, 32, 32)))
    with pytest.raises(ConfigError, match="row_labels"):
        image_grid(imgs, tmp_path / "bad.png", image_shape=(32, 32, 3), nrow=2, row_labels=["a"])


def test_bad_image_shape_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"image_shape=\(32, 32\) needs 1024"):
        image_grid(_imgs(4), tmp_path / "x.png", image_shape=(32, 32))
    with pytest.raises(ConfigError, match="image_shape must be"):
        image_grid(_imgs(4), tmp_path / "x.png", image_shape=(28, 28, 1, 1))
    with pytest.raises(DataError, match="image_shape"):
        reconstructions(_imgs(3), _imgs(3), tmp_path / "r.png", image_shape=(27, 27))
    with pytest.raises(ConfigError, match="nrow"):
        image_grid(_imgs(4), tmp_path / "x.png", image_shape=(28, 28), nrow=0)
    assert not (tmp_path / "x.png").exists()


def test_reconstructions_two_rows_and_pairs(tmp_path: Path) -> None:
    x = _imgs(30)
    img = _read(reconstructions(x, x[::-1], tmp_path / "r.png", image_shape=(28, 28), n=10))
    assert img.shape[1] > 2 * img.shape[0]  # 10 wide x 2 tall
    img2 = _read(reconstructions(x, x, tmp_path / "r2.png", image_shape=(28, 28), n=25))
    assert img2.shape[0] > 2 * img.shape[0]  # 6 rows
    with pytest.raises(DataError, match="same number"):
        reconstructions(x, x[:5], tmp_path / "r3.png", image_shape=(28, 28))


def test_style_grid(tmp_path: Path) -> None:
    img = _read(style_grid(_imgs(30), tmp_path / "s.png", image_shape=(28, 28), n_styles=3, n_classes=10))
    assert img.shape[1] > 2 * img.shape[0]
    with pytest.raises(DataError, match="n_styles\\*n_classes = 20"):
        style_grid(_imgs(30), tmp_path / "s2.png", image_shape=(28, 28), n_styles=2, n_classes=10)


def test_cluster_heads_uneven_members(tmp_path: Path) -> None:
    heads = _imgs(4)
    members = [_imgs(15, seed=1), _imgs(3, seed=2), np.zeros((0, 784)), _imgs(1, seed=3)[0]]
    img = _read(cluster_heads_grid(heads, members, tmp_path / "h.png", image_shape=(28, 28), title="heads"))
    assert img.shape[1] > 2 * img.shape[0]  # 4 rows x 11 columns (+ separator)
    with pytest.raises(DataError, match="members must be a list of 4"):
        cluster_heads_grid(heads, members[:3], tmp_path / "h2.png", image_shape=(28, 28))
    with pytest.raises(DataError, match=r"members\[1\]"):
        cluster_heads_grid(
            heads, [members[0], _imgs(2, 100), members[2], members[3]], tmp_path / "h3.png", image_shape=(28, 28)
        )


def test_manifold_grid_orientation(tmp_path: Path) -> None:
    seen = {}

    def decode(z: np.ndarray) -> np.ndarray:
        seen["z"] = z
        # brightness = (y - y0) / (y1 - y0): top rows must be bright
        return np.repeat(((z[:, 1:2] + 3) / 6), 784, axis=1)

    img = _read(manifold(decode, tmp_path / "m.png", image_shape=(28, 28), n=5))
    z = seen["z"]
    assert z.dtype == np.float32 and z.shape == (25, 2)
    assert z[0].tolist() == [-3.0, 3.0] and z[4].tolist() == [3.0, 3.0] and z[-1].tolist() == [3.0, -3.0]
    assert img.shape[0] > 50 and img.shape[1] > 50
    with pytest.raises(DataError, match="decode must return 25"):
        manifold(lambda z: np.zeros((3, 784)), tmp_path / "m2.png", image_shape=(28, 28), n=5)
    with pytest.raises(ConfigError, match="extent"):
        manifold(decode, tmp_path / "m3.png", image_shape=(28, 28), extent=(1, -1, 0, 1))


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("with_prior", [False, True])
def test_latent_scatter_variants(tmp_path: Path, k: int, with_labels: bool, with_prior: bool) -> None:
    rng = np.random.default_rng(k)
    codes = rng.standard_normal((500, k))
    labels = rng.integers(0, 10, 500) if with_labels else None
    prior = rng.standard_normal((300, k)) if with_prior else None
    img = _read(latent_scatter(codes, tmp_path / "l.png", labels=labels, prior_samples=prior, title="t"))
    if with_prior:
        assert img.shape[1] > 1.6 * img.shape[0]  # two panels side by side
    else:
        assert img.shape[1] < 1.6 * img.shape[0]


def test_latent_scatter_many_classes_and_bad_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((200, 2))
    _read(latent_scatter(codes, tmp_path / "a.png", labels=rng.integers(-1, 16, 200), n_classes=16))
    _read(latent_scatter(codes, tmp_path / "b.png", labels=rng.integers(0, 50, 200), n_classes=50))
    with pytest.raises(DataError, match="labels must be -1 or in 0..9"):
        latent_scatter(codes, tmp_path / "c.png", labels=np.full(200, 12))
    with pytest.raises(DataError, match="prior_samples"):
        latent_scatter(codes, tmp_path / "c.png", prior_samples=np.zeros((5, 3)))
    with pytest.raises(DataError, match="codes must be"):
        latent_scatter(codes[:, :1], tmp_path / "c.png")


def test_curves_skips_missing_keys(tmp_path: Path) -> None:
    history = [{"epoch": e, "loss": 1.0 / e, "acc": (0.5 if e % 2 else None)} for e in range(1, 6)]
    img = _read(curves(history, ["loss", "acc", "absent"], tmp_path / "c.png", title="c"))
    assert img.shape[0] > 100 and img.shape[1] > 100
    _read(curves(history, ["absent"], tmp_path / "empty.png"))
    _read(curves([], ["loss"], tmp_path / "none.png"))
