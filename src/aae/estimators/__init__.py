"""scikit-learn estimators, one per regime of the paper."""

from . import store
from .classes import AAE, VAE, ClusteringAAE, DimReductionAAE, SemiSupervisedAAE, SupervisedAAE

__all__ = ["AAE", "VAE", "SupervisedAAE", "SemiSupervisedAAE", "ClusteringAAE", "DimReductionAAE", "load_estimator"]


def load_estimator(path, prior=None, device="cpu"):
    """A fitted estimator read back from the folder ``est.save(path)`` wrote (or its
    ``checkpoint_dir``), without pickle: see :func:`aae.estimators.store.load`."""
    kinds = {cls.__name__: cls for cls in (AAE, VAE, SupervisedAAE, SemiSupervisedAAE, ClusteringAAE, DimReductionAAE)}
    return store.load(path, kinds, prior=prior, device=device)
