"""What the estimators read and give back: X checked by scikit-learn and scaled for the network,
the decoder's output back in X's units, and labels coded 0..k-1 (-1 for an unlabeled point).

:class:`DataIO` is a mixin of :class:`aae.estimators.base.Estimator`: it reads the estimator's
``output`` and ``_labels`` (and, once fitted, ``model_``) and learns ``output_``, ``mean_``,
``scale_`` and ``classes_``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import validate_data

from ..errors import DataError
from ..model.autoencoder import n_categories

UNLABELED = -1
FLOATS = (np.float64, np.float32)
UNIT_TOLERANCE = 1e-6
"""how far outside [0, 1] data may lie and still be read as Bernoulli under output='auto'"""
BLOCK = 256


def by_blocks(fn, x: np.ndarray) -> np.ndarray:
    """``fn`` over blocks of exactly BLOCK rows (the last one zero-padded), so that a row's result does not
    depend on how many rows came with it (a matrix product's kernel, and so its float32 rounding, can
    change with the number of rows)."""
    out = []
    for i in range(0, len(x), BLOCK):
        block = x[i : i + BLOCK]
        padded = np.zeros((BLOCK, x.shape[1]), x.dtype)
        padded[: len(block)] = block
        out.append(fn(padded)[: len(block)])
    return np.concatenate(out)


def _unlabeled(y: np.ndarray) -> np.ndarray:
    """Where y marks an unlabeled point: the number -1, or the string '-1'."""
    if y.dtype.kind in "iuf":
        return y == UNLABELED
    if y.dtype.kind in "US":
        return np.char.strip(y.astype(str)) == "-1"
    return np.array(
        [
            (isinstance(v, numbers.Number) and not isinstance(v, bool) and v == UNLABELED)
            or (isinstance(v, str) and v.strip() == "-1")
            for v in y
        ],
        bool,
    )


class DataIO:
    """X checked and scaled for the network and back, labels coded and decoded."""

    # -- X ----------------------------------------------------------------------------------
    def _check_X(self, X, fitting: bool = False, y=None):
        """X (and y) checked by scikit-learn: a dense finite float32/float64 array (other dtypes as
        float64), with the fit's features; with ``fitting`` it learns what the model reads."""
        if fitting and y is not None:
            x, y = validate_data(self, X, y, dtype=FLOATS, ensure_min_samples=2, y_numeric=False)
        else:
            x = validate_data(self, X, reset=fitting, dtype=FLOATS, ensure_min_samples=2 if fitting else 1)
        if fitting:
            self._learn_scaling(x)
        return (x, y) if fitting else x

    def _learn_scaling(self, x: np.ndarray) -> None:
        lo, hi = float(x.min()), float(x.max())
        in_unit = lo >= -UNIT_TOLERANCE and hi <= 1 + UNIT_TOLERANCE
        output = self.output if self.output != "auto" else ("bernoulli" if in_unit else "gaussian")
        if output == "bernoulli" and not in_unit:
            raise DataError(
                f"output='bernoulli' needs X in [0, 1], but X has values in [{lo:g}, {hi:g}]; "
                "use output='auto' or 'gaussian' (standardized inside), or rescale X"
            )
        self.output_ = output
        if output == "gaussian":
            self.mean_ = x.mean(0, dtype=np.float64)
            scale = x.std(0, dtype=np.float64)
            self.scale_ = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(self.mean_)), scale, 1.0)
        else:
            self.__dict__.pop("mean_", None)
            self.__dict__.pop("scale_", None)
        self._dtype = x.dtype

    def _model_input(self, x: np.ndarray) -> np.ndarray:
        """What the network reads: x clipped into [0, 1] (Bernoulli) or standardized (Gaussian), float32."""
        if self.output_ == "bernoulli":
            return np.clip(x, 0, 1).astype(np.float32)
        return ((x - self.mean_) / self.scale_).astype(np.float32)

    def _data_space(self, out: np.ndarray, dtype) -> np.ndarray:
        """Decoder output back in the units of the training data."""
        if self.output_ == "gaussian":
            out = out.astype(np.float64) * self.scale_ + self.mean_
        return out.astype(dtype, copy=False)

    # -- y ----------------------------------------------------------------------------------
    def _encode_labels(self, y, n: int) -> np.ndarray | None:
        """Labels as 0..k-1 (-1 kept for unlabeled points), learning ``classes_``; None if y is None
        (forgetting the classes of an earlier fit)."""
        name = type(self).__name__
        if y is None:
            self.__dict__.pop("classes_", None)
            if self._labels in ("some", "all"):
                hint = "; -1 marks an unlabeled point" if self._labels == "some" else ""
                raise ValueError(
                    f"This {name} estimator requires y to be passed, but the target y is None "
                    f"(one label per row of X{hint})"
                )
            return None
        unlabeled = _unlabeled(y)
        if self._labels == "all" and unlabeled.any():
            raise DataError(
                f"{name} needs every label; {int(unlabeled.sum())} of {n} are -1, which marks an "
                "unlabeled point (use SemiSupervisedAAE for those, or recode a class named -1)"
            )
        if unlabeled.all():
            raise DataError("every label in y is -1 (unlabeled); label at least one point per class")
        known = y[~unlabeled]
        check_classification_targets(known)
        classes = unique_labels(known)
        if len(classes) == 1:
            why = (
                (
                    f"; -1 marks an unlabeled point, so the {int(unlabeled.sum())} rows labeled -1 are not a class: "
                    "recode the labels (e.g. to 0 and 1) if -1 is one"
                )
                if unlabeled.any()
                else ""
            )
            if self._labels == "some":
                raise DataError(f"y has only one class ({classes[0]!r}){why}; a classifier needs two or more")
            warnings.warn(f"y has only one class ({classes[0]!r}){why}", UserWarning, stacklevel=3)
        self.classes_ = classes
        out = np.full(n, UNLABELED, dtype=np.int64)
        out[~unlabeled] = np.searchsorted(classes, known)
        return out

    def _labels_out(self, k: np.ndarray) -> np.ndarray:
        return self.classes_[k] if hasattr(self, "classes_") else k

    def _n_categories(self) -> int | None:
        """How many categories sample() draws from (:func:`aae.model.autoencoder.n_categories`)."""
        return n_categories(self.model_)

    def _encode_given(self, y, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.shape != (n,):
            raise DataError(f"y has shape {y.shape}, expected ({n},)")
        if not hasattr(self, "classes_"):
            k = self._n_categories()
            if y.dtype.kind not in "iu" or (y < 0).any() or (y >= k).any():
                raise DataError(f"y must hold integers in 0..{k - 1}")
            return y.astype(np.int64)
        pos = np.searchsorted(self.classes_, y).clip(0, len(self.classes_) - 1)
        bad = np.flatnonzero(self.classes_[pos] != y)
        if bad.size:
            raise DataError(f"y[{bad[0]}] = {y[bad[0]]!r} is not a class seen in fit; classes: {list(self.classes_)}")
        return pos
