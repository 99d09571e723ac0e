"""Each estimator beside the scikit-learn tool a person would pick for the same job, with default
parameters (only ``random_state``, and the number of clusters or classes where the job gives it), on
scikit-learn's bundled and generated data sets; one thread, CPU seconds (``time.process_time``).

    PYTHONPATH=src python benchmarks/estimators.py [--seed 0] [--jobs cluster,semi,map,recon,sample] [--out FILE]

The data sets are of two kinds, named in every table: **dev** sets, on which the estimators' defaults
were chosen, and **held-out** sets, which played no part in choosing them. The jobs:

- cluster: ARI against the classes; ClusteringAAE(n_clusters=k) beside GaussianMixture(k) and
  KMeans(k) on the standardized features, and HDBSCAN (which picks its own number of clusters).
- semi: accuracy on the unlabeled rows with 5 % and 10 % of the labels (at least two a class);
  SemiSupervisedAAE beside LabelSpreading(kernel="knn") and LogisticRegression on the labeled rows.
- map: 1-NN accuracy of a held-out 2-D map (70/30 stratified split); DimReductionAAE beside PCA
  (and UMAP where umap-learn is importable).
- recon: the variance of the standardized features that a 2-D code's reconstruction leaves
  unexplained; AAE and VAE beside PCA(2).
- sample: how many of 1000 class-conditional samples a 15-NN classifier fitted on the data reads as
  the class asked for; SupervisedAAE.sample(n, y) beside a GaussianMixture fitted to each class.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn import datasets as D
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading

from aae import AAE, VAE, ClusteringAAE, DimReductionAAE, SemiSupervisedAAE, SupervisedAAE
from aae.training.devices import cpu_model

try:
    import umap
except ImportError:
    umap = None


def labeled_sets(seed: int):
    """(name, role, X, y): data sets with classes."""
    yield "moons", "dev", *D.make_moons(1000, noise=0.05, random_state=1)
    yield "blobs 8x10-D", "dev", *D.make_blobs(1200, n_features=10, centers=8, random_state=1)
    yield "wine", "dev", *D.load_wine(return_X_y=True)
    yield (
        "classification 20-D",
        "dev",
        *D.make_classification(1000, n_features=20, n_informative=5, n_classes=3, random_state=1),
    )
    yield "circles", "held-out", *D.make_circles(1000, noise=0.05, factor=0.5, random_state=seed)
    yield "iris", "held-out", *D.load_iris(return_X_y=True)
    yield "breast cancer", "held-out", *D.load_breast_cancer(return_X_y=True)
    yield "digits", "held-out", *D.load_digits(return_X_y=True)
    yield "classification 50-D", "held-out", *D.make_classification(1000, n_features=50, random_state=seed)
    yield "blobs 8x30-D", "held-out", *D.make_blobs(1500, n_features=30, centers=8, random_state=seed)
    yield "gaussian quantiles", "held-out", *D.make_gaussian_quantiles(n_samples=1000, n_classes=3, random_state=seed)


def table_sets(seed: int):
    """(name, role, X): data sets for reconstruction."""
    yield "swiss roll", "dev", D.make_swiss_roll(1000, noise=0.1, random_state=1)[0]
    yield "wine", "dev", D.load_wine(return_X_y=True)[0]
    yield "s-curve", "held-out", D.make_s_curve(1000, noise=0.1, random_state=seed)[0]
    yield "diabetes", "held-out", D.load_diabetes(return_X_y=True)[0]
    yield "linnerud", "held-out", np.hstack(D.load_linnerud(return_X_y=True))
    yield "breast cancer", "held-out", D.load_breast_cancer(return_X_y=True)[0]
    yield "digits", "held-out", D.load_digits(return_X_y=True)[0]


def cpu(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def some_labels(y, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keep = rng.random(len(y)) < fraction
    for c in np.unique(y):
        keep[rng.choice(np.flatnonzero(y == c), 2, replace=False)] = True
    return np.where(keep, y, -1)


def cluster(seed: int):
    yield "| data | set | ClusteringAAE | GMM | KMeans | HDBSCAN | AAE CPU s |"
    yield "|---|---|---|---|---|---|---|"
    for name, role, x, y in labeled_sets(seed):
        k, xs = len(np.unique(y)), StandardScaler().fit_transform(x)
        labels, secs = cpu(lambda: ClusteringAAE(n_clusters=k, random_state=seed).fit_predict(x))
        gmm = GaussianMixture(k, random_state=seed).fit_predict(xs)
        km = KMeans(k, n_init=10, random_state=seed).fit_predict(xs)
        hd = HDBSCAN(copy=True).fit_predict(xs)
        ari = [adjusted_rand_score(y, v) for v in (labels, gmm, km, hd)]
        yield f"| {name} | {role} | " + " | ".join(f"{a:.3f}" for a in ari) + f" | {secs:.1f} |"


def semi(seed: int):
    yield "| data | set | labels | SemiSupervisedAAE | LabelSpreading | LogisticRegression | AAE CPU s |"
    yield "|---|---|---|---|---|---|---|"
    for name, role, x, y in labeled_sets(seed):
        xs = StandardScaler().fit_transform(x)
        for fraction in (0.05, 0.1):
            ys = some_labels(y, fraction, seed)
            hidden = ys == -1
            clf, secs = cpu(lambda: SemiSupervisedAAE(random_state=seed).fit(x, ys))
            aae = (clf.predict(x)[hidden] == y[hidden]).mean()
            ls = (LabelSpreading(kernel="knn").fit(xs, ys).transduction_[hidden] == y[hidden]).mean()
            lr = LogisticRegression(max_iter=1000).fit(xs[~hidden], ys[~hidden]).score(xs[hidden], y[hidden])
            yield f"| {name} | {role} | {fraction:.0%} | {aae:.3f} | {ls:.3f} | {lr:.3f} | {secs:.1f} |"


def one_nn(reducer, x, y, seed: int) -> float:
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(xtr)
    etr = reducer.fit_transform(scaler.transform(xtr))
    return KNeighborsClassifier(1).fit(etr, ytr).score(reducer.transform(scaler.transform(xte)), yte)


def maps(seed: int):
    yield "| data | set | DimReductionAAE | PCA | UMAP | AAE CPU s |"
    yield "|---|---|---|---|---|---|"
    # every AAE first: UMAP's numba threads, once started, would count in this process's CPU time
    rows = []
    for name, role, x, y in labeled_sets(seed):
        acc, secs = cpu(lambda: one_nn(DimReductionAAE(n_components=2, random_state=seed), x, y, seed))
        rows.append((name, role, x, y, acc, secs, one_nn(PCA(2, random_state=seed), x, y, seed)))
    for name, role, x, y, acc, secs, pca in rows:
        um = f"{one_nn(umap.UMAP(n_components=2, random_state=seed), x, y, seed):.3f}" if umap else "n/a"
        yield f"| {name} | {role} | {acc:.3f} | {pca:.3f} | {um} | {secs:.1f} |"


def unexplained(x: np.ndarray, back: np.ndarray) -> float:
    scaler = StandardScaler().fit(x)
    a, b = scaler.transform(x), scaler.transform(back)
    return float(((a - b) ** 2).sum() / (a**2).sum())


def recon(seed: int):
    yield "| data | set | n x d | AAE | VAE | PCA | AAE CPU s | VAE CPU s |"
    yield "|---|---|---|---|---|---|---|---|"
    for name, role, x in table_sets(seed):
        n_components = min(2, x.shape[1])
        out, secs = [], []
        for cls in (AAE, VAE):
            est, s = cpu(lambda: cls(n_components=n_components, random_state=seed).fit(x))
            out.append(unexplained(x, est.inverse_transform(est.transform(x))))
            secs.append(s)
        scaler = StandardScaler().fit(x)
        pca = PCA(n_components).fit(scaler.transform(x))
        out.append(unexplained(x, scaler.inverse_transform(pca.inverse_transform(pca.transform(scaler.transform(x))))))
        cells = " | ".join(f"{v:.3f}" for v in out)
        yield f"| {name} | {role} | {x.shape[0]} x {x.shape[1]} | {cells} | {secs[0]:.1f} | {secs[1]:.1f} |"


def class_gmm_sample(x, y, asked, seed: int) -> np.ndarray:
    out = np.empty((len(asked), x.shape[1]))
    for c in np.unique(y):
        rows = x[y == c]
        gmm = GaussianMixture(min(5, len(rows) // 10 or 1), random_state=seed).fit(rows)
        where = np.flatnonzero(asked == c)
        if where.size:
            out[where] = gmm.sample(where.size)[0][np.random.default_rng(seed).permutation(where.size)]
    return out


def sample(seed: int):
    yield "| data | set | SupervisedAAE | GMM per class | AAE CPU s |"
    yield "|---|---|---|---|---|"
    for name, role, x, y in labeled_sets(seed):
        asked = np.resize(np.unique(y), 1000)
        est, secs = cpu(lambda: SupervisedAAE(random_state=seed).fit(x, y))
        knn = KNeighborsClassifier(15).fit(StandardScaler().fit(x).transform(x), y)
        scaler = StandardScaler().fit(x)
        aae = (knn.predict(scaler.transform(est.sample(1000, y=asked, random_state=seed)[0])) == asked).mean()
        gmm = (knn.predict(scaler.transform(class_gmm_sample(x, y, asked, seed))) == asked).mean()
        yield f"| {name} | {role} | {aae:.3f} | {gmm:.3f} | {secs:.1f} |"


JOBS = {
    "cluster": ("Clusters: ARI against the classes", cluster),
    "semi": ("Semi-supervised: accuracy on the unlabeled rows", semi),
    "map": ("2-D maps: 1-NN accuracy on a held-out 30 %", maps),
    "recon": ("Reconstruction through a 2-D code: unexplained variance (lower is better)", recon),
    "sample": ("Class-conditional samples read as their class by a 15-NN classifier", sample),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--out", type=Path, help="append the tables, as markdown, to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.process_time()
    lines = [f"CPU: {cpu_model()}, 1 torch thread, torch {torch.__version__}; seed {args.seed}", ""]
    print(lines[0], flush=True)
    for job in args.jobs.split(","):
        title, rows = JOBS[job]
        lines += [f"## {title}", ""]
        print(f"\n## {title}\n", flush=True)
        for row in rows(args.seed):
            print(row, flush=True)
            lines.append(row)
        lines.append("")
    lines.append(f"{(time.process_time() - start) / 60:.1f} CPU minutes in all.")
    print(lines[-1])
    if args.out:
        with args.out.open("a") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
