"""Label errors end in one clear line at the command line (issue: label information)."""

import numpy as np
import pytest

from aae import experiment
from aae.training import checkpoint
from conftest import DEMO, TINY_ARGS, run_main, set_args


@pytest.fixture
def npz(tmp_path, digits):
    def write(name, **arrays):
        path = tmp_path / f"{name}.npz"
        np.savez(path, x=digits.train.x[:500].reshape(-1, 8, 8), **arrays)
        return str(path)

    return write


def train(data, tmp_path, *sets) -> tuple[int, str]:
    """``aae train`` of the demo config on ``data`` for one epoch: its exit status and stderr."""
    argv = [*DEMO, "--data", data, "--out", str(tmp_path / "run"), *TINY_ARGS, "--no-figures", *set_args(*sets)]
    rc, _, err = run_main(argv)
    return rc, err


@pytest.fixture
def trained_on(monkeypatch):
    """What a training is given: the training split's images and the labels the regime sees."""
    seen = {}
    labels_of = experiment.train_labels

    def kept(cfg, splits):
        seen.update(x=splits.train.x, y=labels_of(cfg, splits))
        return seen["y"]

    monkeypatch.setattr(experiment, "train_labels", kept)
    return seen


def one_line_error(rc: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("aae: error: "), err
    return lines[0]


def test_label_ten_for_ten_classes(npz, digits, tmp_path):
    y = digits.train.y[:500].copy()
    y[7] = 10
    error = one_line_error(*train(npz("ten", y=y), tmp_path))
    assert "= 10 is not a valid label; allowed: -1 (unlabeled) or 0..9" in error


def test_float_label(npz, digits, tmp_path):
    y = digits.train.y[:500].astype(float)
    y[3] = 2.5
    assert "2.5" in one_line_error(*train(npz("float", y=y), tmp_path))


def test_missing_label_column_for_the_supervised_regime(npz, tmp_path):
    supervised = ("model.regime=supervised", "model.prior={name='gaussian'}")
    assert "needs labels" in one_line_error(*train(npz("nolabels"), tmp_path, *supervised))


def test_unlabeled_points_are_welcome_in_the_label_conditioned_regime(npz, digits, tmp_path, trained_on):
    x, y = digits.train.x[:500], digits.train.y[:500].copy()
    y[::2] = -1
    rc, err = train(npz("half", y=y), tmp_path)
    assert rc == 0, err
    assert checkpoint.read_checkpoint(tmp_path / "run")[1]["epoch"] == "1"
    # every training image comes with its own label from the file, -1 included: none is dropped
    given = {row.tobytes(): label for row, label in zip(x, y)}
    assert len(given) == 500 and len(trained_on["x"]) == len(trained_on["y"]) == 405  # the rest: valid and test
    assert [given[row.tobytes()] for row in trained_on["x"]] == trained_on["y"].tolist()
    assert 0.4 < (trained_on["y"] == -1).mean() < 0.6


def test_a_config_that_keeps_no_labels_trains_where_the_regime_needs_none(npz, digits, tmp_path, trained_on):
    # mnist_dimred_unsup20's case: data.n_labeled = 0 in a regime that can train without labels
    data = npz("kept-none", y=digits.train.y[:500])
    rc, err = train(data, tmp_path, "model.regime=dim_reduction", "model.prior={name='gaussian'}", "data.n_labeled=0")
    assert rc == 0, err
    assert checkpoint.read_checkpoint(tmp_path / "run")[1]["epoch"] == "1"
    assert len(trained_on["x"]) == 405 and trained_on["y"] is None  # the file's labels are not trained on
