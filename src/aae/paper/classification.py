"""The classification results: semi-supervised error (Table 2), unsupervised clustering (Table 3) and
the dimensionality-reduction maps (Figure 11), each beside its baselines."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..config.load import load_config
from ..experiment import Result, prepare_data
from ..files import atomic_write
from ..model.losses import Y_TERM_WEIGHTS
from .runs import Headline, Runs, all_runs, chosen, epochs_kept, overrides, stat, table_dir, write_table

NO_Y_TERMS = [f"model.{key}=0" for key in Y_TERM_WEIGHTS]
"""every term of the y head beyond the paper off: VAT, the invariance term, IMSAT's two"""
PAPER_RECIPE = [
    *NO_Y_TERMS,
    "model.vat_knn=0",
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
    "model.y_invariance_weight=0",
    "model.vat_knn=10",
    "model.vat_eps=0.25",
    "model.encoder_batch_norm=true",
    "model.hidden=[1200, 1200]",
    "train.epochs=50",
    "train.lr_milestones=[]",
    "train.lr.generator=0.002",
    "train.batch_size=250",
    "eval.tta_shift=0",
]
"""IMSAT's published recipe (Hu et al. 2017, MNIST): VAT at a radius of 0.25 times each image's
distance to its 10th neighbour, lambda = 0.1 and mu = 4 on the mutual information, a 1200-1200
encoder with batch norm, Adam at 0.002 on batches of 250 for 50 epochs, each image measured alone;
no decoder, no discriminator"""
NN = ["model.objective='classifier'", *NO_Y_TERMS]
"""the paper's NN baseline: the encoder's q(y|x) alone, trained on the labeled images only"""
MODELS = {"AAE": [], "AAE-paper": PAPER_RECIPE, "NN": NN, "NN+VAT": ["model.objective='classifier'"], "IMSAT": IMSAT}
MAPS = ("1000", "100", "unsup20", "10d")
"""the dimensionality-reduction variants, each a bundled config mnist_dimred_<variant>"""


def _models(args, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    return chosen(args, {m: MODELS[m] for m in allowed})


PAPER_SEMI = {"100": 1.90, "1000": 1.60, "all": 0.85}


def semi_supervised(args) -> list[Headline]:
    """Table 2 (MNIST): test error of argmax q(y|x) for each label budget, beside the paper's and beside
    the NN baseline (the same encoder trained as a plain classifier on the labeled images only)."""
    rows, runs, heads = [], Runs(args, "semi-supervised"), []
    for budget in args.labels:
        configs = {
            v: load_config(f"mnist_semi_{budget}", overrides(args) + extra)
            for v, extra in _models(args, ("AAE", "AAE-paper", "NN", "NN+VAT")).items()
        }
        results = runs.get(configs, sub=f"labels-{budget}", draws=True)
        err = {v: stat([r.metrics["test_error"] for r in rs], 100, 2, " %") for v, rs in results.items()}
        what = f"Table 2: test error, {budget} labels, AAE (NN baseline)"
        ours = f"{err.get('AAE', '-')} ({err.get('NN', '-')})"
        heads.append(Headline(what, ours, f"{PAPER_SEMI[budget]:.2f} %", all_runs(results)))
        for v, rs in results.items():
            rows.append(
                [
                    budget,
                    v,
                    stat([r.metrics["test_error"] for r in rs], 100, 2, " %"),
                    f"{PAPER_SEMI[budget]:.2f} %" if not v.startswith("NN") else "",
                    epochs_kept(rs),
                    f"{np.mean([r.seconds for r in rs]) / 60:.0f}",
                ]
            )
    path = write_table(
        args,
        "semi-supervised",
        ["labels", "model", "test error", "paper", "epochs (selected)", "minutes/run"],
        rows,
        notes="Paper: Table 2 (MNIST 100 / 1000 / all labels: 1.90 / 1.60 / 0.85 %). AAE: the bundled config; "
        "AAE-paper: the same without virtual adversarial training, the invariance of q(y|x) to small "
        "rotations and shifts (100 labels), weight averaging, shifted images and test-time shifts (the "
        "paper's method). NN: the encoder alone, trained with the classification "
        "phase only, on the same labeled images (shifted like the AAE's where the config shifts, and "
        "measured the same way). Where the config sets eval.tta_shift = k, q(y|x) is the mean over the "
        "shifts of each image by up to k pixels. NN+VAT: the same plus "
        "the bundled config's terms on the unlabeled images (virtual adversarial training and, at 100 "
        "labels, the invariance term), so the AAE's own share of the gain shows. "
        "Each run's result is the epoch (in brackets) with the lowest error on the 10k labeled validation "
        "images, which are not the test images. Each seed draws its own labeled subset and validation "
        "split (data.label_seed = the seed, or --label-seeds), so the ± covers the draw as well as training.",
        runs=runs,
    )
    for h in heads:
        h.table = path
    return heads


PAPER_CLUSTER = {16: 9.55, 30: 4.10}


def _measured(rs: list[Result], key: str) -> bool:
    """Whether every run's record has ``key`` (records older than a metric lack it)."""
    return all(key in r.metrics for r in rs)


def _sizes(rs: list[Result]) -> str:
    """Each run's smallest and largest test cluster, as multiples of the equal share."""
    if not _measured(rs, "test_smallest_cluster"):
        return ""
    return ", ".join(f"{r.metrics['test_smallest_cluster']:.2f}-{r.metrics['test_largest_cluster']:.2f}" for r in rs)


def clustering(args) -> list[Headline]:
    """Table 3: unsupervised clustering of MNIST into 16 and 30 clusters; error by the paper's protocol
    (each cluster takes the label of its most confident validation image), plus Hungarian accuracy and NMI."""
    from ..evaluation.metrics import balanced_cluster_floor

    rows, test_labels, runs, heads = [], None, Runs(args, "clustering"), []
    for m in getattr(args, "clusters", None) or (16, 30):
        configs = {
            v: load_config(f"mnist_cluster_{m}", overrides(args) + extra)
            for v, extra in _models(args, ("AAE", "AAE-paper", "IMSAT")).items()
        }
        test_labels = test_labels if test_labels is not None else prepare_data(next(iter(configs.values()))).test.y
        floor = f"{100 * balanced_cluster_floor(test_labels, m):.2f} %"
        results = runs.get(configs, sub=f"clusters-{m}")
        err = {v: stat([r.metrics["test_cluster_error"] for r in rs], 100, 2, " %") for v, rs in results.items()}
        what = f"Table 3: test error, {m} clusters, by the paper's protocol, AAE (IMSAT)"
        ours = f"{err.get('AAE', '-')} ({err.get('IMSAT', '-')})"
        heads.append(Headline(what, ours, f"{PAPER_CLUSTER[m]:.2f} %", all_runs(results)))
        for v, rs in results.items():
            rows.append(
                [
                    str(m),
                    v,
                    err[v],
                    f"{PAPER_CLUSTER[m]:.2f} %",
                    floor,
                    stat([r.metrics["test_cluster_error_majority"] for r in rs], 100, 2, " %")
                    if _measured(rs, "test_cluster_error_majority")
                    else "",
                    stat([r.metrics["test_hungarian_accuracy"] for r in rs], 100, 2, " %"),
                    stat([r.metrics["test_nmi"] for r in rs], 1, 3),
                    _sizes(rs),
                    str(rs[0].epochs),
                    f"{np.mean([r.seconds for r in rs]) / 60:.0f}",
                ]
            )
    path = write_table(
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
        runs=runs,
    )
    for h in heads:
        h.table = path
    return heads


class _Umap:
    """UMAP's map of the training images to n dimensions (umap-learn, seeded), unsupervised and given the
    labels a run had (y = -1 where unlabeled), each scored by the 1-NN error of the maps. A fit serves every
    variant that sees the same images and labels; its error is kept in ``umap.json`` (``save``) and read back
    from there, keyed by the data's digest, so a table printed again does not fit again. None where
    umap-learn is absent."""

    FILE = "umap.json"

    def __init__(self, read_from: list[Path] = ()):
        try:
            import umap
        except ImportError:
            umap = None
        self.umap, self.errors = umap, {}
        for where in read_from:
            if (where / self.FILE).exists():
                self.errors = {**json.loads((where / self.FILE).read_text()), **self.errors}

    def error(self, splits, n: int, labels: bool) -> float | None:
        from ..evaluation.metrics import one_nn_error

        train = splits.train
        if self.umap is None or (labels and not (train.y >= 0).any()):
            return None
        digest = hashlib.sha256()
        for part in (train.x, splits.valid.x, splits.valid.y, splits.test.x, splits.test.y):
            digest.update(np.ascontiguousarray(part).tobytes())
        if labels:
            digest.update(np.ascontiguousarray(train.y).tobytes())
        key = f"umap-learn {self.umap.__version__}, {n}-D, random_state 0, data {digest.hexdigest()[:16]}"
        if key not in self.errors:
            fit = self.umap.UMAP(n_components=n, random_state=0).fit(train.x, train.y if labels else None)
            self.errors[key] = one_nn_error(
                fit.transform(splits.valid.x), splits.valid.y, fit.transform(splits.test.x), splits.test.y
            )
        return self.errors[key]

    def save(self, where: Path) -> None:
        if self.errors:
            atomic_write(where / self.FILE, json.dumps(self.errors, indent=1, sort_keys=True) + "\n")


def dim_reduction(args) -> list[Headline]:
    """Figure 11: MNIST mapped to r = W_C y + z; the semi-supervised test error, and the error of a
    1-nearest-neighbour classifier on the map, beside PCA and UMAP to the same dimension computed in the
    same run (UMAP unsupervised and given the same labels)."""
    from sklearn.decomposition import PCA

    from ..evaluation.metrics import one_nn_error

    kept = [Path(args.records) / "dim-reduction"] if args.records and not args.retrain else []
    rows, runs, umap, heads = [], Runs(args, "dim-reduction"), _Umap([*kept, table_dir(args, "dim-reduction")]), []
    pct = lambda e: "-" if e is None else f"{100 * e:.2f} %"
    for variant in getattr(args, "maps", None) or MAPS:
        cfg = load_config(f"mnist_dimred_{variant}", overrides(args))
        rs = runs.get({"AAE": cfg}, sub=variant).get("AAE")
        if not rs:
            continue
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
                stat(err, 100, 2, " %") if None not in err else "-",
                stat([r.metrics["test_map_1nn_error"] for r in rs], 100, 2, " %"),
                pct(pca_err),
                pct(umap.error(splits, n, labels=False)),
                pct(labeled := umap.error(splits, n, labels=True)),
                epochs_kept(rs),
                f"{np.mean([r.seconds for r in rs]) / 60:.0f}",
            ]
        )
        if variant in ("1000", "100"):
            what = f"Figure 11: 1-NN error on the 2-D map, {variant} labels (UMAP given the labels)"
            heads.append(Headline(what, f"{rows[-1][3]} ({pct(labeled)})", "maps only, no number", rs))
    absent = (
        "" if umap.umap else " umap-learn is not installed, so the UMAP columns are empty (pip install umap-learn)."
    )
    if absent:
        print(absent.strip())
    umap.save(table_dir(args, "dim-reduction"))
    path = write_table(
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
        runs=runs,
    )
    for h in heads:
        h.table = path
    return heads
