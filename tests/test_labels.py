"""Label errors end in one clear line at the command line (issue: label information)."""

import numpy as np
import pytest

from aae.cli import main


@pytest.fixture
def npz(tmp_path, digits):
    def write(name, **arrays):
        path = tmp_path / f"{name}.npz"
        np.savez(path, x=digits.train.x[:500].reshape(-1, 8, 8), **arrays)
        return str(path)

    return write


def train(data, tmp_path, *sets):
    sets = [a for s in ("model.hidden=[16]", "model.disc_hidden=[8]", "train.epochs=1", *sets) for a in ("--set", s)]
    return main(
        [
            "train",
            "--config",
            "demo",
            "--data",
            data,
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
            "--no-figures",
            *sets,
        ]
    )


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aae: error: "), err
    return err[0]


def test_label_ten_for_ten_classes(npz, digits, tmp_path, capsys):
    y = digits.train.y[:500].copy()
    y[7] = 10
    assert train(npz("ten", y=y), tmp_path) == 2
    assert "= 10 is not a valid label; allowed: -1 (unlabeled) or 0..9" in one_line_error(capsys)


def test_float_label(npz, digits, tmp_path, capsys):
    y = digits.train.y[:500].astype(float)
    y[3] = 2.5
    assert train(npz("float", y=y), tmp_path) == 2
    assert "2.5" in one_line_error(capsys)


def test_missing_label_column_for_the_supervised_regime(npz, tmp_path, capsys):
    assert train(npz("nolabels"), tmp_path, "model.regime=supervised", "model.prior={name='gaussian'}") == 2
    assert "needs labels" in one_line_error(capsys)


def test_unlabeled_points_are_welcome_in_the_label_conditioned_regime(npz, digits, tmp_path, capsys):
    y = digits.train.y[:500].copy()
    y[::2] = -1
    assert train(npz("half", y=y), tmp_path) == 0
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()


def test_a_config_that_keeps_no_labels_trains_where_the_regime_needs_none(npz, digits, tmp_path, capsys):
    # mnist_dimred_unsup20's case: data.n_labeled = 0 in a regime that can train without labels
    data = npz("kept-none", y=digits.train.y[:500])
    sets = ("model.regime=dim_reduction", "model.prior={name='gaussian'}", "data.n_labeled=0")
    assert train(data, tmp_path, *sets) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()
