"""RunLog: metrics.jsonl, metrics.csv and TensorBoard event files, read back."""

import csv
import io
import json
import sys

import numpy as np
import pytest
from matplotlib.image import imread

from aae.errors import ConfigError
from aae.training.runlog import RunLog
from conftest import TINY_ARGS, run_main


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_go_to_jsonl_and_csv_with_a_column_for_every_key_so_far(tmp_path):
    log = RunLog(tmp_path)
    log.reset([])
    log.append({"epoch": 1, "reconstruction": 2.5})
    log.append({"epoch": 2, "reconstruction": 2.0})
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["epoch,reconstruction", "1,2.5", "2,2.0"]
    log.append({"epoch": 3, "reconstruction": 1.5, "error": 0.25})  # a new column: the file is rewritten
    rows = read_csv(tmp_path / "metrics.csv")
    assert list(rows[0]) == ["epoch", "reconstruction", "error"]
    assert [r["error"] for r in rows] == ["", "", "0.25"]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["epoch"] for s in lines] == [1, 2, 3]
    log.close()


def test_reset_rewrites_both_files_from_the_given_rows(tmp_path):
    log = RunLog(tmp_path)
    for e in range(1, 5):
        log.append({"epoch": e, "loss": float(e)})
    log.reset([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 2.0, "extra": 7}])  # e.g. resumed at epoch 2
    assert [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        {"epoch": 1, "loss": 1.0},
        {"epoch": 2, "loss": 2.0, "extra": 7},
    ]
    assert read_csv(tmp_path / "metrics.csv") == [
        {"epoch": "1", "loss": "1.0", "extra": ""},
        {"epoch": "2", "loss": "2.0", "extra": "7"},
    ]
    log.append({"epoch": 3, "loss": 3.0})
    assert read_csv(tmp_path / "metrics.csv")[-1] == {"epoch": "3", "loss": "3.0", "extra": ""}


def test_without_run_dir_or_log_dir_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with RunLog(None) as log:
        log.append({"epoch": 1})
        log.scalars(1, {"a": 1.0})
        log.image("x", np.zeros((2, 2)), 1)
    assert list(tmp_path.iterdir()) == []


def test_log_dir_without_tensorboard_is_a_config_error_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        RunLog(tmp_path, log_dir=str(tmp_path / "tb"))


def test_scalars_and_images_are_read_back_from_the_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = RunLog(None, log_dir=str(tmp_path / "tb"))
    log.scalars(1, {"reconstruction": 3.0, "error": 0.5, "nan": float("nan"), "note": "skipped"})
    log.scalars(2, {"reconstruction": 2.0})
    log.image("samples", np.linspace(0, 1, 12).reshape(3, 4), 2)
    log.image("colour", np.ones((4, 5, 3)), 2)
    with pytest.raises(ValueError, match=r"image 'bad' has shape \(2, 2, 2\)"):
        log.image("bad", np.zeros((2, 2, 2)), 1)
    log.close()
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0}).Reload()
    assert sorted(events.Tags()["scalars"]) == ["error", "reconstruction"]
    assert [(e.step, e.value) for e in events.Scalars("reconstruction")] == [(1, 3.0), (2, 2.0)]
    assert sorted(events.Tags()["images"]) == ["colour", "samples"]
    grey, colour = events.Images("samples")[0], events.Images("colour")[0]
    assert (grey.step, grey.height, grey.width) == (2, 3, 4) and (colour.height, colour.width) == (4, 5)
    # the pictures themselves, as 8-bit PNGs
    pixels = lambda event: imread(io.BytesIO(event.encoded_image_string), format="png")  # noqa: E731
    read = pixels(grey)
    grey_pixels = read if read.ndim == 2 else read[..., 0]
    np.testing.assert_allclose(grey_pixels, np.linspace(0, 1, 12).reshape(3, 4), atol=1 / 255)
    assert (pixels(colour)[..., :3] == 1).all()


def test_aae_train_log_dir_writes_the_epoch_metrics_as_tensorboard_events(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, tb = tmp_path / "run", tmp_path / "tb"
    argv = ["train", "--config", "demo", "--epochs", "2", *TINY_ARGS, "--no-figures", "--out", str(run)]
    rc, _, err = run_main([*argv, "--log-dir", str(tb)])
    assert rc == 0, err
    events = EventAccumulator(str(tb), size_guidance={"scalars": 0}).Reload()
    # each epoch's row of metrics.jsonl, every number in it under its own name at the epoch's step
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    logged = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    expected = {}
    for r in rows:
        for key, value in r.items():
            if key != "epoch":
                expected.setdefault(key, {})[r["epoch"]] = value
    assert logged.keys() == expected.keys() and "test_mmd" in logged
    for tag, values in expected.items():
        assert logged[tag] == pytest.approx(values, rel=1e-6), tag
