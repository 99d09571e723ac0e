"""Data: arrays and splits, the named sets and the user's files, and image augmentation."""

from .sets import load
from .splits import Dataset, Splits

__all__ = ["Dataset", "Splits", "load"]
