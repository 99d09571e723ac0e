"""What the estimators read and give back: X checked by scikit-learn (a table, sparse or dense, or
an image array flattened inside), scaled for the network, the decoder's output back in X's units
and shape, and labels coded 0..k-1 (-1 for an unlabeled point).

:class:`DataIO` is a mixin of :class:`aae.estimators.base.Estimator`: it reads the estimator's
``output``, ``column_types`` and ``_labels`` and learns, in ``fit``, ``image_shape_``,
``output_``, ``column_types_``, ``mean_``, ``scale_``, ``data_min_``, ``data_max_`` and
``classes_``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy import sparse
from sklearn.utils._set_output import ADAPTERS_MANAGER, _get_output_config
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import _check_feature_names_in, validate_data

from ..errors import DataError
from ..model.autoencoder import n_categories
from . import columns

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


def _images(X):
    """(X flattened to (n, h * w * c), the image shape) for an image array (n, h, w) or (n, h, w, c);
    (X, None) for anything else, which scikit-learn's checks then read."""
    if sparse.issparse(X) or hasattr(X, "columns") or hasattr(X, "iloc"):
        return X, None
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError):
        return X, None
    if arr.ndim not in (3, 4):
        return X, None
    return arr.reshape(len(arr), -1), tuple(int(s) for s in arr.shape[1:])


class DataIO:
    """X checked and scaled for the network and back, labels coded and decoded."""

    # -- X ----------------------------------------------------------------------------------
    def _check_X(self, X, y=None, *, reset: bool = False):
        """X as a float32/float64 array (n, features), sparse or dense (other dtypes as float64),
        with the fit's features; ``reset`` (fit) learns the features and image shape; with ``y``,
        (X, y)."""
        X, shape = _images(X)
        if reset:
            self.image_shape_ = shape
        elif shape is not None and shape != getattr(self, "image_shape_", None):
            expected = self.image_shape_ or "tables (n, features)"
            raise DataError(f"X holds images of shape {shape}; this estimator was fitted on {expected}")
        kwargs = {"dtype": FLOATS, "accept_sparse": "csr", "reset": reset}
        kwargs["ensure_min_samples"] = 2 if reset else 1
        if y is not None:
            return validate_data(self, X, y, y_numeric=False, **kwargs)
        return validate_data(self, X, **kwargs)

    def _fit_scaling(self, x: np.ndarray) -> None:
        """Learn what the network reads from the dense training data: the output likelihood, the
        columns' kinds and each column's standardization."""
        lo, hi = float(x.min()), float(x.max())
        in_unit = lo >= -UNIT_TOLERANCE and hi <= 1 + UNIT_TOLERANCE
        output = self.output if self.output != "auto" else ("bernoulli" if in_unit else "gaussian")
        if output == "bernoulli" and not in_unit:
            raise DataError(
                f"output='bernoulli' needs X in [0, 1], but X has values in [{lo:g}, {hi:g}]; "
                "use output='auto' or 'gaussian' (standardized inside), or rescale X"
            )
        self.output_, self._dtype = output, x.dtype
        self.column_types_ = columns.resolve(self.column_types, x, images=self.image_shape_ is not None)
        self.data_min_, self.data_max_ = x.min(0).astype(np.float64), x.max(0).astype(np.float64)
        self.mean_, self.scale_ = np.zeros(x.shape[1]), np.ones(x.shape[1])
        if output == "gaussian":
            std = x.std(0, dtype=np.float64)
            mean = x.mean(0, dtype=np.float64)
            kept = [c for c in self.column_types_["binary"]] + [c for g in self.column_types_["onehot"] for c in g]
            real = np.setdiff1d(np.arange(x.shape[1]), kept)  # binary and one-hot columns stay 0 and 1
            self.mean_[real] = mean[real]
            self.scale_[real] = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)[real]

    def _model_input(self, x) -> np.ndarray:
        """What the network reads, float32: x clipped into [0, 1] (Bernoulli) or standardized
        (Gaussian), a sparse x densified BLOCK rows at a time."""
        out = np.empty(x.shape, np.float32)
        for i in range(0, x.shape[0], 16 * BLOCK):
            block = x[i : i + 16 * BLOCK]
            block = block.toarray() if sparse.issparse(block) else block
            if self.output_ == "bernoulli":
                out[i : i + 16 * BLOCK] = np.clip(block, 0, 1)
            else:
                out[i : i + 16 * BLOCK] = (block - self.mean_) / self.scale_
        return out

    def _data_space(self, out: np.ndarray, dtype) -> np.ndarray:
        """Decoder output back in the units and shape of the training data, each column holding
        values of its kind (binary, one-hot, integer)."""
        out = out.astype(np.float64) * self.scale_ + self.mean_
        out = columns.valid_values(out, self.column_types_, self.data_min_, self.data_max_).astype(dtype, copy=False)
        return out.reshape(len(out), *self.image_shape_) if self.image_shape_ is not None else out

    def _features_out(self, out: np.ndarray):
        """Rows of X's features (``inverse_transform``, ``sample``) in the container ``set_output``
        asks for (tables only: image arrays stay arrays)."""
        dense = _get_output_config("transform", self)["dense"]
        if dense == "default" or out.ndim != 2:
            return out
        return ADAPTERS_MANAGER.adapters[dense].create_container(out, None, columns=_check_feature_names_in(self))

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
        k = n_categories(self.model_)
        if k is None:
            return None
        if hasattr(self, "classes_"):
            return len(self.classes_)
        return 1 if getattr(self, "n_clusters", None) == 1 else k  # one cluster: a head of two (the least)

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
