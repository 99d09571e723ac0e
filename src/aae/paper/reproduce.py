"""``aae reproduce NAME``: one command per paper result, printing ours beside the paper's.

Each experiment gathers the runs it needs: a run under ``--out`` (resumed if a killed earlier
call left it unfinished), else the committed record of the same recipe under ``--records``
(``docs/results``), else it trains the run under ``--out``; ``--retrain`` ignores the committed
records. Then it prints a table: mean ± std over ``--seeds``, wall time, and the paper's figure,
also written to ``<out>/results.md`` with the command that made it.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import CHECKPOINT
from ..config import ExperimentConfig, load_config
from ..errors import ConfigError
from ..experiment import Result, prepare_data, run
from .records import recorded, save_measured, with_measured

PAPER_RECIPE = [
    "model.vat_weight=0",
    "model.vat_knn=0",
    "model.y_marginal_weight=0",
    "model.y_entropy_weight=0",
    "model.y_regularizer='adversary'",
    "model.encoder_batch_norm=false",
    "model.hidden=[1000, 1000]",
    "train.batch_size=100",
    "train.ema=0",
    "train.shift=0",
    "eval.tta_shift=0",
]
"""the bundled semi-supervised and clustering configs without what goes beyond the paper (at the configs' rates)"""
IMSAT = [
    "model.objective='classifier'",
    "model.vat_weight=1",
    "model.y_marginal_weight=0.4",
    "model.y_entropy_weight=0.1",
    "model.vat_knn=10",
    "model.vat_eps=0.25",
    "model.encoder_batch_norm=true",
    "model.hidden=[1200, 1200]",
    "train.epochs=50",
    "train.lr_milestones=[]",
    "train.lr.generator=0.002",
    "train.batch_size=250",
]
"""IMSAT's published recipe (Hu et al. 2017, MNIST): VAT at a radius of 0.25 times each image's
distance to its 10th neighbour, lambda = 0.1 and mu = 4 on the mutual information, a 1200-1200
encoder with batch norm, Adam at 0.002 on batches of 250 for 50 epochs; no decoder, no discriminator"""
NN = ["model.objective='classifier'", "model.vat_weight=0", "model.y_marginal_weight=0", "model.y_entropy_weight=0"]
"""the paper's NN baseline: the encoder's q(y|x) alone, trained on the labeled images only"""
MODELS = {"AAE": [], "AAE-paper": PAPER_RECIPE, "NN": NN, "NN+VAT": ["model.objective='classifier'"], "IMSAT": IMSAT}
VAE = ["model.objective='vae'", "model.encoder='gaussian'"]
"""a config's VAE twin: the same networks, trained by the ELBO"""
MAPS = ("1000", "100", "unsup20", "10d")
"""the dimensionality-reduction variants, each a bundled config mnist_dimred_<variant>"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", "-o", help="directory for the runs (default runs/reproduce/<experiment>)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to average over (default 0)")
    p.add_argument("--epochs", type=int, help="override every run's epochs")
    p.add_argument(
        "--label-seeds",
        type=int,
        nargs="+",
        metavar="N",
        help="semi-supervised: the labeled subset and validation split each seed draws, one per seed "
        "(default: each seed draws its own, label seed = seed)",
    )
    p.add_argument("--data-dir", help="directory holding data sets")
    p.add_argument(
        "--set", "-s", action="append", default=[], metavar="KEY=VALUE", help="override a config key in every run"
    )
    p.add_argument(
        "--prior",
        default="mixture",
        choices=["gaussian", "mixture", "swiss_roll"],
        help="prior-match, label-modes: which prior (default mixture)",
    )
    p.add_argument(
        "--labels",
        nargs="+",
        default=["100", "1000", "all"],
        choices=["100", "1000", "all"],
        help="semi-supervised: label budgets (default 100 1000 all)",
    )
    p.add_argument(
        "--clusters",
        type=int,
        nargs="+",
        default=[16, 30],
        choices=[16, 30],
        help="clustering: numbers of clusters (default 16 30)",
    )
    p.add_argument(
        "--maps",
        nargs="+",
        default=list(MAPS),
        choices=list(MAPS),
        help="dim-reduction: which maps (default all): 1000 and 100 labels and unsupervised with 20 clusters in "
        "2-D, 1000 labels in 10-D",
    )
    p.add_argument(
        "--models",
        nargs="+",
        choices=[*MODELS, "VAE"],
        help="semi-supervised, clustering, likelihood (AAE, VAE): which rows to train "
        "and print (default: all the experiment has): AAE (the bundled config), AAE-paper (the same without "
        "what goes beyond the paper: VAT, weight averaging, the marginal KL, shifted images and test-time "
        "shifts), NN (the "
        "encoder alone as a classifier), NN+VAT (that classifier with the bundled config's VAT on the "
        "unlabeled images: the recipe without the autoencoder), IMSAT (clustering: Hu et al.'s "
        "recipe, VAT and mutual information without the autoencoder)",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=10000,
        help="likelihood: generated images in the Parzen window, "
        "and validation and test images it is measured on (default 10000, the paper's)",
    )
    p.add_argument(
        "--records",
        default="docs/results",
        help="committed run records to read before training (default docs/results, where it exists)",
    )
    p.add_argument(
        "--train",
        action="store_true",
        help="train the runs that neither --out nor --records holds "
        "(default: leave them out of the table and list them)",
    )
    p.add_argument("--retrain", action="store_true", help="train every run afresh under --out, ignoring --records")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _overrides(args) -> list[str]:
    out = list(args.set)
    if args.epochs is not None:
        out.append(f"train.epochs={args.epochs}")
    if args.data_dir:
        out.append(f"data.data_dir='{args.data_dir}'")
    return out


def _root(args, name: str) -> Path:
    """Where an experiment's runs and table go: --out, else runs/reproduce/<name>."""
    return Path(args.out or f"runs/reproduce/{name}")


class Runs:
    """The runs of one table, gathered: ``get`` returns every (variant, seed) that can be had, and
    ``missing`` names the runs that neither a run directory nor a record holds and that were not trained
    (the table's notes list them)."""

    def __init__(self, args, name: str):
        self.args, self.name = args, name
        self.missing: list[str] = []

    def label_seeds(self, draws: bool) -> list[int | None]:
        """Each seed's label draw: ``--label-seeds``, else the seed itself where the table ``draws``
        (a new labeled subset and validation split per seed), else the config's own (None)."""
        given = getattr(self.args, "label_seeds", None)
        if given is not None:
            if len(given) != len(self.args.seeds):
                raise ConfigError(
                    f"--label-seeds: {len(given)} given for {len(self.args.seeds)} seeds; give one per seed"
                )
            return list(given)
        return list(self.args.seeds) if draws else [None] * len(self.args.seeds)

    def get(
        self,
        configs: dict[str, ExperimentConfig],
        sub: str = "",
        draws: bool = False,
        measure: Callable[[Result], dict] | None = None,
        how: dict | None = None,
    ) -> dict[str, list[Result]]:
        """Every (variant, seed): the run under ``<out>/<sub>`` (resumed where it has a checkpoint),
        else the committed record of the same recipe under ``<records>/<name>/<sub>``, else, with
        ``--train`` (or ``--retrain``), a new run trained under ``<out>/<sub>``. A run is
        ``<variant>-seed<seed>``, with ``-draw<n>`` where its label draw is given and is not its seed.

        A table that measures the trained model passes ``measure`` (the model's result to a dict of
        figures) and ``how`` (what the figures depend on beyond the run): a record then counts only
        with a ``measured.json`` of the same ``how``, which measuring a model writes beside its record."""
        args = self.args
        root = _root(args, self.name) / sub
        committed = None if args.retrain or not args.records else Path(args.records) / self.name / sub
        train = getattr(args, "train", False) or args.retrain
        results: dict[str, list[Result]] = {}
        splits: dict[int | None, object] = {}
        for variant, cfg in configs.items():
            for seed, draw in zip(args.seeds, self.label_seeds(draws), strict=True):
                cfg.train.seed = seed
                if draw is not None:
                    cfg.data.label_seed = draw
                run_dir = root / (f"{variant}-seed{seed}" + ("" if draw in (None, seed) else f"-draw{draw}"))
                res = None
                for where, strict in ((run_dir, True), (committed and committed / run_dir.name, False)):
                    if res is None and where is not None and not (run_dir / CHECKPOINT).exists():
                        if where != run_dir and run_dir.exists():
                            break  # a run under --out, unfinished: resume it rather than read the record
                        res = recorded(where, cfg, strict=strict)
                        if res is not None and measure is not None:
                            res = with_measured(res, where, how)
                if res is None and (train or (run_dir / CHECKPOINT).exists()):
                    key = cfg.data.label_seed
                    splits[key] = splits.get(key) or prepare_data(cfg, not args.no_progress)
                    res = run(
                        cfg, run_dir, resume=True, splits=splits[key], device=args.device, progress=not args.no_progress
                    )
                    if measure is not None:
                        res.metrics.update(save_measured(run_dir, how, measure(res)))
                if res is None:
                    self.missing.append(f"{sub + '/' if sub else ''}{run_dir.name}")
                    continue
                results.setdefault(variant, []).append(res)
        return results


def _stat(values: list[float], scale: float = 1.0, digits: int = 4, unit: str = "") -> str:
    v = np.asarray(values) * scale
    return (
        f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}{unit}"
        if len(v) > 1
        else f"{v[0]:.{digits}f}{unit} (1 seed)"
    )


def _epochs(rs: list[Result]) -> str:
    """Epochs trained and, for runs that stopped early on the validation set, the epoch each one kept."""
    chosen = [str(r.metrics["selected_epoch"]) for r in rs if "selected_epoch" in r.metrics]
    return f"{rs[0].epochs} ({', '.join(chosen)})" if chosen else str(rs[0].epochs)


def _write_table(
    args, name: str, header: list[str], rows: list[list[str]], notes: str = "", missing: list[str] = ()
) -> None:
    if missing:
        notes += f"\n\nNot recorded, so left out ({len(missing)} runs; --train trains them): {', '.join(missing)}."
        print(f"not recorded, so left out (pass --train to train them): {', '.join(missing)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    machine = (
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU only'}, "
        f"torch {torch.__version__}"
    )
    text = "\n".join(lines)
    print(text)
    print(f"machine: {machine}")
    root = _root(args, name)
    root.mkdir(parents=True, exist_ok=True)
    command = (
        "aae " + " ".join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "aae" else f"aae reproduce {name}"
    )
    (root / "results.md").write_text(
        f"# {name}\n\ncommand: `{command}`\n\nseeds: {args.seeds}\n\n{text}\n\nmachine: {machine}\n\n{notes}\n"
    )


def prior_match(args) -> None:
    """Figures 2-3 / the AAE-vs-VAE claim: how close q(z) of MNIST test codes comes to p(z), as MMD,
    for an AAE, a VAE and a plain autoencoder with the same networks, prior and epochs."""
    base = load_config(f"mnist_{args.prior}_aae", _overrides(args))
    variants = {"AAE": [], "VAE": VAE, "AE": ["model.objective='ae'"]}
    configs = {v: load_config(f"mnist_{args.prior}_aae", _overrides(args) + extra) for v, extra in variants.items()}
    runs = Runs(args, f"prior-match-{args.prior}")
    results = runs.get(configs)
    rows = []
    for v, rs in results.items():
        rows.append(
            [
                v,
                _stat([r.metrics["test_mmd"] for r in rs]),
                _stat([r.metrics["test_reconstruction"] for r in rs], digits=2),
                str(base.train.epochs),
                f"{np.mean([r.seconds for r in rs]):.0f}",
            ]
        )
    _write_table(
        args,
        f"prior-match-{args.prior}",
        ["model", "MMD(test codes, prior)", "test reconstruction (nats)", "epochs", "seconds/run"],
        rows,
        notes="Paper (Figures 2-3): the AAE's codes match the prior closely; the VAE's leave gaps and bunch up. "
        "The paper reports no number; MMD (sum of RBF kernels at fixed bandwidths 0.1-5) is ours. Lower is closer.",
        missing=runs.missing,
    )


def label_modes(args) -> None:
    """Figures 4-5: with 10k of 50k labels given to the discriminator, the fraction of MNIST test
    images whose code lies in its own class's part of the prior (goal >= 95 %)."""
    name = f"label-modes-{args.prior}"
    runs = Runs(args, name)
    results = runs.get({"AAE": load_config(f"mnist_{args.prior}_labels", _overrides(args))})
    rows = [
        [
            v,
            _stat([r.metrics["test_mode_accuracy"] for r in rs], 100, 2, " %"),
            str(rs[0].epochs),
            f"{np.mean([r.seconds for r in rs]):.0f}",
        ]
        for v, rs in results.items()
    ]
    _write_table(
        args,
        name,
        ["model", "test codes in own class's part", "epochs", "seconds/run"],
        rows,
        notes="Paper (Figures 4-5) shows the codes on their class's mode; it gives no number. Goal: >= 95 %.",
        missing=runs.missing,
    )


def supervised(args) -> None:
    """Figures 6-7: decode random style codes under each label and let an independent CNN read them;
    also restyle test images under every label."""
    from ..metrics import classification_error
    from .judge import cached_classifier

    name, judge = "supervised", {}

    def measure(res: Result) -> dict:
        splits, model = res.splits, res.model
        if not judge:  # one CNN, trained on the training images, reads every run's images
            path = _root(args, name) / "classifier.safetensors"
            judge["cnn"] = cnn = cached_classifier(splits.train, path, progress=not args.no_progress)
            judge["accuracy"] = 1 - classification_error(splits.test.y, cnn.predict(splits.test.x))
        cnn = judge["cnn"]
        torch.manual_seed(0)
        labels = torch.arange(10).repeat(1000)
        images = model.generate(len(labels), labels=labels).cpu().numpy()
        x = torch.as_tensor(splits.test.x[:1000])
        restyled = model.restyle(x).reshape(-1, x.shape[1]).cpu().numpy()
        return {
            "judge_test_accuracy": judge["accuracy"],
            "generated_accuracy": 1 - classification_error(labels.numpy(), cnn.predict(images)),
            "restyled_accuracy": 1 - classification_error(np.tile(np.arange(10), len(x)), cnn.predict(restyled)),
        }

    runs = Runs(args, name)
    how = {"judge": "ConvClassifier on the training images", "generated": 10000, "restyled": 1000}
    rs = runs.get({"AAE": load_config("mnist_supervised", _overrides(args))}, measure=measure, how=how).get("AAE", [])
    col = lambda key: _stat([r.metrics[key] for r in rs], 100, 2, " %") if rs else "-"
    rows = [
        ["independent CNN on real test images", col("judge_test_accuracy"), "(>= 98 %)"],
        ["generated: random style, each label (10 x 1000)", col("generated_accuracy"), "goal >= 97 %"],
        ["restyled: 1000 test images x 10 labels", col("restyled_accuracy"), ""],
    ]
    _write_table(
        args,
        name,
        ["what the CNN reads", "accuracy (read as the given label)", "target"],
        rows,
        notes="Paper (Figures 6-7) shows style/content grids; it gives no number. The CNN is trained here on the "
        "50k training images and is independent of the AAE. Each run's figures are in its measured.json.",
        missing=runs.missing,
    )


def _models(args, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    chosen = getattr(args, "models", None) or allowed
    picked = {m: MODELS[m] for m in allowed if m in chosen}
    if not picked:
        raise ConfigError(f"--models {' '.join(chosen)}: this experiment has only {', '.join(allowed)}")
    return picked


PAPER_SEMI = {"100": 1.90, "1000": 1.60, "all": 0.85}


def semi_supervised(args) -> None:
    """Table 2 (MNIST): test error of argmax q(y|x) for each label budget, beside the paper's and beside
    the NN baseline (the same encoder trained as a plain classifier on the labeled images only)."""
    rows, runs = [], Runs(args, "semi-supervised")
    for budget in args.labels:
        configs = {
            v: load_config(f"mnist_semi_{budget}", _overrides(args) + extra)
            for v, extra in _models(args, ("AAE", "AAE-paper", "NN", "NN+VAT")).items()
        }
        results = runs.get(configs, sub=f"labels-{budget}", draws=True)
        for v, rs in results.items():
            rows.append(
                [
                    budget,
                    v,
                    _stat([r.metrics["test_error"] for r in rs], 100, 2, " %"),
                    f"{PAPER_SEMI[budget]:.2f} %" if not v.startswith("NN") else "",
                    _epochs(rs),
                    f"{np.mean([r.seconds for r in rs]) / 60:.0f}",
                ]
            )
    _write_table(
        args,
        "semi-supervised",
        ["labels", "model", "test error", "paper", "epochs (selected)", "minutes/run"],
        rows,
        notes="Paper: Table 2 (MNIST 100 / 1000 / all labels: 1.90 / 1.60 / 0.85 %). AAE: the bundled config; "
        "AAE-paper: the same without virtual adversarial training, weight averaging, shifted images and "
        "test-time shifts (the paper's method). NN: the encoder alone, trained with the classification "
        "phase only, on the same labeled images (shifted like the AAE's where the config shifts, and "
        "measured the same way). Where the config sets eval.tta_shift = k, q(y|x) is the mean over the "
        "shifts of each image by up to k pixels. NN+VAT: the same plus "
        "the bundled config's virtual adversarial training on "
        "the unlabeled images, so the AAE's own share of the gain shows. "
        "Each run's result is the epoch (in brackets) with the lowest error on the 10k labeled validation "
        "images, which are not the test images. Each seed draws its own labeled subset and validation "
        "split (data.label_seed = the seed, or --label-seeds), so the ± covers the draw as well as training.",
        missing=runs.missing,
    )


PAPER_CLUSTER = {16: 9.55, 30: 4.10}


def _measured(rs: list[Result], key: str) -> bool:
    """Whether every run's record has ``key`` (records older than a metric lack it)."""
    return all(key in r.metrics for r in rs)


def _sizes(rs: list[Result]) -> str:
    """Each run's smallest and largest test cluster, as multiples of the equal share."""
    if not _measured(rs, "test_smallest_cluster"):
        return ""
    return ", ".join(f"{r.metrics['test_smallest_cluster']:.2f}-{r.metrics['test_largest_cluster']:.2f}" for r in rs)


def clustering(args) -> None:
    """Table 3: unsupervised clustering of MNIST into 16 and 30 clusters; error by the paper's protocol
    (each cluster takes the label of its most confident validation image), plus Hungarian accuracy and NMI."""
    from ..metrics import balanced_cluster_floor

    rows, test_labels, runs = [], None, Runs(args, "clustering")
    for m in getattr(args, "clusters", None) or (16, 30):
        configs = {
            v: load_config(f"mnist_cluster_{m}", _overrides(args) + extra)
            for v, extra in _models(args, ("AAE", "AAE-paper", "IMSAT")).items()
        }
        test_labels = test_labels if test_labels is not None else prepare_data(next(iter(configs.values()))).test.y
        floor = f"{100 * balanced_cluster_floor(test_labels, m):.2f} %"
        for v, rs in runs.get(configs, sub=f"clusters-{m}").items():
            rows.append(
                [
                    str(m),
                    v,
                    _stat([r.metrics["test_cluster_error"] for r in rs], 100, 2, " %"),
                    f"{PAPER_CLUSTER[m]:.2f} %",
                    floor,
                    _stat([r.metrics["test_cluster_error_majority"] for r in rs], 100, 2, " %")
                    if _measured(rs, "test_cluster_error_majority")
                    else "",
                    _stat([r.metrics["test_hungarian_accuracy"] for r in rs], 100, 2, " %"),
                    _stat([r.metrics["test_nmi"] for r in rs], 1, 3),
                    _sizes(rs),
                    str(rs[0].epochs),
                    f"{np.mean([r.seconds for r in rs]) / 60:.0f}",
                ]
            )
    _write_table(
        args,
        "clustering",
        [
            "clusters",
            "model",
            "test error (paper protocol)",
            "paper",
            "equal-cluster floor",
            "test error (validation majority)",
            "Hungarian accuracy",
            "NMI",
            "cluster sizes",
            "epochs",
            "minutes/run",
        ],
        rows,
        notes="Paper: Table 3 (16 clusters 9.55 %, 30 clusters 4.10 %). Equal-cluster floor: the least error of m "
        "clusters of equal size on these test labels, which a q(y) matching the uniform prior Cat(m) exactly "
        "cannot beat. Validation majority (not the paper's): each cluster takes the most common label of "
        "the validation images assigned to it, so one atypical image cannot mislabel a whole cluster. "
        "Cluster sizes: the smallest and largest test cluster of each run, as multiples of the equal "
        "share 10000 / m. Hungarian accuracy matches clusters to classes one to one, so with more "
        "clusters than classes it counts the extra clusters as wrong.",
        missing=runs.missing,
    )


class _Umap:
    """UMAP's map of the training images to n dimensions (umap-learn, seeded), unsupervised and given the
    labels a run had (y = -1 where unlabeled), each scored by the 1-NN error of the maps; the fits are
    shared between the variants that see the same images and labels. None where umap-learn is absent."""

    def __init__(self):
        try:
            import umap
        except ImportError:
            umap = None
        self.umap, self.errors = umap, {}

    def error(self, splits, n: int, labels: bool) -> float | None:
        from ..metrics import one_nn_error

        train = splits.train
        if self.umap is None or (labels and not (train.y >= 0).any()):
            return None
        key = (n, train.x.shape, hash(train.y.tobytes()) if labels else None)
        if key not in self.errors:
            fit = self.umap.UMAP(n_components=n, random_state=0).fit(train.x, train.y if labels else None)
            self.errors[key] = one_nn_error(
                fit.transform(splits.valid.x), splits.valid.y, fit.transform(splits.test.x), splits.test.y
            )
        return self.errors[key]


def dim_reduction(args) -> None:
    """Figure 11: MNIST mapped to r = W_C y + z; the semi-supervised test error, and the error of a
    1-nearest-neighbour classifier on the map, beside PCA and UMAP to the same dimension computed in the
    same run (UMAP unsupervised and given the same labels)."""
    from sklearn.decomposition import PCA

    from ..metrics import one_nn_error

    rows, runs, umap = [], Runs(args, "dim-reduction"), _Umap()
    pct = lambda e: "-" if e is None else f"{100 * e:.2f} %"
    for variant in getattr(args, "maps", None) or MAPS:
        cfg = load_config(f"mnist_dimred_{variant}", _overrides(args))
        rs = runs.get({"AAE": cfg}, sub=variant)["AAE"]
        splits = prepare_data(cfg, not args.no_progress)
        n = cfg.model.z_dim
        pca = PCA(n_components=n).fit(splits.train.x)
        pca_err = one_nn_error(
            pca.transform(splits.valid.x), splits.valid.y, pca.transform(splits.test.x), splits.test.y
        )
        err = [r.metrics.get("test_error", r.metrics.get("test_cluster_error")) for r in rs]
        rows.append(
            [
                variant,
                str(n),
                _stat(err, 100, 2, " %") if None not in err else "-",
                _stat([r.metrics["test_map_1nn_error"] for r in rs], 100, 2, " %"),
                pct(pca_err),
                pct(umap.error(splits, n, labels=False)),
                pct(umap.error(splits, n, labels=True)),
                _epochs(rs),
                f"{np.mean([r.seconds for r in rs]) / 60:.0f}",
            ]
        )
    absent = (
        "" if umap.umap else " umap-learn is not installed, so the UMAP columns are empty (pip install umap-learn)."
    )
    if absent:
        print(absent.strip())
    _write_table(
        args,
        "dim-reduction",
        [
            "variant",
            "dims",
            "test error q(y|x)",
            "1-NN error on the map",
            "1-NN error on PCA",
            "on UMAP",
            "on UMAP with the labels",
            "epochs (selected)",
            "minutes/run",
        ],
        rows,
        notes="Paper: Figure 11 (maps only; no number). Test error q(y|x): for the unsupervised map, the cluster "
        "error by the paper's protocol (Table 3). 1-NN: the 10k validation images, with their labels, "
        "classify the test images by their nearest neighbour in the map (or in PCA or UMAP to as many "
        "dimensions, fitted on the training images; UMAP with the labels is given the run's labeled "
        "training images' labels, -1 for the others). The maps are each run's figures/map.png." + absent,
        missing=runs.missing,
    )


PAPER_PARZEN = "340 ± 2"
PARZEN_SIGMAS = tuple(np.logspace(-1.5, -0.5, 21))
"""the Parzen widths tried on the validation images (0.03-0.3; MNIST's best are near 0.2)"""


def _parzen(samples: np.ndarray, splits, n: int) -> tuple[float, float, float]:
    """Width chosen on the validation images, then the test images' mean log-likelihood and its standard error."""
    from ..metrics import parzen_log_likelihood, select_parzen_sigma

    sigma = select_parzen_sigma(samples, splits.valid.x[:n], PARZEN_SIGMAS)
    return (sigma, *parzen_log_likelihood(samples, splits.test.x[:n], sigma))


def likelihood(args) -> None:
    """Table 1 (MNIST): log-likelihood of the 10k test images under a Gaussian Parzen window on 10k
    images the model generates, the width chosen on the validation images; beside the VAE with the
    same networks and the same window on 10k real training images (what perfect samples score)."""
    n = args.samples
    variants = {"AAE": [], "VAE": VAE}
    configs = {
        v: load_config("mnist_likelihood", _overrides(args) + extra)
        for v, extra in variants.items()
        if v in (getattr(args, "models", None) or variants)
    }
    if not configs:
        raise ConfigError("--models: this experiment has AAE and VAE")

    def measure(res: Result) -> dict:
        torch.manual_seed(0)
        sigma, ll, se = _parzen(res.model.generate(n).cpu().numpy(), res.splits, n)
        return {"parzen_sigma": float(sigma), "test_parzen_log_likelihood": float(ll), "test_parzen_se": float(se)}

    runs = Runs(args, "likelihood")
    how = {"samples": n, "sigmas": [round(float(x), 6) for x in PARZEN_SIGMAS]}
    rows = []
    for v, rs in runs.get(configs, measure=measure, how=how).items():
        ll = [r.metrics["test_parzen_log_likelihood"] for r in rs]
        shown = _stat(ll, digits=1) if len(ll) > 1 else f"{ll[0]:.1f} ± {rs[0].metrics['test_parzen_se']:.1f} (s.e.)"
        rows.append(
            [
                v,
                shown,
                PAPER_PARZEN if v == "AAE" else "",
                ", ".join(f"{r.metrics['parzen_sigma']:.3f}" for r in rs),
                str(rs[0].epochs),
                f"{np.mean([r.seconds for r in rs]) / 60:.0f}",
            ]
        )
    splits = prepare_data(next(iter(configs.values())), not args.no_progress)
    sigma, ll, se = _parzen(splits.train.x[:n], splits, n)
    rows.append([f"{n} real training images", f"{ll:.1f} ± {se:.1f} (s.e.)", "", f"{sigma:.3f}", "", ""])
    _write_table(
        args,
        "likelihood",
        ["samples from", "test log-likelihood (nats)", "paper", "Parzen width", "epochs", "minutes/run"],
        rows,
        notes=f"Paper: Table 1, MNIST, {PAPER_PARZEN} nats for the AAE with 10k samples (GAN 225 ± 2, GMMN+AE "
        "282 ± 2). The Parzen estimate (Breuleux et al. 2011) is the paper's protocol, and a poor measure "
        "of a model: real training images, perfect samples by definition, score less than many models "
        "(Theis et al. 2016). Samples are the decoder's pixel means at prior draws, as in the paper. "
        "The width is chosen among 21 values in 0.03-0.3 on the validation images.",
        missing=runs.missing,
    )


EXPERIMENTS: dict[str, Callable] = {
    "likelihood": likelihood,
    "clustering": clustering,
    "dim-reduction": dim_reduction,
    "semi-supervised": semi_supervised,
    "prior-match": prior_match,
    "label-modes": label_modes,
    "supervised": supervised,
}
