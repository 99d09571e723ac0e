"""Adversarial Autoencoders (Makhzani et al., arXiv:1511.05644) on PyTorch.

>>> import aae
>>> model = aae.load("runs/demo")        # doctest: +SKIP
>>> images = model.generate(16)          # doctest: +SKIP

scikit-learn-style estimators, one per regime of the paper (see :mod:`aae.estimators.classes`),
saved and loaded without pickle (loading runs no code from the files):

>>> clf = aae.SemiSupervisedAAE(n_components=10, epochs=30).fit(X, y)   # doctest: +SKIP
>>> clf.save("models/clf"); clf = aae.load_estimator("models/clf")       # doctest: +SKIP
"""

from ._version import __version__
from .model.autoencoder import AdversarialAutoencoder
from .training.checkpoint import load

ESTIMATORS = ("AAE", "VAE", "SupervisedAAE", "SemiSupervisedAAE", "ClusteringAAE", "DimReductionAAE")
__all__ = ["AdversarialAutoencoder", "load", "load_estimator", "__version__", *ESTIMATORS]


def __getattr__(name: str):
    # the estimators import scikit-learn's base classes: load them when first asked for, so that
    # the command line starts without them
    if name in ESTIMATORS:
        from . import estimators

        return getattr(estimators, name)
    if name == "load_estimator":
        from .estimators import load_estimator

        return load_estimator
    raise AttributeError(f"module 'aae' has no attribute {name!r}")
