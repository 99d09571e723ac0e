"""Hostile and careless input, through the ``aae`` command: every case ends in exit status 2
and one line on stderr naming the cause, changes no file that was there before, and runs no code
named in a file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aae.errors import AAEError
from aae.training import checkpoint, resume
from conftest import DEMO, PNG_MAGIC, TINY_ARGS, run_main, set_args

TRAIN = [*DEMO, *TINY_ARGS]
RESUME = [*TRAIN, "--epochs", "3", "--resume"]
"""one epoch more than the shared trained run has"""


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (but run locks, which every training rewrites) by its SHA-256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != checkpoint.LOCK
    }


@pytest.fixture
def work(trained, tmp_path, monkeypatch) -> Path:
    """A workspace: a copy of the trained run, a user's notes and a folder of theirs."""
    shutil.copytree(trained.run, tmp_path / "run")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.csv").write_text("1,2\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def expect_refused(work: Path, argv: list[str], *needles: str) -> str:
    before = snapshot(work)
    rc, _, err = run_main(argv)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("aae: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert snapshot(work) == before, "a refused command changed or deleted files"
    return lines[0]


def _flip_byte(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def _set_config(run: Path, **model) -> None:
    """Rewrite a checkpoint's config (and its hash, as a forger would) with these model keys."""
    from safetensors.torch import save

    tensors, meta = checkpoint.read_checkpoint(run)
    config = json.loads(meta["config"])
    config["model"].update(model)
    meta["config"] = json.dumps(config)
    meta.pop("sha256")
    meta["sha256"] = checkpoint._digest(save(tensors, metadata=meta), meta)
    (run / checkpoint.CHECKPOINT).write_bytes(save(tensors, metadata=meta))


CONFIG_CASES = {
    "batch size 0": (["--set", "train.batch_size=0"], "train.batch_size = 0"),
    "eval_every 0": (["--set", "train.eval_every=0"], "train.eval_every = 0"),
    "negative z_dim": (["--set", "model.z_dim=-2"], "model.z_dim"),
    "zero z_dim": (["--set", "model.z_dim=0"], "model.z_dim"),
    "negative layer": (["--set", "model.hidden=[-5]"], "model.hidden"),
    "zero layer": (["--set", "model.hidden=[0]"], "model.hidden"),
    "negative learning rate": (["--set", "train.lr.generator=-0.001"], "train.lr"),
    "huge learning rate": (["--set", "train.lr.generator=1e6"], "train.lr"),
    "ema above 1": (["--set", "train.ema=1.5"], "train.ema"),
    "negative subset": (["--set", "data.subset=-100"], "data.subset"),
    "negative prior std": (["--set", "model.prior={name='gaussian', std=-1}"], "std"),
    "zero epochs": (["--epochs", "0"], "train.epochs"),
    "no class": (["--set", "model.n_classes=0"], "model.n_classes"),
    "negative shift": (["--set", "train.shift=-1"], "train.shift"),
    "unknown key": (["--set", "train.betas=[0.5]"], "unknown config key 'train.betas'"),
    "unknown choice": (["--set", "model.encoder=transformer"], "model.encoder"),
    "vae without gaussian encoder": (["--set", "model.objective=vae"], "model.encoder = 'gaussian'"),
    "callable prior in a config": (["--set", "model.prior={name='callable', fn='os:_exit'}"], "never imports"),
    "milestone at epoch 0": (["--set", "train.lr_milestones=[0]"], "train.lr_milestones"),
    "negative threads": (["--threads", "-4"], "--threads"),
    "a billion threads": (["--threads", "1000000000"], "--threads"),
    "NaN in a prior": (["--set", "model.prior={name='mixture', radius=nan}"], "radius"),
    "infinite prior std": (["--set", "model.prior={name='gaussian', std=inf}"], "std"),
    "huge prior radius": (["--set", "model.prior={name='mixture', radius=1e300}"], "radius"),
    "uniform bound -inf": (["--set", "model.prior={name='uniform', low=-inf}"], "low"),
    "fractional modes": (["--set", "model.prior={name='mixture', n_modes=2.9}"], "n_modes = 2.9"),
    "NaN modes": (["--set", "model.prior={name='mixture', n_modes=nan}"], "n_modes"),
    "fractional pieces": (["--set", "model.prior={name='swiss_roll', n_parts=10.5}"], "n_parts"),
    "fractional prior dim": (["--set", "model.prior={name='gaussian', dim=2.9}"], "dim = 2.9"),
    "NaN category odds": (["--set", "model.prior={name='categorical', probs=[nan, nan]}"], "probs"),
    "a prior named by a list": (["--set", "model.prior={name=[1]}"], "unknown prior"),
    "fractional z_dim": (["--set", "model.z_dim=2.9"], "model.z_dim = 2.9"),
    "fractional batch size": (["--set", "train.batch_size=1.5"], "train.batch_size"),
    "huge seed": (["--seed", str(10**23)], "train.seed"),
    "huge label seed": (["--set", f"data.label_seed={2**40}"], "data.label_seed"),
    "a billion epochs": (["--epochs", str(10**9)], "train.epochs"),
    "a billion-wide layer": (["--set", "model.hidden=[1000000000]"], "model.hidden"),
    "200 layers": (["--set", f"model.hidden={[8] * 200}"], "at most 100"),
    "a model of billions of weights": (["--set", "model.hidden=[60000, 60000]"], "weights, more than"),
    "huge shift": (["--set", "train.shift=100000"], "train.shift"),
    "huge VAT weight": (["--set", "model.vat_weight=1e300"], "model.vat_weight"),
    "NaN eta": (["--set", "model.eta=nan"], "model.eta"),
    "a name that climbs out of runs/": (["--set", "name='../../x'"], "name = '../../x'"),
    "a name with a slash": (["--set", "name='a/b'"], "plain name"),
}


@pytest.mark.parametrize("extra, needle", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_a_bad_config_value_is_refused_before_anything_is_written(work, extra, needle):
    expect_refused(work, [*TRAIN, "--out", "new-run", *extra], needle)
    assert not (work / "new-run").exists()


def test_a_config_file_that_is_not_utf8_is_refused(work):
    (work / "latin1.toml").write_bytes("# caf\xe9\n[model]\nz_dim = 3\n".encode("latin-1"))
    expect_refused(work, ["train", "--config", "latin1.toml", "--out", "x"], "not a UTF-8 text file")


def test_an_output_directory_that_is_a_file_is_refused_before_the_data_loads(work):
    expect_refused(work, [*TRAIN, "--out", "notes.txt/run"], "notes.txt is a file")


def test_a_second_training_on_a_locked_run_directory_names_the_holder(work):
    (work / "fresh").mkdir()
    with resume.RunLock(work / "fresh"):
        expect_refused(work, [*TRAIN, "--out", "fresh"], "in use by another training (pid ")


def test_training_into_a_run_that_has_a_checkpoint_needs_resume(work):
    expect_refused(work, [*TRAIN, "--out", "run"], "already holds a checkpoint", "--resume")


def test_resume_of_a_mistyped_directory_is_an_error_not_a_fresh_start(work):
    expect_refused(work, [*TRAIN, "--out", "rnu", "--resume"], "nothing to resume")
    assert not (work / "rnu").exists()


def test_resume_of_a_directory_without_a_checkpoint_is_an_error(work):
    expect_refused(work, [*TRAIN, "--out", "mine", "--resume"], "holds no checkpoint to resume")


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--set", "train.optimizer=sgd"], "train.optimizer = 'adam'"),
        (["--seed", "5"], "train.seed = 0"),
        (["--set", "model.hidden=[16]"], "model.hidden = [32]"),
    ],
)
def test_a_resume_refuses_what_it_cannot_apply(work, extra, needle):
    expect_refused(work, [*RESUME, "--out", "run", *extra], needle, "a resume cannot change")


def test_a_checkpoint_with_a_flipped_byte_is_refused_by_its_hash(work):
    _flip_byte(work / "run" / checkpoint.CHECKPOINT)
    expect_refused(work, ["sample", "--run", "run", "-o", "x.npy"], "does not match its own SHA-256")
    expect_refused(work, [*RESUME, "--out", "run"], "SHA-256", "move it away")


def test_a_checkpoint_with_nan_weights_is_refused(work):
    tensors, meta = checkpoint.read_checkpoint(work / "run")
    model = checkpoint.load(work / "run")
    first = next(iter(model.state_dict()))
    with torch.no_grad():
        model.state_dict()[first].fill_(float("nan"))
    cfg = checkpoint.config_of(meta)
    checkpoint.save_checkpoint(
        work / "run" / checkpoint.CHECKPOINT, model=model, config=cfg, x_dim=model.x_dim, epoch=1, history=[]
    )
    expect_refused(work, ["eval", "--run", "run"], "NaN or infinite", first)


def test_a_truncated_checkpoint_is_one_line_whose_advice_works(work):
    path = work / "run" / checkpoint.CHECKPOINT
    path.write_bytes(path.read_bytes()[:5000])
    line = expect_refused(work, ["eval", "--run", "run"], "corrupt or truncated", "move it away")
    assert "without --resume" not in line
    path.rename(work / "old.safetensors")  # the advice: move it away, then train afresh
    rc, _, err = run_main([*TRAIN, "--out", "run", "--resume"])
    assert rc == 2 and "holds no checkpoint" in err  # --resume still says there is nothing to resume
    rc, _, err = run_main([*TRAIN, "--out", "run"])
    assert rc == 0, err


@pytest.mark.parametrize("fn", ["os:_exit", "evil:run"])
def test_a_run_naming_a_prior_function_imports_nothing(work, fn, monkeypatch):
    # a module of the run's own, where a careless loader would find it
    (work / "run" / "evil.py").write_text("import pathlib\npathlib.Path('pwned').write_text('ran')\nrun = print\n")
    monkeypatch.syspath_prepend(str(work / "run"))
    _set_config(work / "run", prior={"name": "callable", "fn": fn})
    for argv in (["sample", "--run", "run", "-o", "x.npy"], ["eval", "--run", "run"], ["plot", "--run", "run"]):
        expect_refused(work, argv, "never imports code named in a file", "prior=fn")
    assert not (work / "pwned").exists()
    with pytest.raises(checkpoint.CheckpointError, match="never imports"):
        checkpoint.load(work / "run")


def test_a_run_trained_with_a_prior_function_loads_when_the_function_is_passed(work):
    _set_config(work / "run", prior={"name": "callable", "fn": "mine:ring"})

    def ring(n):
        angle = torch.rand(n) * 6.283
        return torch.stack([angle.cos(), angle.sin()], 1)

    model = checkpoint.load(work / "run", prior=ring)
    assert model.prior.sample(4).norm(dim=1).allclose(torch.ones(4))


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["sample", "--run", "run", "-n", "-5", "-o", "x.npy"], "-n -5"),
        (["sample", "--run", "run", "-n", str(10**13), "-o", "x.npy"], f"-n {10**13}"),
        (["sample", "--run", "run", "-n", "20000000", "-o", "x.npy"], "20000000 x 64 values"),
        (["sample", "--run", "run", "-n", "20000", "-o", "x.png"], "at most 10000"),
        (["sample", "--run", "run", "--seed", str(10**23), "-o", "x.npy"], "--seed"),
        (["sample", "--run", "run", "--image-shape", "5", "5", "-o", "x.png"], "does not fit"),
        (["sample", "--run", "run", "--image-shape", "-8", "-8", "-o", "x.png"], "does not fit"),
        (["eval", "--run", "run", "--tta-shift", "1000000"], "--tta-shift"),
        (["demo", "--out", "d0", "--epochs", "0"], "train.epochs = 0"),
        (["reproduce", "prior-match", "--seeds", str(10**23), "--records", "none"], "--seeds"),
        (["reproduce", "likelihood", "--samples", "0", "--records", "none"], "--samples 0"),
        (["reproduce", "prior-match", "--jobs", "100000", "--records", "none"], "--jobs"),
        (["sample", "--run", "run", "-o", "x.jpg"], ".png grid or a .npy"),
        (["sample", "--run", "run", "-o", "no/such/dir/x.png"], "does not exist"),
        (["sample", "--run", "run", "--label", "12", "-o", "x.npy"], "out of range"),
        (["sample", "--run", "no-such-run", "-o", "x.npy"], "no checkpoint"),
        (["eval", "--run", "run", "--tta-shift", "-1"], "--tta-shift"),
        (["reproduce", "semi-supervised", "--models", "IMSAT", "--records", "none"], "IMSAT"),
        (["reproduce", "prior-match", "--models", "NN", "--records", "none"], "AAE, VAE, AE"),
        (["reproduce", "likelihood", "--models", "AE", "--records", "none"], "AAE, AAE-paper, VAE"),
    ],
)
def test_bad_command_line_arguments_are_one_line(work, argv, needle):
    expect_refused(work, argv, needle)


def test_sample_label_on_a_model_without_classes_is_refused(work):
    plain = set_args("model.regime=unsupervised", "model.prior={name='gaussian'}")
    rc, _, err = run_main([*TRAIN, "--out", "plain", *plain])
    assert rc == 0, err
    expect_refused(work, ["sample", "--run", "plain", "--label", "3", "-o", "x.npy"], "no classes to sample from")


def test_demo_refuses_a_directory_holding_what_it_did_not_write(work):
    shutil.copy(work / "notes.txt", work / "run" / "notes.txt")
    (work / "run" / "sub").mkdir()
    expect_refused(work, ["demo", "--out", "run", "--epochs", "1"], "files the demo did not write", "notes.txt")
    expect_refused(work, ["demo", "--out", "mine", "--epochs", "1"], "data.csv")


@pytest.mark.parametrize("mine", ["figures/mine.txt", "config.json/mine.txt", "figures/old/mine.png"])
def test_demo_never_deletes_a_users_file_inside_its_own_names(work, mine):
    shutil.copytree(work / "run", work / "demo")
    (work / "demo" / "config.json").unlink()
    (work / "demo" / mine).parent.mkdir(parents=True, exist_ok=True)
    (work / "demo" / mine).write_text("mine")
    expect_refused(work, ["demo", "--out", "demo", "--epochs", "1"], "files the demo did not write")


def test_demo_replaces_only_its_own_previous_output(work):
    rc, _, err = run_main(["demo", "--out", "demo", "--epochs", "1", "--no-progress"])
    assert rc == 0, err
    (work / "demo" / "figures" / "latent.png").write_bytes(b"old")
    rc, _, err = run_main(["demo", "--out", "demo", "--epochs", "1", "--no-progress"])
    assert rc == 0, err
    assert (work / "demo" / "figures" / "latent.png").read_bytes()[:8] == PNG_MAGIC  # drawn again
    assert [json.loads(line)["epoch"] for line in (work / "demo" / "metrics.jsonl").read_text().splitlines()] == [1]
    assert (work / "notes.txt").read_text() == "mine"


def test_an_array_file_of_garbage_bytes_is_called_corrupt_not_pickled(work):
    (work / "garbage.npy").write_bytes(b"\x00\x01 not numpy at all" * 10)
    line = expect_refused(work, [*TRAIN, "--data", "garbage.npy", "--out", "g"], "garbage.npy")
    assert "pickled" not in line


def test_real_valued_arrays_need_the_gaussian_decoder(work):
    np.save(work / "real.npy", np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32))
    argv = ["train", "--data", "real.npy", "--epochs", "1", *TINY_ARGS, "--out", "r"]
    expect_refused(work, argv, "model.output = 'gaussian'")
    rc, _, err = run_main([*argv, "--set", "model.output=gaussian"])
    assert rc == 0, err
    assert json.loads((work / "r" / "config.json").read_text())["model"]["output"] == "gaussian"
    # its samples are real values as the data are, not pixels squeezed into [0, 1]
    rc, _, err = run_main(["sample", "--run", "r", "-n", "200", "-o", "s.npy"])
    assert rc == 0, err
    samples = np.load(work / "s.npy")
    assert samples.shape == (200, 8) and samples.min() < 0


def test_label_conditioned_training_with_every_label_missing_is_refused(work):
    x = np.random.default_rng(0).random((300, 8)).astype(np.float32)
    np.savez(work / "unlabeled.npz", x=x, y=np.full(300, -1))
    conditioned = set_args("model.regime=label_conditioned", "model.prior={name='mixture'}")
    argv = ["train", "--data", "unlabeled.npz", "--epochs", "1", *TINY_ARGS, *conditioned, "--out", "u"]
    expect_refused(work, argv, "every training label is -1")


def test_an_exploding_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(work, monkeypatch):
    import aae.training.trainer

    calls = {"n": 0}

    def step(model, batch, optimizers, phases, **_):  # 10 sane steps (one epoch of digits), then 1e12
        calls["n"] += 1
        return {"reconstruction": torch.tensor(1e12 if calls["n"] > 10 else 50.0)}

    monkeypatch.setattr(aae.training.trainer, "train_step", step)
    before = snapshot(work)
    rc, _, err = run_main([*TRAIN, "--epochs", "3", "--out", "boom"])
    errors = [line for line in err.splitlines() if line.startswith("aae: error: ")]
    assert rc == 2 and len(errors) == 1 and err.strip().endswith(errors[0])  # after the epoch log, one line
    assert "reconstruction loss became 1e+12" in err and "last good checkpoint" in err and "boom" in err
    assert checkpoint.read_checkpoint(work / "boom")[1]["epoch"] == "1"
    assert {k: v for k, v in snapshot(work).items() if not k.startswith("boom")} == before


# -- every write goes to a path the command owns -----------------------------------------------
@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A file of the user's elsewhere on disk, which no command may change."""
    path = tmp_path_factory.mktemp("elsewhere") / "precious.txt"
    path.write_text("keep me")
    return path


def expect_untouched(outside: Path) -> None:
    assert outside.read_text() == "keep me" and not outside.is_symlink()
    assert sorted(p.name for p in outside.parent.iterdir()) == ["precious.txt"]


@pytest.mark.parametrize(
    "link, argv",
    [
        ("figures/latent.png", ["plot", "--run", "run"]),
        ("figures/samples.png", ["plot", "--run", "run"]),
        (".lock", [*RESUME, "--out", "run"]),
        ("metrics.jsonl", [*RESUME, "--out", "run"]),
        ("checkpoint.safetensors", [*RESUME, "--out", "run"]),
        ("final.json", ["eval", "--run", "run", "--write"]),
    ],
)
def test_a_symbolic_link_in_a_run_is_never_written_through(work, outside, link, argv):
    path = work / "run" / link
    if link == "checkpoint.safetensors":  # a link to a real checkpoint: reading it is fine, writing is not
        shutil.copy(path, outside)
        outside = outside.with_name("ckpt")
        (outside.parent / "precious.txt").rename(outside)
    path.unlink(missing_ok=True)
    path.symlink_to(outside)
    expect_refused(work, argv, f"run/{link}", "symbolic link")
    if link != "checkpoint.safetensors":
        expect_untouched(outside)


def test_a_linked_figures_folder_is_refused(work, outside):
    shutil.rmtree(work / "run" / "figures")
    (work / "run" / "figures").symlink_to(outside.parent, target_is_directory=True)
    expect_refused(work, ["plot", "--run", "run"], "figures", "symbolic link")
    expect_untouched(outside)


def test_sample_never_writes_through_a_link(work, outside):
    (work / "x.npy").symlink_to(outside)
    (work / "x.png").symlink_to(outside)
    expect_refused(work, ["sample", "--run", "run", "-o", "x.npy"], "symbolic link")
    expect_refused(work, ["sample", "--run", "run", "-o", "x.png"], "symbolic link")
    expect_untouched(outside)


def test_a_hard_linked_lock_file_is_refused(work, outside):
    (work / "run" / checkpoint.LOCK).unlink(missing_ok=True)
    os.link(outside, work / "run" / checkpoint.LOCK)
    expect_refused(work, [*RESUME, "--out", "run"], "hard link")
    assert outside.read_text() == "keep me"


def test_a_hard_linked_log_is_replaced_not_appended_to(work, outside):
    (work / "run" / "metrics.jsonl").unlink()
    os.link(outside, work / "run" / "metrics.jsonl")
    rc, _, err = run_main([*RESUME, "--out", "run"])
    assert rc == 0, err
    assert outside.read_text() == "keep me"
    assert (work / "run" / "metrics.jsonl").read_text().count("\n") == 3


def test_demo_refuses_to_delete_through_a_link(work, outside):
    rc, _, err = run_main(["demo", "--out", "demo", "--epochs", "1", "--no-progress"])
    assert rc == 0, err
    shutil.rmtree(work / "demo" / "figures")
    (work / "demo" / "figures").symlink_to(outside.parent, target_is_directory=True)
    expect_refused(work, ["demo", "--out", "demo", "--epochs", "1"], "symbolic link")
    expect_untouched(outside)


@pytest.mark.parametrize(
    "files",
    [
        {"config.json": '{"mine": 1}', "metrics.csv": "a,b\n1,2\n"},
        {"metrics.csv": "a,b\n1,2\n"},
        {"notes.txt": "mine", "config.json": "{}"},
        {"config.json": "not json"},
    ],
    ids=["a user's config and metrics", "a user's metrics", "a user's notes", "a broken config"],
)
def test_train_into_a_folder_of_someone_elses_files_is_refused(work, files):
    (work / "theirs").mkdir()
    for name, text in files.items():
        (work / "theirs" / name).write_text(text)
    expect_refused(work, [*TRAIN, "--out", "theirs"], "theirs", "empty or new --out")
    assert sorted(p.name for p in (work / "theirs").iterdir()) == sorted(files)


def test_train_into_an_unfinished_run_of_another_config_is_refused(work):
    (work / "killed").mkdir()
    config = json.loads((work / "run" / "config.json").read_text())
    config["model"]["hidden"] = [16]
    (work / "killed" / "config.json").write_text(json.dumps(config))
    expect_refused(work, [*TRAIN, "--out", "killed"], "another config")


def test_train_into_an_unfinished_run_of_the_same_config_starts_it_afresh(work):
    (work / "killed").mkdir()
    shutil.copy(work / "run" / "config.json", work / "killed")
    shutil.copy(work / "run" / "metrics.jsonl", work / "killed")  # two epochs' rows
    (work / "killed" / ".checkpoint.safetensors.a1b2c3d4.tmp").write_bytes(b"half")  # what kill -9 leaves
    for out in ("killed", "fresh"):
        rc, _, err = run_main([*TRAIN, "--out", out])
        assert rc == 0, err
    # as if the folder had been empty: the log of this training alone, the model a fresh folder gets
    assert [json.loads(line)["epoch"] for line in (work / "killed" / "metrics.jsonl").read_text().splitlines()] == [1]
    killed, fresh = (checkpoint.read_checkpoint(work / out)[0] for out in ("killed", "fresh"))
    assert killed.keys() == fresh.keys() and all(torch.equal(killed[k], fresh[k]) for k in killed)


def test_resume_keeps_the_users_files_beside_a_run(work):
    (work / "run" / "notes.txt").write_text("mine")
    rc, _, err = run_main([*RESUME, "--out", "run"])
    assert rc == 0, err
    assert (work / "run" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_outputs_take_the_mode_the_umask_gives(work, mask):
    old = os.umask(mask)
    try:
        rc, _, err = run_main([*TRAIN, "--out", f"m{mask:o}"])
        assert rc == 0, err
        rc, _, err = run_main(["sample", "--run", f"m{mask:o}", "-n", "4", "-o", f"s{mask:o}.npy"])
        assert rc == 0, err
    finally:
        os.umask(old)
    run = work / f"m{mask:o}"
    written = [run / n for n in ("checkpoint.safetensors", "config.json", "metrics.jsonl", "metrics.csv")]
    written += [run / "final.json", run / "machine.json", work / f"s{mask:o}.npy", *(run / "figures").glob("*.png")]
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in written}
    assert set(modes.values()) == {oct(0o666 & ~mask)}, modes


# -- a run is finished only when its training finished -----------------------------------------
def _killed_after_one_epoch(work: Path, monkeypatch, out: str) -> None:
    """Train ``out`` for 3 epochs, interrupted (as by Ctrl-C) once the first one's checkpoint is saved."""
    import aae.training.trainer

    saved = aae.training.trainer.save_training

    def save_then_stop(trainer):
        saved(trainer)
        raise KeyboardInterrupt

    monkeypatch.setattr(aae.training.trainer, "save_training", save_then_stop)
    rc, _, _ = run_main([*TRAIN, "--epochs", "3", "--out", out])
    monkeypatch.setattr(aae.training.trainer, "save_training", saved)
    assert rc == 130 and checkpoint.read_checkpoint(work / out)[1]["epoch"] == "1"


def test_eval_write_cannot_make_an_unfinished_run_finished(work, monkeypatch):
    from aae.config.load import load_config
    from aae.paper.runs import _finished_record

    _killed_after_one_epoch(work, monkeypatch, "killed")
    expect_refused(work, ["eval", "--run", "killed", "--write"], "trained 1 of its 3 epochs", "--resume")
    assert not (work / "killed" / "final.json").exists()
    rc, _, err = run_main(["eval", "--run", "killed"])  # measuring without recording is fine
    assert rc == 0, err
    # a record written after the checkpoint anyway (by hand, or an older aae) does not finish it either
    shutil.copy(work / "run" / "final.json", work / "killed" / "final.json")
    cfg = load_config("demo", ["train.epochs=3", "model.hidden=[32]", "model.disc_hidden=[16]"])
    assert _finished_record(work / "killed", cfg) is None
    rc, _, err = run_main([*TRAIN, "--epochs", "3", "--out", "killed", "--resume"])  # what finishes it
    assert rc == 0, err
    assert _finished_record(work / "killed", cfg) is not None
    rc, _, err = run_main(["eval", "--run", "killed", "--write"])
    assert rc == 0, err


# -- plain OS errors are one line with the path and what to do ---------------------------------
LONG = "n" * 300  # longer than any file system's name limit (255)


@pytest.mark.parametrize(
    "argv, needles",
    [
        ([*TRAIN, "--out", LONG], ["file name too long"]),
        (["sample", "--run", "run", "-o", f"{LONG}.npy"], ["file name too long"]),
        (["sample", "--run", "run", "-o", "mine.npy"], ["mine.npy", "a directory is where a file goes"]),
        (["demo", "--out", f"runs/{LONG}", "--epochs", "1"], ["file name too long"]),
        (["plot", "--run", "run"], ["run/figures", "a file is where a folder goes"]),
    ],
    ids=["train --out", "sample -o", "sample -o a folder", "demo --out", "plot into a figures file"],
)
def test_an_os_error_is_one_line_naming_the_path(work, argv, needles):
    (work / "mine.npy").mkdir()
    if argv[0] == "plot":
        shutil.rmtree(work / "run" / "figures")
        (work / "run" / "figures").write_text("not a folder")
    expect_refused(work, argv, *needles)


def test_a_log_dir_under_a_file_is_one_line(work):
    pytest.importorskip("tensorboard")
    expect_refused(work, [*TRAIN, "--out", "tb-run", "--log-dir", "notes.txt/tb"], "notes.txt")


def _permissions_bind() -> bool:
    """Whether a folder's permissions stop this process (not so for root, unless without its capabilities)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o555)
        try:
            Path(tmp, "probe").write_text("")
        except PermissionError:
            return True
        finally:
            os.chmod(tmp, 0o755)
    return False


@pytest.mark.skipif(not _permissions_bind(), reason="this user (root) writes a read-only folder")
def test_a_read_only_run_is_one_line(work):
    folders = [work / "run" / "figures", work / "run"]
    for folder in folders:
        folder.chmod(0o555)
    try:
        expect_refused(work, ["plot", "--run", "run"], "permission denied", "run/figures/")
        expect_refused(work, ["eval", "--run", "run", "--write"], "permission denied", "run/final.json")
        expect_refused(work, [*RESUME, "--out", "run"], "run is not writable")
        (work / "ro").mkdir(mode=0o555)
        expect_refused(work, [*TRAIN, "--out", "ro/run"], "not writable")
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(work, monkeypatch):
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    rc, _, err = run_main([*TRAIN, "--out", "full"])
    assert rc == 2 and err.strip().splitlines()[-1].startswith("aae: error: "), err
    assert "no space left on the device" in err and "full/" in err
    assert not [p for p in work.rglob("*") if p.name.endswith(".tmp")]


def test_a_deeply_nested_config_is_one_line(work):
    (work / "deep.toml").write_text("[model]\nhidden = " + "[" * 5000 + "]" * 5000 + "\n")
    expect_refused(work, ["train", "--config", "deep.toml", "--out", "d"], "nested too deeply")
    expect_refused(work, [*TRAIN, "--out", "d", "--set", "model.hidden=" + "[" * 5000 + "]" * 5000], "nested")


# -- SIGTERM leaves every file whole and no temporary file -------------------------------------
SIGTERM_IN_FSYNC = """
import os, signal, sys
os.environ["AAE_DATA_DIR"] = {data!r}
real = os.fsync
def fsync(fd):  # SIGTERM arrives in the middle of writing a file (the checkpoint among them)
    real(fd)
    os.kill(os.getpid(), signal.SIGTERM)
os.fsync = fsync
{body}
"""


def _run_with_sigterm(work: Path, body: str) -> subprocess.CompletedProcess:
    script = SIGTERM_IN_FSYNC.format(data=str(work), body=body)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_during_a_write_of_the_command_leaves_no_temporary_file(work, monkeypatch):
    fsync = os.fsync

    def fsync_then_sigterm(fd):  # SIGTERM arrives in the middle of writing the first epoch's checkpoint
        fsync(fd)
        if f".{checkpoint.CHECKPOINT}." in os.readlink(f"/proc/self/fd/{fd}"):  # its temporary file
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "fsync", fsync_then_sigterm)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    rc, _, err = run_main([*TRAIN, "--epochs", "3", "--out", "term"])
    assert rc == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1].startswith("aae: terminated; ") and "Traceback" not in err
    assert not [p for p in work.rglob("*") if p.name.endswith(".tmp")]
    assert not (work / "term" / checkpoint.CHECKPOINT).exists()  # the half-written one never landed
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the command's handler is gone with it
    monkeypatch.setattr(os, "fsync", fsync)
    rc, _, err = run_main([*TRAIN, "--epochs", "3", "--out", "term"])  # it starts again, its own folder
    assert rc == 0, err


def test_sigterm_during_a_write_of_the_library_leaves_no_temporary_file(work):
    body = "from aae.files import atomic_write\natomic_write('lib/out.bin', b'x' * 1000)\nprint('not reached')"
    done = _run_with_sigterm(work, body)
    assert done.returncode == -signal.SIGTERM, done.stderr  # ended as SIGTERM ends a process
    assert "not reached" not in done.stdout
    assert list((work / "lib").iterdir()) == []


# -- the workers of --jobs die with their command ----------------------------------------------
def _lock_is_free(path: Path) -> bool:
    import fcntl

    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_a_jobs_command_stops_its_workers_and_a_rerun_continues_bit_identical(tmp_path):
    import time

    from aae.config.load import from_dict
    from aae.experiment import run
    from aae.training.runlog import read_history

    out, epochs = tmp_path / "out", 150
    tiny = ["--set", "data.name='digits'", "--set", "model.hidden=[32]", "--set", "model.disc_hidden=[16]"]
    argv = ["reproduce", "prior-match", "--prior", "gaussian", "--models", "AAE", "VAE", "--train", "--jobs", "2"]
    argv += ["--out", str(out), "--records", "none", "--seeds", "0", *tiny, "--epochs", str(epochs)]
    argv += ["--no-progress", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    command = [sys.executable, "-m", "aae.cli", *argv]
    parent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = [out / "AAE-seed0", out / "VAE-seed0"]
    try:
        deadline = time.monotonic() + 120
        while not all(len(read_history(r) or []) >= 2 for r in runs):
            assert time.monotonic() < deadline and parent.poll() is None, "the workers never started training"
            time.sleep(0.2)
        workers = [int((r / checkpoint.LOCK).read_text()) for r in runs]
        assert all(_alive(pid) for pid in workers) and parent.pid not in workers
        parent.kill()  # kill -9: no handler of the command's runs
        parent.wait()
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in workers) or not all(_lock_is_free(r / checkpoint.LOCK) for r in runs):
            assert time.monotonic() < deadline, "a worker went on training after its command was killed"
            time.sleep(0.2)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert all(checkpoint.read_checkpoint(r)[1]["epoch"] != str(epochs) for r in runs), "killed too late"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    done = subprocess.run(command, env=env, capture_output=True, text=True)  # the same command continues
    assert done.returncode == 0, done.stderr
    resumed = {r: checkpoint.read_checkpoint(r) for r in runs}
    assert all(meta["epoch"] == str(epochs) for _, meta in resumed.values())
    # bit-identical to the run trained without the kill (one thread, as each of the two workers had on two cores)
    config = json.loads((runs[0] / "config.json").read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // 2))
    try:
        run(from_dict(config), tmp_path / "whole", figures=False, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    whole, _ = checkpoint.read_checkpoint(tmp_path / "whole")
    tensors, _ = resumed[runs[0]]
    assert all(torch.equal(whole[k], tensors[k]) for k in whole if k.startswith(("model/", "optim/")))


# -- an estimator's checkpoint_dir never serves a model of other data or parameters ---------------
EST = dict(hidden=[32], disc_hidden=[16], epochs=2, random_state=0)


@pytest.fixture(scope="module")
def wine():
    from sklearn.datasets import load_wine

    return load_wine(return_X_y=True)


def _same(a, b, x) -> bool:
    return np.array_equal(a.transform(x), b.transform(x))


def test_a_checkpoint_dir_trains_afresh_on_other_data(wine, tmp_path):
    from aae import AAE, SemiSupervisedAAE

    x, y = wine
    where = str(tmp_path / "ck")
    first = AAE(checkpoint_dir=where, **EST).fit(x[:120])
    other = AAE(checkpoint_dir=where, **EST).fit(x[60:])
    assert _same(other, AAE(**EST).fit(x[60:]), x) and not _same(other, first, x)
    again = AAE(checkpoint_dir=where, **EST).fit(x[60:])  # the same fit: continued (here: already done)
    assert _same(again, other, x) and len(again.history_) == 2
    shifted = x[60:].copy()
    shifted[0, 0] += 1e-9  # one value in one row: another fit
    assert _same(AAE(checkpoint_dir=where, **EST).fit(shifted), AAE(**EST).fit(shifted), x)
    as32 = AAE(checkpoint_dir=where, **EST).fit(x[60:].astype(np.float32))  # another dtype: another fit
    assert _same(as32, AAE(**EST).fit(x[60:].astype(np.float32)), x)
    some = np.where(np.arange(len(y)) % 3 == 0, y, -1)
    semi = SemiSupervisedAAE(checkpoint_dir=str(tmp_path / "semi"), **EST).fit(x, some)
    other_labels = np.where(np.arange(len(y)) % 3 == 1, y, -1)
    relabeled = SemiSupervisedAAE(checkpoint_dir=str(tmp_path / "semi"), **EST).fit(x, other_labels)
    assert _same(relabeled, SemiSupervisedAAE(**EST).fit(x, other_labels), x) and not _same(relabeled, semi, x)


def test_a_checkpoint_dir_trains_afresh_for_other_parameters_and_continues_for_more_epochs(wine, tmp_path):
    from aae import AAE

    x, _ = wine
    where = str(tmp_path / "ck")
    AAE(checkpoint_dir=where, **EST).fit(x)
    faster = AAE(checkpoint_dir=where, **{**EST, "lr": 0.01}).fit(x)
    assert _same(faster, AAE(**{**EST, "lr": 0.01}).fit(x), x)
    longer = AAE(checkpoint_dir=where, **{**EST, "lr": 0.01, "epochs": 3}).fit(x)  # continued, as --resume does
    assert [r["epoch"] for r in longer.history_] == [1, 2, 3]
    assert _same(longer, AAE(**{**EST, "lr": 0.01, "epochs": 3}).fit(x), x)
    shorter = AAE(checkpoint_dir=where, **{**EST, "lr": 0.01, "epochs": 1}).fit(x)  # 3 epochs in: afresh
    assert len(shorter.history_) == 1 and _same(shorter, AAE(**{**EST, "lr": 0.01, "epochs": 1}).fit(x), x)
    other_seed = AAE(checkpoint_dir=where, **{**EST, "random_state": 1}).fit(x)
    assert _same(other_seed, AAE(**{**EST, "random_state": 1}).fit(x), x)


def test_cross_validation_with_a_checkpoint_dir_gives_each_fold_its_own_model(wine, tmp_path):
    from sklearn.base import clone
    from sklearn.model_selection import KFold, cross_validate

    from aae import SemiSupervisedAAE

    x, y = wine
    est = SemiSupervisedAAE(checkpoint_dir=str(tmp_path / "cv"), **EST)
    folds = KFold(3, shuffle=True, random_state=0)
    fitted = cross_validate(est, x, y, cv=folds, return_estimator=True)["estimator"]
    for (train, _), model in zip(folds.split(x), fitted, strict=True):
        alone = clone(est).set_params(checkpoint_dir=None).fit(x[train], y[train])
        assert np.array_equal(model.predict_proba(x), alone.predict_proba(x))


def test_a_checkpoint_dir_never_takes_over_a_run_or_a_users_files(wine, work):
    from aae import AAE

    x, _ = wine
    before = snapshot(work)
    with pytest.raises(AAEError, match="no estimator's fit"):
        AAE(checkpoint_dir=str(work / "run"), **EST).fit(x)
    with pytest.raises(AAEError, match="did not write .*data.csv"):
        AAE(checkpoint_dir=str(work / "mine"), **EST).fit(x)
    assert snapshot(work) == before


# -- estimators save and load without pickle ----------------------------------------------------
def test_an_estimator_saves_and_loads_without_pickle(wine, tmp_path, monkeypatch):
    import pickle

    import aae

    x, y = wine
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    names[::4] = "-1"
    est = aae.SemiSupervisedAAE(overrides=("train.ema=0.5",), **EST).fit(x.astype(np.float32), names)
    est.save(tmp_path / "est")

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    back = aae.load_estimator(tmp_path / "est")
    assert type(back) is type(est) and back.get_params() == est.get_params()
    assert list(back.classes_) == ["barbera", "barolo", "grignolino"] and back.classes_.dtype == est.classes_.dtype
    x32 = x.astype(np.float32)
    assert np.array_equal(back.predict(x32), est.predict(x32))
    assert np.array_equal(back.predict_proba(x32), est.predict_proba(x32))
    assert np.array_equal(back.embedding_, est.embedding_) and back.embedding_.dtype == np.float32
    assert np.array_equal(back.mean_, est.mean_) and np.array_equal(back.scale_, est.scale_)
    drawn, labels = back.sample(5, random_state=3)
    assert drawn.dtype == np.float32 and np.array_equal(drawn, est.sample(5, random_state=3)[0])
    assert back.score(x32, np.array(["barolo", "grignolino", "barbera"])[y]) == est.score(
        x32, np.array(["barolo", "grignolino", "barbera"])[y]
    )


def test_a_clustering_estimator_keeps_its_labels(wine, tmp_path):
    import aae

    est = aae.ClusteringAAE(n_clusters=3, **EST).fit(wine[0])
    back = aae.load_estimator(est.save(tmp_path / "c"))
    assert np.array_equal(back.labels_, est.labels_) and np.array_equal(back.predict(wine[0]), est.predict(wine[0]))


def test_pickle_still_works(wine):
    import pickle

    import aae

    est = aae.AAE(**EST).fit(wine[0])
    assert _same(pickle.loads(pickle.dumps(est)), est, wine[0])


def test_aae_sample_gives_an_estimators_data_in_its_own_units(wine, work):
    import aae

    x, _ = wine
    est = aae.AAE(checkpoint_dir=str(work / "ck"), **EST).fit(x)
    est.save(work / "saved")
    for folder in ("saved", "ck"):
        rc, _, err = run_main(["sample", "--run", folder, "-n", "6", "--seed", "4", "-o", f"{folder}.npy"])
        assert rc == 0, err
        drawn = np.load(work / f"{folder}.npy")
        assert drawn.dtype == np.float64 and np.allclose(drawn, est.sample(6, random_state=4)[0])
        assert abs(drawn[:, 12].mean() - x[:, 12].mean()) < 3 * x[:, 12].std()  # proline: hundreds, not ~0
    expect_refused(work, ["eval", "--run", "saved"], "estimator's", "load_estimator")


def test_a_saved_estimator_names_nothing_that_runs(wine, work):
    from safetensors.torch import save

    import aae

    est = aae.AAE(prior=lambda n: torch.randn(n, 2), **EST).fit(wine[0])
    est.save(work / "fn")
    with pytest.raises(AAEError, match="never imports code named in a file"):
        aae.load_estimator(work / "fn")
    assert aae.load_estimator(work / "fn", prior=lambda n: torch.randn(n, 2)).transform(wine[0]).shape == (178, 2)

    def forge(**change):
        tensors, meta = checkpoint.read_checkpoint(work / "fn")
        info = {**json.loads(meta["estimator"]), **change}
        meta["estimator"] = json.dumps(info)
        meta.pop("sha256")
        meta["sha256"] = checkpoint._digest(save(tensors, metadata=meta), meta)
        (work / "forged").mkdir(exist_ok=True)
        (work / "forged" / checkpoint.CHECKPOINT).write_bytes(save(tensors, metadata=meta))

    forge(**{"class": "os.system"})
    with pytest.raises(AAEError, match="aae has only"):
        aae.load_estimator(work / "forged")
    forge(params={"__reduce__": 1})
    with pytest.raises(AAEError, match="no parameter '__reduce__'"):
        aae.load_estimator(work / "forged")
    for change in ({"column_types": {"binary": [99]}}, {"column_types": "auto"}, {"image_shape": [3, 3]}):
        forge(**change)
        with pytest.raises(AAEError, match="its estimator is unreadable"):
            aae.load_estimator(work / "forged", prior=lambda n: torch.randn(n, 2))
    forge(classes={"dtype": "V8", "values": []})
    with pytest.raises(AAEError, match="classes are unreadable"):
        aae.load_estimator(work / "forged", prior=lambda n: torch.randn(n, 2))
    with pytest.raises(AAEError, match="is a run, not a saved estimator"):
        aae.load_estimator(work / "run")


def test_saving_an_estimator_writes_only_its_own_folder(wine, work, outside):
    import aae

    est = aae.AAE(**EST).fit(wine[0])
    before = snapshot(work)
    with pytest.raises(AAEError, match="did not write"):
        est.save(work / "mine")
    with pytest.raises(AAEError, match="no estimator's"):
        est.save(work / "run")
    (work / "linked").mkdir()
    (work / "linked" / checkpoint.CHECKPOINT).symlink_to(outside)
    with pytest.raises(AAEError, match="symbolic link"):
        est.save(work / "linked")
    expect_untouched(outside)
    assert {k: v for k, v in snapshot(work).items() if not k.startswith("linked")} == before
    est.save(work / "mine2")
    est.save(work / "mine2")  # its own earlier save is replaced


def test_an_array_file_claiming_a_huge_array_is_refused_from_its_header(work):
    import zipfile

    with zipfile.ZipFile(work / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as z:  # 40 GB of zeros in 40 kB
        with z.open("x.npy", "w", force_zip64=True) as f:
            header = {"descr": "<f4", "fortran_order": False, "shape": (100_000, 100_000)}
            np.lib.format.write_array_header_1_0(f, header)
            f.write(b"\0" * 1_000_000)
    expect_refused(work, [*TRAIN, "--data", "bomb.npz", "--out", "b"], "bomb.npz", "(100000, 100000)")


def test_an_out_that_is_a_looping_link_is_one_line(work):
    (work / "loop").symlink_to("loop")
    expect_refused(work, [*TRAIN, "--out", "loop"], "symbolic link to nowhere")


@pytest.mark.parametrize("experiment, name", [("all", "README.md"), ("prior-match", "results.md")])
def test_reproduce_never_replaces_a_summary_it_did_not_write(work, experiment, name):
    (work / "mine" / name).write_text("# my own notes\n")
    argv = ["reproduce", experiment, "--out", "mine", "--records", "none", "--no-progress"]
    expect_refused(work, argv, f"mine/{name} is a file aae did not write")
