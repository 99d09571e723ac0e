"""Images: the convolutional networks, and the user's pictures in three forms (an IDX directory in
MNIST's layout, a folder of pictures, an .npz with its own test set), through every regime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aae.config.load import load_config
from aae.data.sets import load
from aae.errors import ConfigError, DataError
from aae.experiment import run
from aae.model import build_model
from aae.model.conv import ConvDecoder, ConvFeatures, stage_sizes
from aae.training.checkpoint import load as load_run
from conftest import write_idx

CONV = ("model.net='conv'", "model.channels=4", "model.hidden=[16]", "model.disc_hidden=[16]", "train.epochs=1")
REGIMES = {
    "unsupervised": [],
    "label_conditioned": [],
    "supervised": [],
    "semi_supervised": ["data.n_labeled=20"],
    "clustering": ["model.n_classes=4"],
    "dim_reduction": [],
}


def blobs(n: int, shape: tuple[int, ...], classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pictures whose class is where a bright square sits, with noise: learnable by any network."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, *shape)).astype(np.uint8)
    h, w = shape[:2]
    for i, c in enumerate(y):
        top = (c * (h // classes)) % (h - 6)
        x[i, top : top + 6, 2:8] = 250
    return x, y


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("fashion")
    for prefix, n, seed in (("train", 240, 0), ("t10k", 60, 1)):
        x, y = blobs(n, (28, 28), 3, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def picture_dir(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("pictures")
    x, y = blobs(150, (32, 32, 3), 3, 2)
    for i, (img, c) in enumerate(zip(x, y)):
        sub = folder / ["ant", "bee", "cow"][c]
        sub.mkdir(exist_ok=True)
        Image.fromarray(img).save(sub / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def npz_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arrays") / "set.npz"
    x, y = blobs(200, (32, 32, 3), 3, 3)
    xt, yt = blobs(50, (32, 32, 3), 3, 4)
    np.savez(path, x=x, y=y, x_test=xt, y_test=yt)
    return path


# ----------------------------------------------------------------------------- networks


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3), (8, 8, 1), (17, 23, 2)])
def test_conv_nets_round_trip_the_image_shape(shape):
    h, w, c = shape
    sizes = stage_sizes(h, w)
    assert max(sizes[-1]) <= 4 and all(a == (b + 1) // 2 for (a, _), (b, _) in zip(sizes[1:], sizes))
    enc = ConvFeatures(shape, channels=4)
    x = torch.rand(3, h * w * c)
    assert enc(x).shape == (3, enc.out_dim)
    dec = ConvDecoder(5, shape, channels=4)
    assert dec(torch.rand(3, 5)).shape == (3, h * w * c)


def test_conv_encoder_reads_pixels_in_hwc_order():
    """A flattened HWC row is viewed as (c, h, w) without mixing channels: a picture bright in one
    channel only gives the first convolution input in that channel only."""
    enc = ConvFeatures((8, 8, 3), channels=2)
    seen = {}
    enc.net[0].register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    img = torch.zeros(1, 8, 8, 3)
    img[..., 1] = 1.0
    enc(img.reshape(1, -1))
    assert seen["x"].shape == (1, 3, 8, 8)
    assert seen["x"][0, 1].min() == 1 and seen["x"][0, [0, 2]].abs().max() == 0


@pytest.mark.parametrize("objective", ["aae", "vae", "ae", "classifier"])
@pytest.mark.parametrize("encoder", ["deterministic", "gaussian", "universal"])
def test_conv_model_for_every_objective_and_encoder(objective, encoder):
    if objective == "vae" and encoder != "gaussian":
        pytest.skip("the VAE has a Gaussian encoder only")
    regime = "semi_supervised" if objective == "classifier" else "unsupervised"
    cfg = load_config(
        None, [*CONV, f"model.objective='{objective}'", f"model.encoder='{encoder}'", f"model.regime='{regime}'"]
    )
    model = build_model(cfg.model, 3 * 32 * 32, image_shape=(32, 32, 3))
    codes = model.encode(torch.rand(4, 3 * 32 * 32))
    assert type(model.encoder.features).__name__ == "ConvFeatures"
    if objective != "classifier":
        assert codes.z.shape == (4, 2) and model.decode(model.representation(codes)).shape == (4, 3 * 32 * 32)


def test_conv_refuses_flat_data_and_tiny_images():
    cfg = load_config(None, CONV)
    with pytest.raises(ConfigError, match="needs images.*model.net = 'mlp'"):
        build_model(cfg.model, 64)
    with pytest.raises(ConfigError, match="at least 8x8 pixels, found 6x6"):
        build_model(cfg.model, 36, image_shape=(6, 6))
    with pytest.raises(ConfigError, match="does not hold 65 features"):
        build_model(cfg.model, 65, image_shape=(8, 8))


# ----------------------------------------------------------------------------- the user's data


def test_idx_directory_is_read_with_its_own_test_set(idx_dir):
    s = load(str(idx_dir))
    assert (len(s.train), len(s.valid), len(s.test)) == (200, 40, 60)  # a sixth of train for validation
    assert s.train.image_shape == (28, 28) and s.train.n_classes == 3
    assert 0 <= s.train.x.min() and s.train.x.max() <= 1


def test_idx_directory_missing_labels_is_one_line(tmp_path, idx_dir):
    for f in idx_dir.iterdir():
        if "labels" not in f.name or f.name.startswith("train"):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"no train-labels-idx1-ubyte\[\.gz\]"):
        load(str(tmp_path))


def test_picture_folder_classes_cache_and_resize(picture_dir, tmp_path):
    s = load(str(picture_dir), data_dir=tmp_path)
    assert s.train.image_shape == (32, 32, 3) and s.train.n_classes == 3
    assert len(s.train) + len(s.valid) + len(s.test) == 150
    cached = list((tmp_path / "cache" / "images").glob("*.npz"))
    assert len(cached) == 1
    again = load(str(picture_dir), data_dir=tmp_path)
    np.testing.assert_array_equal(again.train.x, s.train.x)
    small = load(str(picture_dir), data_dir=tmp_path, image_size=16)
    assert small.train.image_shape == (16, 16, 3)
    assert len(list((tmp_path / "cache" / "images").glob("*.npz"))) == 2  # keyed by the size asked for too


def test_picture_folder_with_train_and_test_and_grey(tmp_path):
    from PIL import Image

    for split, n in (("train", 12), ("test", 4)):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((10, 12), 20 * i, np.uint8)).save(tmp_path / split / c / f"{i}.png")
    s = load(str(tmp_path), data_dir=tmp_path / "data")
    assert len(s.test) == 8 and s.train.image_shape == (10, 12) and sorted(set(s.test.y)) == [0, 1]


def test_flat_picture_folder_has_no_labels(tmp_path):
    from PIL import Image

    for i in range(20):
        Image.fromarray(np.full((9, 9, 3), i, np.uint8)).save(tmp_path / f"{i}.jpg")
    s = load(str(tmp_path), data_dir=tmp_path / "data")
    assert s.train.y is None and s.train.image_shape == (9, 9, 3)


def test_bad_picture_folders_are_one_line_naming_the_file(tmp_path):
    from PIL import Image

    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="has no pictures"):
        load(str(empty), data_dir=tmp_path / "d")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(mixed / "a.png")
    Image.fromarray(np.zeros((12, 10), np.uint8)).save(mixed / "b.png")
    with pytest.raises(DataError, match=r"b\.png is 10x12 pixels but .*a\.png is 10x10.*data\.image_size"):
        load(str(mixed), data_dir=tmp_path / "d")
    assert load(str(mixed), data_dir=tmp_path / "d", image_size=[10, 10]).train.image_shape == (10, 10)
    (mixed / "c.png").write_bytes(b"not a picture")
    with pytest.raises(DataError, match=r"c\.png is not a readable picture"):
        load(str(mixed), data_dir=tmp_path / "d", image_size=10)


def test_npz_x_test_is_the_test_set(npz_file):
    s = load(str(npz_file))
    assert len(s.test) == 50 and len(s.train) + len(s.valid) == 200
    assert s.test.image_shape == (32, 32, 3) and s.test.n_classes == 3


# ----------------------------------------------------------------------------- every regime


@pytest.mark.slow
@pytest.mark.parametrize("data", ["idx_dir", "picture_dir", "npz_file"])
@pytest.mark.parametrize("regime", list(REGIMES))
def test_every_regime_trains_on_the_users_images(request, tmp_path, data, regime):
    source = request.getfixturevalue(data)
    extra = ["train.batch_size=40"]
    if regime in ("semi_supervised", "dim_reduction", "label_conditioned", "supervised"):
        extra.append("model.n_classes=3")
    cfg = load_config(None, [*CONV, f"model.regime='{regime}'", f"data.name='{source}'", *REGIMES[regime], *extra])
    cfg.data.data_dir = str(tmp_path / "data")
    result = run(cfg, out=tmp_path / "run", progress=False, figures=True)
    assert np.isfinite(result.history[-1]["reconstruction"])
    model = load_run(tmp_path / "run")
    assert model.image_shape == result.model.image_shape and model.image_shape[:2] in ((28, 28), (32, 32))
    assert (tmp_path / "run" / "figures" / "reconstructions.png").is_file()


@pytest.mark.slow
def test_svhn_recipe_trains_on_files_in_svhns_mat_layout(tmp_path):
    """SVHN cannot be downloaded here: the bundled recipe trains on files laid out as SVHN's are
    (X of shape (32, 32, 3, N), y of shape (N, 1) with 10 for the digit 0)."""
    import scipy.io

    folder = tmp_path / "svhn"
    folder.mkdir()
    for name, n, seed in (("train", 300, 5), ("test", 60, 6)):
        x, y = blobs(n, (32, 32, 3), 10, seed)
        scipy.io.savemat(
            folder / f"{name}_32x32.mat", {"X": np.moveaxis(x, 0, -1), "y": np.where(y == 0, 10, y)[:, None]}
        )
    cfg = load_config(
        "svhn_semi_1000",
        ["model.channels=4", "model.hidden=[16]", "model.disc_hidden=[16]", "train.epochs=1", "data.n_labeled=50"],
    )
    cfg.data.data_dir = str(tmp_path)
    result = run(cfg, out=tmp_path / "run", progress=False, figures=False)
    assert result.model.image_shape == (32, 32, 3) and type(result.model.encoder.features).__name__ == "ConvFeatures"
    assert 0 <= result.metrics["test_error"] <= 1


@pytest.mark.slow
def test_conv_run_resumes_bit_identical_to_training_straight_through(tmp_path):
    """scikit-learn's 8x8 digits on the convolutional networks: two epochs, then two more from the
    checkpoint, equal four straight (weights, losses, checkpoint), as for the MLPs."""
    over = [*CONV, "model.regime='semi_supervised'", "data.name='digits'", "data.n_labeled=50", "model.vat_weight=1"]
    straight = run(load_config(None, [*over, "train.epochs=4"]), out=tmp_path / "a", progress=False, figures=False)
    run(load_config(None, [*over, "train.epochs=2"]), out=tmp_path / "b", progress=False, figures=False)
    resumed = run(
        load_config(None, [*over, "train.epochs=4"]), out=tmp_path / "b", resume=True, progress=False, figures=False
    )
    keys = [k for k in straight.history[0] if k != "seconds"]
    assert [[r[k] for k in keys] for r in resumed.history] == [[r[k] for k in keys] for r in straight.history]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_run(tmp_path / "b").image_shape == (8, 8, 1)
