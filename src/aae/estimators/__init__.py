"""scikit-learn estimators, one per regime of the paper."""

from .classes import AAE, VAE, ClusteringAAE, DimReductionAAE, SemiSupervisedAAE, SupervisedAAE

__all__ = ["AAE", "VAE", "SupervisedAAE", "SemiSupervisedAAE", "ClusteringAAE", "DimReductionAAE"]
