"""Default fits of the estimators on scikit-learn's small data sets: time per fit, the 1-NN accuracy of
DimReductionAAE's held-out 2-D map beside PCA's (and UMAP's, if umap-learn is importable), and
ClusteringAAE's ARI beside KMeans's (n_init=10, on the raw and the standardized features), all in one
run.

    PYTHONPATH=src python benchmarks/estimators.py [--seed 0] [--out docs/results/estimators.md]

Every estimator is fitted with no parameter but ``random_state`` (and ``n_components=2`` for the
map, ``n_clusters`` = the number of classes for the clusters), so the figures are those of the
defaults a user gets. The map: a stratified 70/30 split, the reducer fitted on the training part, a
1-NN classifier fitted on the training embedding and scored on the embedding of the held-out part.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from aae import AAE, VAE, ClusteringAAE, DimReductionAAE, SemiSupervisedAAE, SupervisedAAE

try:
    import umap
except ImportError:
    umap = None


def datasets():
    """(name, X, y, scaled): raw features and, for those not already in one unit, after StandardScaler."""
    for name, load in (
        ("wine", load_wine),
        ("iris", load_iris),
        ("breast_cancer", load_breast_cancer),
        ("digits", load_digits),
    ):
        x, y = load(return_X_y=True)
        yield name, x, y, False
        if name != "digits":
            yield name + " (scaled)", x, y, True


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def one_nn(reducer, x, y, scaled: bool, seed: int) -> float:
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    pipe = make_pipeline(StandardScaler(), reducer) if scaled else reducer
    etr = pipe.fit_transform(xtr)
    return KNeighborsClassifier(1).fit(etr, ytr).score(pipe.transform(xte), yte)


def fit_times(x, y, scaled: bool, seed: int) -> dict[str, float]:
    x = StandardScaler().fit_transform(x) if scaled else x
    y_some = y.copy()
    y_some[np.random.default_rng(seed).random(len(y)) < 0.5] = -1  # half the labels
    out = {}
    for cls, labels in (
        (AAE, None),
        (VAE, None),
        (SupervisedAAE, y),
        (SemiSupervisedAAE, y_some),
        (ClusteringAAE, None),
        (DimReductionAAE, None),
    ):
        out[cls.__name__] = timed(lambda: cls(random_state=seed).fit(x, labels))[1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the tables as markdown here too")
    args = parser.parse_args()
    seed, start = args.seed, time.perf_counter()
    lines = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    names = ["AAE", "VAE", "SupervisedAAE", "SemiSupervisedAAE", "ClusteringAAE", "DimReductionAAE"]
    say("## Seconds per default fit (all rows; SemiSupervisedAAE with half the labels)")
    say()
    say("| data | n x d | " + " | ".join(names) + " |")
    say("|---|---|" + "---|" * len(names))
    for name, x, y, scaled in datasets():
        t = fit_times(x, y, scaled, seed)
        say(f"| {name} | {x.shape[0]} x {x.shape[1]} | " + " | ".join(f"{t[k]:.1f}" for k in names) + " |")
    say()
    say("## 1-NN accuracy of the held-out 2-D map (70/30 stratified split)")
    say()
    say("| data | DimReductionAAE | PCA | UMAP | AAE fit s |")
    say("|---|---|---|---|---|")
    for name, x, y, scaled in datasets():
        (acc, secs) = timed(lambda: one_nn(DimReductionAAE(n_components=2, random_state=seed), x, y, scaled, seed))
        pca = one_nn(PCA(2, random_state=seed), x, y, scaled, seed)
        um = f"{one_nn(umap.UMAP(n_components=2, random_state=seed), x, y, scaled, seed):.3f}" if umap else "n/a"
        say(f"| {name} | {acc:.3f} | {pca:.3f} | {um} | {secs:.1f} |")
    say()
    say("## Clusters: ARI against the classes (n_clusters = number of classes, all rows)")
    say()
    say("| data | ClusteringAAE | KMeans raw | KMeans scaled | AAE fit s |")
    say("|---|---|---|---|---|")
    for name, load in (("digits", load_digits), ("iris", load_iris), ("wine", load_wine)):
        x, y = load(return_X_y=True)
        k = len(np.unique(y))
        labels, secs = timed(lambda: ClusteringAAE(n_clusters=k, random_state=seed).fit_predict(x))
        km = [
            adjusted_rand_score(y, KMeans(k, n_init=10, random_state=seed).fit_predict(v))
            for v in (x, StandardScaler().fit_transform(x))
        ]
        say(f"| {name} | {adjusted_rand_score(y, labels):.3f} | {km[0]:.3f} | {km[1]:.3f} | {secs:.1f} |")
    minutes = (time.perf_counter() - start) / 60
    cpu = subprocess.run("lscpu | grep 'Model name'", shell=True, capture_output=True, text=True).stdout.strip()
    say()
    say(
        f"Machine: {cpu.split(':', 1)[-1].strip() or platform.processor()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}; seed {seed}; {minutes:.1f} minutes in all."
    )
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
