"""Reproduction tables gather runs from their records: a finished run's record counts without its weights."""

import argparse
import json
import os

import numpy as np
import pytest

from aae.config.load import load_config
from aae.errors import AAEError, ConfigError
from aae.experiment import FINAL
from aae.paper.records import recipe, recorded
from aae.paper.runs import Runs, epochs_kept, trained_on
from aae.training.checkpoint import CHECKPOINT
from aae.training.devices import cpu_model

RUNTIME = dict(records=None, train=True, retrain=False, device="cpu", no_progress=True)
"""the reproduce command's arguments that no table test varies: no committed records, train what is missing, on
the CPU"""


def _args(out, seeds=(0,), **kw):
    return argparse.Namespace(**{**RUNTIME, "out": str(out), "seeds": list(seeds), **kw})


def _leave_record(run_dir, cfg, final: dict, epochs: int) -> None:
    """Write the record a finished run leaves (its config, per-epoch log and final metrics), no weights."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(cfg.to_json())
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": epochs, "seconds": 60.0}) + "\n")
    (run_dir / FINAL).write_text(json.dumps(final))


def test_a_finished_run_counts_from_its_record_without_weights(tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=2", "model.regime=semi_supervised", "data.n_labeled=100")
    first = Runs(_args(tmp_path), "exp").get({"AAE": cfg})["AAE"][0]
    run_dir = tmp_path / "AAE-seed0"
    assert json.loads((run_dir / FINAL).read_text()) == pytest.approx(first.metrics)
    assert first.epochs == 2 and first.seconds > 0

    (run_dir / CHECKPOINT).unlink()  # only the record is left, as docs/results keeps it
    again = Runs(_args(tmp_path), "exp").get({"AAE": cfg})["AAE"][0]
    assert again.model is None
    assert again.metrics == pytest.approx(first.metrics)
    assert again.epochs == 2 and again.seconds == pytest.approx(first.seconds)


def test_each_seed_draws_its_own_labeled_subset_and_validation_split(tiny_config, tmp_path):
    def labeled(res):  # the labeled training images and the validation images a run saw
        train = res.splits.train
        return train.x[train.y >= 0].sum(), res.splits.valid.x.sum()

    cfg = tiny_config("train.epochs=1", "model.regime=semi_supervised", "data.n_labeled=100")
    own = Runs(_args(tmp_path / "own", seeds=(0, 1)), "exp").get({"AAE": cfg}, draws=True)["AAE"]
    assert [r.splits is not None for r in own] == [True, True]
    assert [
        json.loads((tmp_path / "own" / f"AAE-seed{s}" / "config.json").read_text())["data"]["label_seed"]
        for s in (0, 1)
    ] == [0, 1]
    first, second = labeled(own[0]), labeled(own[1])
    assert first[0] != second[0] and first[1] != second[1]
    # one draw given for every seed: the runs share it, and their directories say which it is
    shared = Runs(_args(tmp_path / "shared", seeds=(0, 1), label_seeds=[1, 1]), "exp").get({"AAE": cfg}, draws=True)
    assert labeled(shared["AAE"][0]) == labeled(shared["AAE"][1]) == second
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["AAE-seed0-draw1", "AAE-seed1"]
    with pytest.raises(ConfigError, match="--label-seeds: 1 given for 2 seeds; give one per seed"):
        Runs(_args(tmp_path / "bad", seeds=(0, 1), label_seeds=[3]), "exp").get({"AAE": cfg}, draws=True)
    assert not (tmp_path / "bad").exists()


def test_a_record_of_another_recipe_is_refused(tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=1")
    Runs(_args(tmp_path), "exp").get({"AAE": cfg})
    (tmp_path / "AAE-seed0" / CHECKPOINT).unlink()
    changed = tiny_config("train.epochs=1", "train.lr.generator=0.01")
    with pytest.raises(ConfigError, match="holds a finished run of another config"):
        recorded(tmp_path / "AAE-seed0", changed)
    with pytest.raises(ConfigError, match="holds a finished run of another config"):  # measured another way
        recorded(tmp_path / "AAE-seed0", tiny_config("train.epochs=1", "eval.tta_shift=1"))
    # where or how fast a run ran does not make it another recipe, nor a key that does not act
    assert recorded(tmp_path / "AAE-seed0", tiny_config("train.epochs=1")) is not None
    assert tiny_config().train.lr_milestones == []
    assert recorded(tmp_path / "AAE-seed0", tiny_config("train.epochs=1", "train.lr_gamma=0.5")) is not None


def test_a_classifier_record_ignores_the_autoencoders_keys(tiny_config, tmp_path):
    clusterer = (
        "model.regime=clustering",
        "model.objective='classifier'",
        "model.vat_weight=1",
        "model.y_marginal_weight=0.4",
        "model.y_entropy_weight=0.1",
        "train.epochs=1",
    )
    Runs(_args(tmp_path), "exp").get({"IMSAT": tiny_config(*clusterer)})
    (tmp_path / "IMSAT-seed0" / CHECKPOINT).unlink()
    # no decoder or discriminator trains under objective = 'classifier'; its own terms still count
    assert (
        recorded(
            tmp_path / "IMSAT-seed0",
            tiny_config(*clusterer, "model.y_regularizer=imsat", "model.z_dim=5", "model.disc_hidden=[8]"),
        )
        is not None
    )
    # nor do the reconstruction and discriminator rates; the generator's (the y head's terms) does
    assert recorded(tmp_path / "IMSAT-seed0", tiny_config(*clusterer, "train.lr.reconstruction=1e-5")) is not None
    for other in ("model.vat_weight=2", "train.lr.generator=1e-5"):
        with pytest.raises(ConfigError, match="holds a finished run of another config"):
            recorded(tmp_path / "IMSAT-seed0", tiny_config(*clusterer, other))


def test_a_directory_without_a_record_is_not_a_run(tiny_config, tmp_path):
    assert recorded(tmp_path, tiny_config()) is None


def test_a_committed_record_counts_unless_retrained_or_of_another_recipe(tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=1")
    committed = Runs(_args(tmp_path / "records" / "exp"), "exp").get({"AAE": cfg})["AAE"][0]
    (tmp_path / "records" / "exp" / "AAE-seed0" / CHECKPOINT).unlink()  # what docs/results keeps: the record
    args = _args(tmp_path / "out", records=str(tmp_path / "records"))
    read = Runs(args, "exp").get({"AAE": tiny_config("train.epochs=1")})["AAE"][0]
    assert read.model is None and read.metrics == pytest.approx(committed.metrics)
    assert not (tmp_path / "out").exists()  # nothing trained
    # the table names where each run it counts trained, from the record's machine.json
    runs = Runs(args, "exp")
    runs.get({"AAE": tiny_config("train.epochs=1")})
    (machine,) = runs.trained_on
    assert cpu_model() in machine and "1 thread" in machine and "fp32" in machine
    (tmp_path / "records" / "exp" / "AAE-seed0" / "machine.json").unlink()
    runs = Runs(args, "exp")
    runs.get({"AAE": tiny_config("train.epochs=1")})
    assert not (tmp_path / "out").exists()
    assert list(runs.trained_on) == [trained_on(tmp_path)] and "predates" in trained_on(tmp_path)
    # a committed record of an older recipe is passed over (not an error), and --retrain ignores the records
    other = Runs(args, "exp").get({"AAE": tiny_config("train.epochs=1", "train.lr.generator=0.01")})["AAE"][0]
    assert other.model is not None and (tmp_path / "out" / "AAE-seed0" / FINAL).exists()
    fresh = Runs(_args(tmp_path / "again", records=str(tmp_path / "records"), retrain=True), "exp").get(
        {"AAE": tiny_config("train.epochs=1")}
    )["AAE"][0]
    assert fresh.model is not None and (tmp_path / "again" / "AAE-seed0" / CHECKPOINT).exists()


def test_the_paper_row_is_the_bundled_config_without_what_goes_beyond_the_paper():
    from aae.config.load import load_config
    from aae.paper.classification import NN, PAPER_RECIPE, _models

    paper = load_config("mnist_semi_1000", PAPER_RECIPE)
    assert paper.model.vat_weight == 0 and paper.train.ema == 0 and paper.train.shift == 0
    assert load_config("mnist_semi_1000").train.shift > 0  # the shifted images are ours
    assert (
        load_config("mnist_semi_all").eval.tta_shift > 0
        and load_config("mnist_semi_all", PAPER_RECIPE).eval.tta_shift == 0
    )
    unsup = load_config("mnist_dimred_unsup20", PAPER_RECIPE)  # the analytic KL of q(y) is ours too
    assert unsup.model.y_marginal_weight == 0 and load_config("mnist_dimred_unsup20").model.y_marginal_weight > 0
    clustering = load_config("mnist_cluster_30", PAPER_RECIPE).model  # the paper's y discriminator, no IMSAT terms
    assert clustering.y_regularizer == "adversary" and not clustering.encoder_batch_norm
    assert clustering.vat_weight == clustering.y_marginal_weight == clustering.y_entropy_weight == 0
    for name in (
        "mnist_semi_100",
        "mnist_semi_1000",
        "mnist_semi_all",
        "mnist_dimred_unsup20",
    ):  # their records stay valid
        base = load_config(name)
        assert (base.model.hidden, base.train.batch_size, base.model.encoder_batch_norm) == ([1000, 1000], 100, False)
    # the 100-label recipe's invariance term is ours; the NN baseline sees the labeled images only
    assert load_config("mnist_semi_100").model.y_invariance_weight > 0
    for name in ("mnist_semi_100", "mnist_semi_1000", "mnist_semi_all"):
        for extra in (PAPER_RECIPE, NN):
            m = load_config(name, extra).model
            assert m.vat_weight == m.y_invariance_weight == m.y_marginal_weight == m.y_entropy_weight == 0
    everything = ("AAE", "AAE-paper", "NN", "NN+VAT")
    assert list(_models(argparse.Namespace(models=None), everything)) == list(everything)
    assert list(_models(argparse.Namespace(models=["NN", "AAE"]), everything)) == ["AAE", "NN"]
    with pytest.raises(ConfigError, match="has only AAE, AAE-paper"):
        _models(argparse.Namespace(models=["NN"]), ("AAE", "AAE-paper"))


def test_the_imsat_row_is_hu_et_als_recipe_on_the_clustering_config():
    from aae.config.load import load_config
    from aae.model.autoencoder import Classifier, build_model
    from aae.paper.classification import IMSAT

    cfg = load_config("mnist_cluster_30", IMSAT)
    m = cfg.model
    assert (m.objective, m.n_classes, m.hidden, m.vat_knn, m.vat_eps) == ("classifier", 30, [1200, 1200], 10, 0.25)
    assert m.y_marginal_weight == 4 * m.y_entropy_weight == 0.4 * m.vat_weight  # lambda = 0.1, mu = 4
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.train.lr["generator"]) == (50, 250, 0.002)
    model = build_model(m, 784)
    assert isinstance(model, Classifier) and [p.name for p in model.phases] == ["smoothing"]  # no decoder, no disc.
    assert not hasattr(model, "decoder") and not hasattr(model, "discriminators")


def test_a_run_stopped_early_is_measured_and_listed_at_its_selected_epoch(tiny_config, tmp_path):
    cfg = tiny_config(
        "train.epochs=6",
        "model.regime=semi_supervised",
        "data.n_labeled=300",
        "model.hidden=[128]",
        "train.lr.generator=1e-4",
        "train.lr.discriminator=1e-4",
        "train.select_by=valid_error",
    )
    res = Runs(_args(tmp_path), "exp").get({"AAE": cfg})["AAE"][0]
    best = min(res.history, key=lambda r: r["valid_error"])
    assert best["epoch"] < 6 and best["test_error"] != res.history[-1]["test_error"]  # (measured: epoch 4)
    assert res.metrics["selected_epoch"] == best["epoch"] and res.metrics["selected_valid_error"] == best["valid_error"]
    # the final measurement is of the selected model, not of the last epoch's
    assert res.metrics["test_error"] == best["test_error"]
    assert epochs_kept([res]) == f"6 ({best['epoch']})"


def test_clustering_table_prints_the_equal_cluster_floor_beside_each_row(tmp_path, mnist_dir, capsys):
    from aae.config.load import load_config
    from aae.paper.classification import IMSAT, clustering

    args = argparse.Namespace(
        out=str(tmp_path),
        seeds=[0],
        models=["AAE", "IMSAT"],
        set=[f"data.data_dir='{mnist_dir}'"],
        epochs=None,
        data_dir=None,
        clusters=[16, 30],
        **{**RUNTIME, "train": False},  # a run without a record is listed as missing, not trained
    )
    for m, err in ((16, 0.2), (30, 0.05)):  # records as a finished run leaves them
        cfg = load_config(f"mnist_cluster_{m}", [f"data.data_dir='{mnist_dir}'", "train.seed=0"])
        final = {"test_cluster_error": err, "test_hungarian_accuracy": 0.6, "test_nmi": 0.7}
        if m == 30:  # records from before the cluster sizes were measured lack them
            final.update(test_smallest_cluster=0.5, test_largest_cluster=1.75, test_cluster_error_majority=0.04)
        _leave_record(tmp_path / f"clusters-{m}" / "AAE-seed0", cfg, final, epochs=40)
    # the baseline recorded at 30 clusters only
    cfg = load_config("mnist_cluster_30", [f"data.data_dir='{mnist_dir}'", "train.seed=0", *IMSAT])
    final = {"test_cluster_error": 0.07, "test_hungarian_accuracy": 0.5, "test_nmi": 0.6}
    _leave_record(tmp_path / "clusters-30" / "IMSAT-seed0", cfg, final, epochs=50)
    heads = clustering(args)
    out = capsys.readouterr().out
    # the summary line names the baseline beside the AAE, as Table 2's names the NN
    assert [(h.what.endswith("AAE (IMSAT)"), h.ours) for h in heads] == [
        (True, "20.00 % (1 seed) (-)"),
        (True, "5.00 % (1 seed) (7.00 % (1 seed))"),
    ]
    assert "| 30 | IMSAT | 7.00 % (1 seed) |" in out
    assert "left out (1 run; --train trains them): clusters-16/IMSAT-seed0." in (tmp_path / "results.md").read_text()
    assert "| 16 | AAE | 20.00 % (1 seed) | 9.55 % | 13.04 % |  | 60.00 % (1 seed) | 0.700 (1 seed) |  | 40 |" in out
    assert (
        "| 30 | AAE | 5.00 % (1 seed) | 4.10 % | 2.14 % | 4.00 % (1 seed) | 60.00 % (1 seed) | 0.700 (1 seed) "
        "| 0.50-1.75 | 40 |" in out
    )


def test_dim_reduction_table_has_a_row_for_each_chosen_map_only(tmp_path, mnist_dir, capsys, monkeypatch):
    from aae.config.load import load_config
    from aae.paper.classification import _Umap, dim_reduction

    args = argparse.Namespace(
        out=str(tmp_path),
        seeds=[0],
        set=[f"data.data_dir='{mnist_dir}'"],
        epochs=None,
        data_dir=None,
        maps=["100", "10d"],
        **RUNTIME,
    )
    for variant, err in (("100", 0.06), ("10d", 0.02)):  # records as a finished run leaves them
        cfg = load_config(f"mnist_dimred_{variant}", [f"data.data_dir='{mnist_dir}'", "train.seed=0"])
        final = {"test_error": err, "test_map_1nn_error": 2 * err}
        _leave_record(tmp_path / variant / "AAE-seed0", cfg, final, epochs=20)
    fits = []  # UMAP's own fit is tested on digits below; here each map's row asks for its two fits
    monkeypatch.setattr(_Umap, "error", lambda self, splits, n, labels: fits.append((n, labels)) or 0.1 * labels)
    dim_reduction(args)
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "%" in line]
    assert [r.split(" | ")[0] for r in rows] == ["| 100", "| 10d"]
    assert "| 100 | 2 | 6.00 % (1 seed) | 12.00 % (1 seed) |" in rows[0]
    assert "| 10d | 10 | 2.00 % (1 seed) | 4.00 % (1 seed) |" in rows[1]
    assert rows[0].split(" | ")[5:7] == ["0.00 %", "10.00 %"]
    assert fits == [(2, False), (2, True), (10, False), (10, True)]
    assert not (tmp_path / "1000").exists() and not (tmp_path / "unsup20").exists()


@pytest.mark.slow
def test_umap_maps_are_scored_by_the_same_1nn_unsupervised_and_with_labels(digits, monkeypatch, tmp_path):
    import copy
    import sys

    from aae.data.splits import label_budget
    from aae.paper.classification import _Umap

    pytest.importorskip("umap")
    splits = copy.copy(digits)
    splits.train = copy.copy(digits.train)
    splits.train.y = label_budget(digits.train.y, 300, seed=0, n_classes=10)
    umap = _Umap()
    given = []  # whether each fit received the labels (the two errors may coincide on 600 test images)

    class Spy(umap.umap.UMAP):
        def fit(self, x, y=None, **kwargs):
            given.append(None if y is None else int((y >= 0).sum()))
            return super().fit(x, y, **kwargs)

    monkeypatch.setattr(umap.umap, "UMAP", Spy)
    alone, labeled = umap.error(splits, 2, labels=False), umap.error(splits, 2, labels=True)
    assert given == [None, 300]
    assert 0 <= alone < 0.2 and 0 <= labeled < 0.2  # measured: 4.0 and 4.7 % on one CPU, 5.17 % both on another
    assert umap.error(splits, 2, labels=False) == alone and len(umap.errors) == 2  # one fit each, shared
    umap.save(tmp_path)  # printed again, the table reads the errors back instead of fitting again
    kept = _Umap([tmp_path])
    monkeypatch.setattr(kept.umap, "UMAP", None)
    assert (kept.error(splits, 2, labels=False), kept.error(splits, 2, labels=True)) == (alone, labeled)
    splits.train.y = np.full_like(digits.train.y, -1)
    assert umap.error(splits, 2, labels=True) is None  # no labels, no labeled map
    monkeypatch.setitem(sys.modules, "umap", None)  # where umap-learn is absent
    assert _Umap().error(splits, 2, labels=False) is None


def test_supervised_table_keeps_what_the_judge_read_beside_each_record(tmp_path, capsys):
    from aae.paper.generative import supervised
    from aae.paper.records import MEASURED

    tiny = ["data.name='digits'", "model.hidden=[64]", "model.disc_hidden=[32]"]
    args = argparse.Namespace(out=str(tmp_path), seeds=[0, 1], set=tiny, epochs=1, data_dir=None, **RUNTIME)
    supervised(args)
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "%" in r]
    assert [r.split(" | ")[0] for r in rows] == [
        "| independent CNN on real test images",
        "| generated: random style, each label (10 x 1000)",
        "| restyled: 1000 test images x 10 labels",
    ]
    judged = [json.loads((tmp_path / f"AAE-seed{s}" / MEASURED).read_text()) for s in (0, 1)]
    assert judged[0]["how"] == judged[1]["how"] and judged[0]["values"] != judged[1]["values"]
    assert judged[0]["values"]["judge_test_accuracy"] > 0.5  # the CNN reads real digits (measured: 72 %)
    for s in (0, 1):
        (tmp_path / f"AAE-seed{s}" / CHECKPOINT).unlink()
        (tmp_path / "classifier.safetensors").unlink(missing_ok=True)
    supervised(argparse.Namespace(**{**vars(args), "train": False}))
    assert [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and "%" in r] == rows
    assert not (tmp_path / "classifier.safetensors").exists()  # nothing measured again


def test_likelihood_table_scores_models_and_real_images_by_one_parzen_protocol(tmp_path, capsys):
    from aae.paper.generative import PARZEN_SIGMAS, likelihood

    tiny = ["data.name='digits'", "model.hidden=[64]", "model.disc_hidden=[32]"]
    args = argparse.Namespace(
        out=str(tmp_path),
        seeds=[0],
        models=["AAE", "AAE-paper", "VAE"],
        set=tiny,
        epochs=2,
        data_dir=None,
        samples=500,
        **RUNTIME,
    )
    likelihood(args)
    rows = {
        r.split(" | ")[0][2:]: r.split(" | ")
        for r in capsys.readouterr().out.splitlines()
        if r.startswith("| ") and "(s.e.)" in r
    }
    assert list(rows) == ["AAE", "AAE-paper", "VAE", "500 real training images"]
    assert rows["AAE"][2] == rows["AAE-paper"][2] == "340 ± 2" and rows["VAE"][2] == ""
    # AAE-paper is the bundled recipe without what goes beyond the paper, with the paper's 8-D code
    shipped, paper, vae = (
        json.loads((tmp_path / f"{v}-seed0" / "config.json").read_text()) for v in ("AAE", "AAE-paper", "VAE")
    )
    assert (shipped["model"]["dropout"], shipped["train"]["ema"], shipped["model"]["z_dim"]) == (0.2, 0.999, 6)
    assert (paper["model"]["dropout"], paper["train"]["ema"], paper["model"]["z_dim"]) == (0.0, 0.0, 8)
    assert {k: v for k, v in paper["model"].items() if k not in ("dropout", "z_dim")} == {
        k: v for k, v in shipped["model"].items() if k not in ("dropout", "z_dim")
    }
    assert (vae["model"]["objective"], vae["model"]["z_dim"], vae["model"]["hidden"]) == ("vae", 8, [64])
    assert all(min(PARZEN_SIGMAS) - 1e-9 <= float(r[3]) <= max(PARZEN_SIGMAS) + 1e-9 for r in rows.values())
    ll = {k: float(r[1].split(" ± ")[0]) for k, r in rows.items()}
    # two epochs of a tiny model: real images must score far above its samples
    assert ll["500 real training images"] > ll["AAE"] + 10 and ll["500 real training images"] > ll["VAE"] + 10
    assert (tmp_path / "results.md").read_text().count("340 ± 2") >= 1
    # the validation images' log-likelihood at the chosen width is recorded beside the test images'
    measured = json.loads((tmp_path / "AAE-seed0" / "measured.json").read_text())["values"]
    assert measured["test_parzen_log_likelihood"] == pytest.approx(ll["AAE"], abs=0.06)
    assert measured["valid_parzen_log_likelihood"] == pytest.approx(ll["AAE"], rel=0.1)
    # what was measured on the models stays beside their records: with the weights gone, the table is the same
    table = [r for r in (tmp_path / "results.md").read_text().splitlines() if r.startswith("| ")]
    for v in ("AAE", "AAE-paper", "VAE"):
        (tmp_path / f"{v}-seed0" / CHECKPOINT).unlink()
    likelihood(argparse.Namespace(**{**vars(args), "train": False}))
    assert [r for r in (tmp_path / "results.md").read_text().splitlines() if r.startswith("| ")] == table
    assert not (tmp_path / "AAE-seed0" / CHECKPOINT).exists()  # nothing trained again
    # measured another way (other samples), a record does not count: the table names the runs it lacks
    likelihood(argparse.Namespace(**{**vars(args), "train": False, "samples": 400}))
    left_out = "left out (3 runs; --train trains them): AAE-seed0, AAE-paper-seed0, VAE-seed0"
    assert left_out in (tmp_path / "results.md").read_text()


def test_reproduce_all_summarises_every_table_from_its_records(tmp_path, capsys, monkeypatch):
    from aae.paper import reproduce

    tiny = ["data.name='digits'", "model.hidden=[64]", "model.disc_hidden=[32]"]
    paper = [
        ("likelihood", {"models": ["AAE"], "seeds": [0], "samples": 300}),
        ("prior-match", {"prior": "gaussian", "seeds": [0, 1]}),
    ]
    monkeypatch.setattr(reproduce, "PAPER", paper)
    args = argparse.Namespace(
        **{**RUNTIME, "out": str(tmp_path), "seeds": None, "set": tiny, "epochs": 1, "data_dir": None}
    )
    reproduce.reproduce_all(args)
    summary = (tmp_path / "README.md").read_text()
    rows = [r for r in summary.splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert [r.split(" | ")[0] for r in rows] == [
        "| Table 1: Parzen log-likelihood of the MNIST test images (nats)",
        "| Figures 2-3: MMD of the test codes to the gaussian prior, AAE (VAE)",
    ]
    assert rows[0].split(" | ")[2:4] == ["340 ± 2", "1"] and rows[1].split(" | ")[3] == "6"  # AAE, VAE, AE x 2 seeds
    assert "[likelihood](likelihood/results.md)" in rows[0] and (tmp_path / "likelihood" / "results.md").exists()
    assert "[prior-match-gaussian](prior-match-gaussian/results.md)" in rows[1]
    assert "Training of the 7 runs" in summary and "minutes of CPU time" in capsys.readouterr().out
    # from the records alone (no weights, nothing to train): the same summary
    for ckpt in tmp_path.rglob(CHECKPOINT):
        ckpt.unlink()
    reproduce.reproduce_all(argparse.Namespace(**{**vars(args), "train": False}))
    again = (tmp_path / "README.md").read_text()
    assert [r for r in again.splitlines() if r.startswith("| ")][1:] == rows
    assert not list(tmp_path.rglob(CHECKPOINT))
    with pytest.raises(ConfigError, match="give --seeds too"):  # before any table runs
        reproduce.reproduce_all(argparse.Namespace(**{**vars(args), "label_seeds": [3]}))


def test_reproduce_with_jobs_trains_the_missing_runs_side_by_side_then_reads_them(tmp_path, capsys, monkeypatch):
    from aae.paper import reproduce

    tiny = ["data.name='digits'", "model.hidden=[64]", "model.disc_hidden=[32]"]
    monkeypatch.setattr(reproduce, "PAPER", [("prior-match", {"prior": "gaussian", "seeds": [0]})])
    args = argparse.Namespace(
        **{**RUNTIME, "out": str(tmp_path), "seeds": None, "set": tiny, "epochs": 1, "data_dir": None, "jobs": 2}
    )
    reproduce.EXPERIMENTS["all"](args)
    out = capsys.readouterr().out
    assert "training 3 runs, 2 at a time" in out
    runs = sorted(p.name for p in (tmp_path / "prior-match-gaussian").iterdir() if p.is_dir())
    assert runs == ["AAE-seed0", "AE-seed0", "VAE-seed0"]
    for run in runs:  # each trained in a worker process, on its share of the cores
        (stint,) = json.loads((tmp_path / "prior-match-gaussian" / run / "machine.json").read_text())
        assert stint["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    summary = (tmp_path / "README.md").read_text()
    assert "Training of the 3 runs" in summary and "| 3 |" in summary
    # the table reads the finished runs from their records: the table's pass trains nothing again
    stamps = {p: p.stat().st_mtime for p in tmp_path.rglob(CHECKPOINT)}
    reproduce.EXPERIMENTS["all"](args)
    assert "training" not in capsys.readouterr().out.split("==")[0]
    assert {p: p.stat().st_mtime for p in tmp_path.rglob(CHECKPOINT)} == stamps
    assert (tmp_path / "README.md").read_text().split("Training of")[0] == summary.split("Training of")[0]
    with pytest.raises(ConfigError, match="--jobs 0 is not allowed"):
        reproduce.EXPERIMENTS["all"](argparse.Namespace(**{**vars(args), "jobs": 0}))


def test_a_finished_run_is_read_from_its_record_and_a_longer_one_resumes_it(tiny_config, tmp_path):
    cfg = tiny_config("train.epochs=1")
    Runs(_args(tmp_path), "exp").get({"AAE": cfg})
    run_dir = tmp_path / "AAE-seed0"
    assert (run_dir / CHECKPOINT).exists()
    again = Runs(_args(tmp_path), "exp").get({"AAE": tiny_config("train.epochs=1")})["AAE"][0]
    assert again.model is None  # read, not resumed
    longer = Runs(_args(tmp_path), "exp").get({"AAE": tiny_config("train.epochs=2")})["AAE"][0]
    assert longer.model is not None and longer.epochs == 2  # resumed from its checkpoint


def test_a_run_failing_in_the_pool_is_the_commands_error(tiny_config, tmp_path):
    from aae.paper import pool

    plan = pool.Plan()
    where = f"data.data_dir='{tmp_path / 'none'}'"
    bad = tiny_config("train.epochs=1", "data.name='mnist'", where, "data.download=false")
    plan.add(bad.to_dict(), tmp_path / "AAE-seed0")
    with pytest.raises(AAEError, match="MNIST"):
        pool.train(plan, jobs=2, device="cpu", progress=False)
    assert not (tmp_path / "AAE-seed0" / CHECKPOINT).exists()


def test_likelihood_conv_row_is_the_bundled_recipe_on_conv_networks():
    mlp, conv = (load_config(name).to_dict() for name in ("mnist_likelihood", "mnist_likelihood_conv"))
    changed = {k for k in mlp["model"] if mlp["model"][k] != conv["model"][k]}
    assert changed == {"net", "hidden"} and conv["model"]["net"] == "conv"
    # the command the config's comment gives trains the same recipe as the AAE-conv row
    given = load_config("mnist_likelihood", ["model.net=conv", "model.channels=32", "model.hidden=[1200]"]).to_dict()
    assert recipe(given) == recipe(conv)
