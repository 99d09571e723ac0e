"""Tests for the ``aae`` command (aae.cli.main in-process, plus one real subprocess)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aae.cli import main
from aae.config.load import bundled_configs
from aae.config.schema import DataConfig, EvalConfig, ModelConfig, TrainConfig
from aae.training import checkpoint as io
from conftest import DEMO, PNG_MAGIC, TINY_ARGS, restored_logger, run_main, set_args

FIGURES = ("latent.png", "samples.png", "reconstructions.png", "manifold.png")


@pytest.fixture(autouse=True)
def _isolate_logger():
    with restored_logger():
        yield


def printed_metrics(stdout: str) -> dict[str, str]:
    """The 'name value' lines that _print_metrics writes."""
    return {m[1]: m[2] for m in re.finditer(r"^((?:test|valid)_\w+)\s+(-?\d+\.\d{4})$", stdout, re.M)}


@pytest.fixture
def run_copy(trained, tmp_path):
    """A private copy of the trained run directory, for tests that change it."""
    dst = tmp_path / "run"
    shutil.copytree(trained.run, dst)
    return dst


def metrics_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- train


def test_train_writes_checkpoint_config_metrics_and_figures(trained):
    run_dir = trained.run
    assert (run_dir / io.CHECKPOINT).is_file()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["name"] == "demo" and cfg["model"]["regime"] == "label_conditioned"
    assert cfg["model"]["hidden"] == [32] and cfg["model"]["disc_hidden"] == [16]
    assert cfg["train"]["epochs"] == 2
    # where and how a run runs (--device, --threads, --no-progress) is not part of its config
    assert not {"device", "threads", "progress"} & set(cfg["train"])
    rows = metrics_rows(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert "test_mmd" not in rows[0] and "test_mmd" in rows[1]  # eval_every = 25, and always at the last epoch
    # the validation images' codes in their own class's part: a choice need not read the test set
    assert 0 <= rows[1]["valid_mode_accuracy"] <= 1 and rows[1]["valid_mmd"] > -0.1
    for name in (*FIGURES, "curves.png"):
        assert (run_dir / "figures" / name).read_bytes()[:8] == PNG_MAGIC, name
    _, meta = io.read_checkpoint(run_dir)
    assert meta["epoch"] == "2" and json.loads(meta["config"]) == cfg


def test_train_prints_the_test_metrics(trained):
    run_dir, out, err = trained
    assert re.search(rf"^trained demo for 2 epochs in \d+ s -> {re.escape(str(run_dir))}$", out, re.M)
    shown = printed_metrics(out)
    assert set(shown) == {"test_reconstruction", "test_mmd", "test_mode_accuracy"}
    assert 10 < float(shown["test_reconstruction"]) < 60  # nats per 8x8 digit
    assert 0 <= float(shown["test_mode_accuracy"]) <= 1
    assert "Traceback" not in err


def test_eval_prints_the_same_deterministic_metrics(trained, capsys):
    run_dir, train_out, _ = trained
    assert main(["eval", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    shown, at_train = printed_metrics(out), printed_metrics(train_out)
    assert set(shown) == {"test_reconstruction", "test_mmd", "test_mode_accuracy"}
    # a deterministic encoder: the reconstruction loss and mode accuracy are exactly those printed at training
    assert shown["test_reconstruction"] == at_train["test_reconstruction"]
    assert shown["test_mode_accuracy"] == at_train["test_mode_accuracy"]
    assert float(shown["test_mmd"]) > -0.1


def test_eval_write_rerecords_the_metrics_and_keeps_the_other_keys(run_copy, capsys):
    final = run_copy / "final.json"
    record = json.loads(final.read_text())
    final.write_text(json.dumps({**record, "test_mode_accuracy": -1.0, "selected_epoch": 7}))  # a stale record
    assert main(["eval", "--run", str(run_copy), "--write"]) == 0
    assert f"wrote {final}" in capsys.readouterr().out
    rewritten = json.loads(final.read_text())
    assert rewritten["selected_epoch"] == 7 and rewritten["test_mode_accuracy"] == pytest.approx(
        record["test_mode_accuracy"]
    )
    assert main(["eval", "--run", str(run_copy), "--write", "--tta-shift", "1"]) != 0
    assert "drop --tta-shift or --write" in capsys.readouterr().err


def test_eval_can_average_q_y_over_shifted_images(tmp_path):
    run_dir = tmp_path / "semi"
    semi = set_args("model.regime=semi_supervised", "data.n_labeled=100")
    rc, _, err = run_main([*DEMO, "--epochs", "2", "--out", str(run_dir), *TINY_ARGS, *semi])
    assert rc == 0, err
    plain, shifted = (run_main(["eval", "--run", str(run_dir), *extra]) for extra in ([], ["--tta-shift", "1"]))
    assert plain[0] == shifted[0] == 0
    errors = [float(printed_metrics(out)["test_error"]) for _, out, _ in (plain, shifted)]
    assert errors[0] != errors[1] and all(0 <= e <= 1 for e in errors)
    # beside it the validation error, measured as the run's own last epoch measured it (no shifts)
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert float(printed_metrics(plain[1])["valid_error"]) == pytest.approx(last["valid_error"], abs=5e-5)
    assert 0 <= float(printed_metrics(shifted[1])["valid_error"]) <= 1
    rc, _, err = run_main(["eval", "--run", str(run_dir), "--tta-shift", "-1"])
    assert rc == 2 and err == "aae: error: --tta-shift -1 is not allowed; give 0 to 32 pixels\n"


def test_eval_breaks_the_cluster_error_down_by_cluster(trained, tmp_path):
    run_dir = tmp_path / "clusters"
    clusters = set_args("model.regime=clustering", "model.n_classes=4")
    rc, _, err = run_main([*DEMO, "--out", str(run_dir), *TINY_ARGS, "--no-figures", *clusters])
    assert rc == 0, err
    rc, out, err = run_main(["eval", "--run", str(run_dir), "--clusters"])
    assert rc == 0, err
    rows = re.findall(
        r"^ +(\d+) +(\d+)  (\d) \( *([\d.]+) %\) +(\d) \( *([\d.]+) %\) +((?:\d:\d+ ?)+|\(empty\))$", out, re.M
    )
    assert sorted(int(r[0]) for r in rows) == [0, 1, 2, 3]
    printed = printed_metrics(out)
    assert sum(float(r[3]) for r in rows) == pytest.approx(100 * float(printed["test_cluster_error"]), abs=0.02)
    assert sum(float(r[5]) for r in rows) == pytest.approx(
        100 * float(printed["test_cluster_error_majority"]), abs=0.02
    )
    # the same protocol between the validation split's halves, printed beside it, no test image read
    assert 0 <= float(printed["valid_cluster_error"]) <= 1
    rc, _, err = run_main(["eval", "--run", str(trained.run), "--clusters"])
    assert rc != 0 and "no categorical head" in err


def test_a_classifier_run_is_measured_and_plotted_but_has_nothing_to_sample(tmp_path):
    run_dir = tmp_path / "nn"
    nn = set_args("model.regime=semi_supervised", "model.objective=classifier", "data.n_labeled=100")
    rc, out, err = run_main([*DEMO, "--out", str(run_dir), *TINY_ARGS, *nn])
    assert rc == 0, err
    assert set(printed_metrics(out)) == {"test_error", "valid_error"}
    assert set(metrics_rows(run_dir)[0]) >= {"classification", "valid_error"}
    assert "reconstruction" not in metrics_rows(run_dir)[0]
    rc, again, err = run_main(["eval", "--run", str(run_dir)])
    assert rc == 0 and printed_metrics(again) == printed_metrics(out), err
    rc, plotted, err = run_main(["plot", "--run", str(run_dir)])
    assert rc == 0 and plotted.split() == [str(run_dir / "figures" / "curves.png")], err
    rc, _, err = run_main(["sample", "--run", str(run_dir), "-n", "4", "--out", str(tmp_path / "s.npy")])
    assert rc == 2 and err == (
        f"aae: error: {run_dir} is a model.objective = 'classifier' run: it has no decoder to sample from\n"
    )
    assert not (tmp_path / "s.npy").exists()


def test_sample_writes_a_png_grid(trained, tmp_path, capsys):
    from aae.evaluation.grids import image_grid

    png, npy = tmp_path / "grid.png", tmp_path / "same.npy"
    assert main(["sample", "--run", str(trained.run), "-n", "16", "--out", str(png)]) == 0
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == PNG_MAGIC
    # the grid of the 16 samples the same seed gives as an array: 4 x 4 digits of 8 x 8 pixels
    assert main(["sample", "--run", str(trained.run), "-n", "16", "--out", str(npy)]) == 0
    same = image_grid(np.load(npy), tmp_path / "expected.png", image_shape=(8, 8), nrow=4)
    assert png.read_bytes() == same.read_bytes()


def test_sample_writes_npy_in_unit_range_and_is_seeded(trained, tmp_path, capsys):
    run_dir = str(trained.run)
    paths = [tmp_path / f"{name}.npy" for name in ("a", "b", "c")]
    assert main(["sample", "--run", run_dir, "-n", "16", "--out", str(paths[0])]) == 0
    assert main(["sample", "--run", run_dir, "-n", "16", "--out", str(paths[1])]) == 0
    assert main(["sample", "--run", run_dir, "-n", "16", "--seed", "1", "--out", str(paths[2])]) == 0
    a, b, c = (np.load(p) for p in paths)
    assert a.shape == (16, 64) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, b)  # the same --seed: the same samples
    assert not np.array_equal(a, c)
    assert capsys.readouterr().out.split() == [str(p) for p in paths]


def test_sample_label_on_a_label_conditioned_model_picks_the_prior_part(trained, tmp_path, monkeypatch):
    from aae.model.priors import GaussianMixture

    drawn = []
    sample = GaussianMixture.sample

    def kept(self, n, labels=None, generator=None):
        z = sample(self, n, labels, generator)
        drawn.append((labels, z))
        return z

    monkeypatch.setattr(GaussianMixture, "sample", kept)
    model = io.load(trained.run)
    for label in (3, 5):
        out = tmp_path / f"{label}.npy"
        assert main(["sample", "--run", str(trained.run), "-n", "16", "--label", str(label), "--out", str(out)]) == 0
        labels, z = drawn[-1]
        # the codes come from the label's part of the mixture, and the samples are their decodings
        assert labels.tolist() == [label] * 16 and model.prior.assign_part(z).tolist() == [label] * 16
        np.testing.assert_allclose(np.load(out), model.generate(16, z=z).numpy(), atol=1e-6)
    assert not np.array_equal(np.load(tmp_path / "3.npy"), np.load(tmp_path / "5.npy"))


def test_plot_redraws_the_figures(trained, run_copy, capsys):
    shutil.rmtree(run_copy / "figures")
    assert main(["plot", "--run", str(run_copy)]) == 0
    names = ("latent.png", "samples.png", "reconstructions.png", "manifold.png", "curves.png")
    assert capsys.readouterr().out.split() == [str(run_copy / "figures" / n) for n in names]
    for name in names:  # the very pictures that training drew, from the checkpoint and the log
        assert (run_copy / "figures" / name).read_bytes() == (trained.run / "figures" / name).read_bytes(), name


def test_train_resume_continues_the_run(run_copy, capsys):
    argv = ["train", "--config", "demo", "--epochs", "3", "--out", str(run_copy), "--resume", "--no-figures"]
    assert main([*argv, *TINY_ARGS]) == 0
    out, err = capsys.readouterr()
    assert "trained demo for 3 epochs" in out
    assert f"resumed {run_copy / io.CHECKPOINT} at epoch 2" in err
    assert [r["epoch"] for r in metrics_rows(run_copy)] == [1, 2, 3]
    assert io.read_checkpoint(run_copy)[1]["epoch"] == "3"


def test_train_into_a_used_run_dir_without_resume_is_refused(run_copy, capsys):
    before = (run_copy / io.CHECKPOINT).read_bytes()
    assert main(["train", "--config", "demo", "--epochs", "3", "--out", str(run_copy), *TINY_ARGS]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"aae: error: {run_copy} already holds a checkpoint; pass --resume to continue it, or choose another --out\n"
    )
    assert (run_copy / io.CHECKPOINT).read_bytes() == before


def test_configs_lists_every_bundled_config(capsys):
    assert main(["configs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == bundled_configs()
    demo = next(line for line in lines if line.split()[0] == "demo")
    assert "Demo: label-conditioned AAE on scikit-learn's bundled 8x8 digits" in demo


# ----------------------------------------------------------------------------- errors


def _garbage_checkpoint(tmp_path: Path) -> str:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / io.CHECKPOINT).write_bytes(b"not a checkpoint at all, just text")
    return str(tmp_path / "bad")


ERRORS = {
    "unknown prior": (
        lambda t, r: [*DEMO, "--out", str(t / "o"), *TINY_ARGS, "--set", "model.prior.name=banana"],
        "unknown prior 'banana'; allowed: gaussian, mixture, swiss_roll, uniform, categorical, callable",
    ),
    "missing data file": (
        lambda t, r: [*DEMO, "--out", str(t / "o"), *TINY_ARGS, "--data", "/nonexistent.npz"],
        "/nonexistent.npz not found",
    ),
    "corrupt checkpoint": (lambda t, r: ["eval", "--run", _garbage_checkpoint(t)], "is corrupt or truncated"),
    "no checkpoint": (lambda t, r: ["eval", "--run", str(t)], "no checkpoint at"),
    "unknown config": (
        lambda t, r: ["train", "--config", "no_such_config", "--out", str(t / "o")],
        "config 'no_such_config' not found; give a path, or one of: demo",
    ),
    "bad --set syntax": (
        lambda t, r: ["train", "--config", "demo", "--out", str(t / "o"), "--set", "train.epochs"],
        "override 'train.epochs' must look like section.key=value",
    ),
    "unknown key": (
        lambda t, r: ["train", "--config", "demo", "--out", str(t / "o"), "--set", "model.hiden=[3]"],
        "unknown config key 'model.hiden'; allowed in [model]: regime",
    ),
    "bad choice": (
        lambda t, r: ["train", "--config", "demo", "--out", str(t / "o"), "--set", "model.encoder=foo"],
        "model.encoder = 'foo' is not allowed; choose one of: 'deterministic', 'gaussian', 'universal'",
    ),
    "sample label out of range": (
        lambda t, r: ["sample", "--run", r, "-n", "4", "--label", "99", "--out", str(t / "s.npy")],
        "--label 99 is out of range; this model has labels 0..9",
    ),
    "sample no samples": (
        lambda t, r: ["sample", "--run", r, "-n", "0", "--out", str(t / "s.npy")],
        "-n 0 is not allowed; give 1 to",
    ),
    "sample bad suffix": (
        lambda t, r: ["sample", "--run", r, "-n", "4", "--out", str(t / "s.txt")],
        "s.txt: write a .png grid or a .npy array (not '.txt')",
    ),
    "sample missing folder": (
        lambda t, r: ["sample", "--run", r, "-n", "4", "--out", str(t / "no" / "s.npy")],
        "/no does not exist; create it first",
    ),
    "bad threads": (
        lambda t, r: ["train", "--config", "demo", "--out", str(t / "o"), "--threads", "-1"],
        "--threads -1 is not allowed",
    ),
    "bad device": (
        lambda t, r: [*DEMO, "--out", str(t / "o"), *TINY_ARGS, "--device", "toaster"],
        "device 'toaster' is not a device",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_user_errors_end_in_one_line_and_exit_2(case, trained, tmp_path, capsys):
    argv, expected = ERRORS[case]
    rc = main(argv(tmp_path, str(trained.run)))
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("aae: error: ")
    assert expected in err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "o").exists()  # no run directory is left behind
    assert not (tmp_path / "s.npy").exists() and not (tmp_path / "s.txt").exists()


def test_train_help_mentions_every_config_key(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    from aae.config.docs import key_lines

    for line in key_lines().splitlines():  # every table's line, as generated from the config's keys
        assert line in text, line
    for key in ("y_regularizer", "lr_milestones", "n_labeled", "disc_hidden", "head_penalty", "tta_shift"):
        assert key in text
    for removed in ("labeled_batch_size", "mmd_points", "separate_y_trunk", "checkpoint_every"):
        assert removed not in text
    for cls in (ModelConfig, TrainConfig, DataConfig, EvalConfig):
        for f in dataclasses.fields(cls):
            assert re.search(rf"\b{f.name}\b", text), f"{cls.__name__}.{f.name} missing from `aae train --help`"
    for flag in ("--config", "--set", "--epochs", "--out", "--resume", "--no-progress", "--device", "--threads"):
        assert flag in text


def test_calling_main_twice_does_not_duplicate_log_lines(capsys):
    assert main(["configs"]) == 0
    assert main(["configs"]) == 0
    capsys.readouterr()
    logging.getLogger("aae").info("probe line")
    assert capsys.readouterr().err.count("probe line") == 1


# ----------------------------------------------------------------------------- the installed command


def _aae_command() -> list[str]:
    script = Path(sys.executable).parent / "aae"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "aae.cli"]


def test_a_command_flushes_subnormal_floats_on_every_worker_thread():
    # each thread keeps its own setting; main sets it before torch starts its two workers here
    script = """
import numpy as np, torch
torch.set_num_threads(2)
import aae.cli, aae.training.distributed
x = torch.from_numpy(np.full(2_000_000, 1e-39, dtype=np.float32))
aae.training.distributed.finish = lambda code: print("nonzero", int((x * 2.0 != 0).sum()))
aae.cli.main(["configs"])
print("after", int((x[:1] * 2.0 != 0).sum()))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines()[-2:] == ["nonzero 0", "after 1"]


@pytest.mark.slow
def test_aae_demo_subprocess_writes_the_figures(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [*_aae_command(), "demo", "--epochs", "3", "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "demo: label-conditioned AAE on scikit-learn's digits, 10-mode mixture prior, 3 epochs" in proc.stdout
    assert set(printed_metrics(proc.stdout)) == {"test_reconstruction", "test_mmd", "test_mode_accuracy"}
    for name in FIGURES:
        assert (out / "figures" / name).read_bytes()[:8] == PNG_MAGIC
        assert f"figure: {out / 'figures' / name}" in proc.stdout
    assert [r["epoch"] for r in metrics_rows(out)] == [1, 2, 3]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_aae_subprocess_error_is_one_line_exit_2(tmp_path):
    proc = subprocess.run(
        [*_aae_command(), "train", "--config", "no_such_config", "--out", str(tmp_path / "o")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("aae: error: config 'no_such_config' not found")
    assert proc.stderr.count("\n") == 1
