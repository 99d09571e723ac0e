"""Tests for aae.evaluation.grids and aae.evaluation.charts: each picture is a real PNG, and it shows
its data where its name says (each image in its cell, each code at its place, each value on its
curve), read from the figure as it was drawn."""

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


def _png_shows(path: Path, canvas: np.ndarray) -> None:
    """The PNG is ``canvas`` at 4 pixels a pixel (a small canvas's scale) in savefig's 5-pixel pad."""
    img = _read(path)[..., :3]
    h, w = canvas.shape[:2]
    assert img.shape[:2] == (4 * h + 10, 4 * w + 10)
    centres = lambda n: 5 + 4 * np.arange(n) + 2  # noqa: E731
    rgb = canvas if canvas.ndim == 3 else np.repeat(canvas[..., None], 3, axis=2)
    np.testing.assert_allclose(img[centres(h)][:, centres(w)], rgb, atol=1 / 255 + 1e-6)  # 8 bits a channel


def _cell(canvas: np.ndarray, row: int, x0: int, size: int = 28) -> np.ndarray:
    """The square cell of ``size`` pixels in grid row ``row`` (1-pixel gaps) from column ``x0``."""
    y0 = row * (size + 1)
    return canvas[y0 : y0 + size, x0 : x0 + size]


def _col(c: int, size: int = 28) -> int:
    return c * (size + 1)


class Drawn(dict):
    """One saved figure as it was drawn, read before its PNG is written and the figure cleared."""

    def __init__(self, fig) -> None:
        axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        ax = axes[0]
        legend = fig.legends[0] if fig.legends else ax.get_legend()
        super().__init__(
            canvas=np.asarray(ax.images[0].get_array(), dtype=np.float64) if ax.images else None,
            rows=[t.get_text() for t in ax.get_yticklabels()],
            cols=[t.get_text() for t in ax.get_xticklabels()],
            title=ax.get_title(),
            labels=(ax.get_xlabel(), ax.get_ylabel()),
            # per panel: each scatter's points, colours and colour values
            points=[[np.asarray(c.get_offsets(), dtype=np.float64) for c in a.collections] for a in axes],
            colours=[[c.get_facecolor() for c in a.collections] for a in axes],
            values=[[c.get_array() for c in a.collections] for a in axes],
            limits=[(a.get_xlim(), a.get_ylim()) for a in axes],
            lines={line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines},
            texts=[t.get_text() for t in ax.texts],
            legend=[t.get_text() for t in legend.get_texts()] if legend else [],
            colorbar=len(fig.axes) > len(axes),
        )


@pytest.fixture
def drawn(monkeypatch) -> list[Drawn]:
    """Every figure a picture function of grids or charts saves, in order, as it was drawn."""
    from aae.evaluation import charts, grids

    figures, save = [], grids.save_figure

    def keep(fig, path):
        figures.append(Drawn(fig))
        return save(fig, path)

    monkeypatch.setattr(grids, "save_figure", keep)
    monkeypatch.setattr(charts, "save_figure", keep)
    return figures


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
    grey = np.full((4, 64), 0.4)
    grey[0] = -5.0  # clipped to 0
    grey[1, :8] = 7.0  # clipped to 1
    out = image_grid(grey, tmp_path / "g.png", image_shape=(8, 8), nrow=1)
    canvas = np.ones((8, 4 * 9 - 1))  # white, but where the four cells sit
    for i, img in enumerate(np.clip(grey, 0, 1)):
        canvas[:, i * 9 : i * 9 + 8] = img.reshape(8, 8)
    _png_shows(out, canvas)


def test_image_grid_colour_and_labels(tmp_path: Path, drawn) -> None:
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
    grid = drawn[0]
    assert (grid["title"], grid["rows"], grid["cols"]) == ("colour", ["a", "b"], ["x", "y"])
    assert grid["canvas"].shape == (65, 65, 3)
    for i, img in enumerate(imgs):  # row-major, each image in its own colours
        np.testing.assert_allclose(_cell(grid["canvas"], i // 2, _col(i % 2, 32), 32), img.reshape(32, 32, 3))
    assert (grid["canvas"][32] == 1).all() and (grid["canvas"][:, 32] == 1).all()  # the gaps are white
    # channels-first images are accepted too: the same grid once the channels go last
    chw = imgs.reshape(4, 3, 32, 32)
    chw_out = image_grid(imgs, tmp_path / "chw.png", image_shape=(3, 32, 32))
    hwc_out = image_grid(chw.transpose(0, 2, 3, 1).reshape(4, -1), tmp_path / "hwc.png", image_shape=(32, 32, 3))
    np.testing.assert_array_equal(drawn[1]["canvas"], drawn[2]["canvas"])
    _png_shows(chw_out, drawn[1]["canvas"])
    np.testing.assert_array_equal(_read(chw_out), _read(hwc_out))
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


def test_reconstructions_two_rows_and_pairs(tmp_path: Path, drawn) -> None:
    x, x_hat = _imgs(30), _imgs(30, seed=1)
    _read(reconstructions(x, x_hat, tmp_path / "r.png", image_shape=(28, 28), n=10))
    pair = drawn[0]
    assert pair["rows"] == ["original", "reconstruction"] and pair["canvas"].shape == (57, _col(10) - 1)
    for i in range(10):  # each original above its own reconstruction
        np.testing.assert_allclose(_cell(pair["canvas"], 0, _col(i)), x[i].reshape(28, 28))
        np.testing.assert_allclose(_cell(pair["canvas"], 1, _col(i)), x_hat[i].reshape(28, 28))
    _read(reconstructions(x, x_hat, tmp_path / "r2.png", image_shape=(28, 28), n=25))
    pairs = drawn[1]
    assert pairs["rows"] == ["original", "reconstruction"] * 3  # 25 images: pairs of rows of 10, 10 and 5
    for i in range(25):
        row, col = 2 * (i // 10), _col(i % 10)
        np.testing.assert_allclose(_cell(pairs["canvas"], row, col), x[i].reshape(28, 28))
        np.testing.assert_allclose(_cell(pairs["canvas"], row + 1, col), x_hat[i].reshape(28, 28))
    assert (pairs["canvas"][2 * 29 * 2 :, _col(5) :] == 1).all()  # the last pair's rows end after 5
    with pytest.raises(DataError, match="same number"):
        reconstructions(x, x[:5], tmp_path / "r3.png", image_shape=(28, 28))


def test_style_grid(tmp_path: Path, drawn) -> None:
    imgs = _imgs(30)
    _read(style_grid(imgs, tmp_path / "s.png", image_shape=(28, 28), n_styles=3, n_classes=10))
    grid = drawn[0]
    assert grid["cols"] == [str(c) for c in range(10)] and grid["rows"] == []
    for style in range(3):  # a row per style, a column per class: images come style by style
        for c in range(10):
            np.testing.assert_allclose(_cell(grid["canvas"], style, _col(c)), imgs[style * 10 + c].reshape(28, 28))
    with pytest.raises(DataError, match="n_styles\\*n_classes = 20"):
        style_grid(_imgs(30), tmp_path / "s2.png", image_shape=(28, 28), n_styles=2, n_classes=10)


def test_cluster_heads_uneven_members(tmp_path: Path, drawn) -> None:
    heads = _imgs(4)
    members = [_imgs(15, seed=1), _imgs(3, seed=2), np.zeros((0, 784)), _imgs(1, seed=3)[0]]
    _read(cluster_heads_grid(heads, members, tmp_path / "h.png", image_shape=(28, 28), title="heads"))
    grid = drawn[0]
    canvas, sep = grid["canvas"], 28 // 3  # the wide gap after the head: a third of an image
    assert grid["title"] == "heads" and grid["rows"] == ["0", "1", "2", "3"]
    assert canvas.shape == (4 * 29 - 1, 28 + sep + 10 * 29 - 1)  # a head and at most 10 members a row
    member = lambda m: 28 + sep + _col(m)  # noqa: E731  where member m of a row starts
    shown = [members[0][:10], members[1], [], members[3][None]]
    for i in range(4):
        np.testing.assert_allclose(_cell(canvas, i, 0), heads[i].reshape(28, 28))
        assert (_cell(canvas, i, 28)[:, :sep] == 1).all()
        for m, img in enumerate(shown[i]):
            np.testing.assert_allclose(_cell(canvas, i, member(m)), img.reshape(28, 28))
        assert (canvas[i * 29 : i * 29 + 28, member(len(shown[i])) :] == 1).all()  # blank after the last
    with pytest.raises(DataError, match="members must be a list of 4"):
        cluster_heads_grid(heads, members[:3], tmp_path / "h2.png", image_shape=(28, 28))
    with pytest.raises(DataError, match=r"members\[1\]"):
        cluster_heads_grid(
            heads, [members[0], _imgs(2, 100), members[2], members[3]], tmp_path / "h3.png", image_shape=(28, 28)
        )


def test_manifold_grid_orientation(tmp_path: Path, drawn) -> None:
    seen = {}

    def decode(z: np.ndarray) -> np.ndarray:
        seen["z"] = z
        # brightness = (y - y0) / (y1 - y0): top rows must be bright
        return np.repeat(((z[:, 1:2] + 3) / 6), 784, axis=1)

    _read(manifold(decode, tmp_path / "m.png", image_shape=(28, 28), n=5))
    z = seen["z"]
    assert z.dtype == np.float32 and z.shape == (25, 2)
    assert z[0].tolist() == [-3.0, 3.0] and z[4].tolist() == [3.0, 3.0] and z[-1].tolist() == [3.0, -3.0]
    canvas = drawn[0]["canvas"]
    assert canvas.shape == (5 * 29 - 1, 5 * 29 - 1)
    for r in range(5):  # from bright (z2 = 3) at the top to dark (z2 = -3) at the bottom
        for c in range(5):
            assert np.allclose(_cell(canvas, r, _col(c)), 1 - r / 4)
    assert drawn[0]["labels"] == ("z1 from -3 to 3", "z2 from -3 (bottom) to 3 (top)")
    with pytest.raises(DataError, match="decode must return 25"):
        manifold(lambda z: np.zeros((3, 784)), tmp_path / "m2.png", image_shape=(28, 28), n=5)
    with pytest.raises(ConfigError, match="extent"):
        manifold(decode, tmp_path / "m3.png", image_shape=(28, 28), extent=(1, -1, 0, 1))


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("with_labels", [False, True])
@pytest.mark.parametrize("with_prior", [False, True])
def test_latent_scatter_variants(tmp_path: Path, drawn, k: int, with_labels: bool, with_prior: bool) -> None:
    from matplotlib import colormaps
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(k)
    codes = rng.standard_normal((500, k))
    labels = rng.integers(0, 10, 500) if with_labels else None
    prior = rng.standard_normal((300, k)) if with_prior else None
    img = _read(latent_scatter(codes, tmp_path / "l.png", labels=labels, prior_samples=prior, title="t"))
    if with_prior:
        assert img.shape[1] > 1.6 * img.shape[0]  # two panels side by side
    else:
        assert img.shape[1] < 1.6 * img.shape[0]
    chart = drawn[0]
    to_2d = (lambda v: v) if k == 2 else PCA(n_components=2).fit(codes).transform  # k > 2: the codes' PCA
    codes_2d = to_2d(codes)
    if with_labels:  # one scatter per class, in its own tab10 colour
        assert chart["legend"] == [str(c) for c in range(10)]
        for c, (points, colour) in enumerate(zip(chart["points"][0], chart["colours"][0])):
            np.testing.assert_allclose(points, codes_2d[labels == c])
            assert tuple(colour[0]) == pytest.approx(colormaps["tab10"](c))
    else:
        np.testing.assert_allclose(np.concatenate(chart["points"][0]), codes_2d)
    if with_prior:  # the prior's samples on the right, through the same map, on the same axes
        np.testing.assert_allclose(np.concatenate(chart["points"][1]), to_2d(prior), atol=1e-12)
        assert chart["limits"][0] == chart["limits"][1]
    (x0, x1), (y0, y1) = chart["limits"][0]
    everything = np.concatenate([codes_2d] + ([to_2d(prior)] if with_prior else []))
    assert x0 < everything[:, 0].min() and everything[:, 0].max() < x1
    assert y0 < everything[:, 1].min() and everything[:, 1].max() < y1


def test_latent_scatter_many_classes_and_bad_input(tmp_path: Path, drawn) -> None:
    from matplotlib import colormaps

    rng = np.random.default_rng(0)
    codes = rng.standard_normal((200, 2))
    sixteen, fifty = rng.integers(-1, 16, 200), rng.integers(0, 50, 200)
    _read(latent_scatter(codes, tmp_path / "a.png", labels=sixteen, n_classes=16))
    _read(latent_scatter(codes, tmp_path / "b.png", labels=fifty, n_classes=50))
    # up to 20 classes: unlabelled points grey, then a tab20 colour per class, named in the legend
    points, colours = drawn[0]["points"][0], drawn[0]["colours"][0]
    assert drawn[0]["legend"] == ["unlabelled", *(str(c) for c in range(16))]
    np.testing.assert_allclose(points[0], codes[sixteen == -1])
    assert tuple(colours[0][0]) == pytest.approx((0.827, 0.827, 0.827, 1.0), abs=1e-3)  # lightgrey
    for c in range(16):
        np.testing.assert_allclose(points[c + 1], codes[sixteen == c])
        assert tuple(colours[c + 1][0]) == pytest.approx(colormaps["tab20"](c))
    # more: one scatter coloured by the label's value, with a colour bar instead of a legend
    (points,), (values,) = drawn[1]["points"][0], drawn[1]["values"][0]
    np.testing.assert_allclose(points, codes)
    assert values.tolist() == fifty.tolist() and drawn[1]["colorbar"] and drawn[1]["legend"] == []
    with pytest.raises(DataError, match="labels must be -1 or in 0..9"):
        latent_scatter(codes, tmp_path / "c.png", labels=np.full(200, 12))
    with pytest.raises(DataError, match="prior_samples"):
        latent_scatter(codes, tmp_path / "c.png", prior_samples=np.zeros((5, 3)))
    with pytest.raises(DataError, match="codes must be"):
        latent_scatter(codes[:, :1], tmp_path / "c.png")


def test_curves_skips_missing_keys(tmp_path: Path, drawn) -> None:
    history = [{"epoch": e, "loss": 1.0 / e, "acc": (0.5 if e % 2 else None)} for e in range(1, 6)]
    _read(curves(history, ["loss", "acc", "absent"], tmp_path / "c.png", title="c"))
    chart = drawn[0]
    assert chart["lines"] == {"loss": ([1, 2, 3, 4, 5], [1 / e for e in range(1, 6)]), "acc": ([1, 3, 5], [0.5] * 3)}
    assert chart["legend"] == ["loss", "acc"] and chart["title"] == "c" and chart["texts"] == []
    _read(curves(history, ["absent"], tmp_path / "empty.png"))
    _read(curves([], ["loss"], tmp_path / "none.png"))
    assert [(d["lines"], d["texts"]) for d in drawn[1:]] == [
        ({}, ["no values for absent"]),
        ({}, ["no values for loss"]),
    ]
