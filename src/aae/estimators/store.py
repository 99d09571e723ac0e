"""A fitted estimator saved and loaded without pickle, on the same files as a run: the model in
``checkpoint.safetensors`` (whose SHA-256 loading verifies), with what the estimator keeps beside it
(its parameters, its scaling, its classes) as JSON in the checkpoint's metadata and as tensors, and
``config.json``: what ``transform``, ``predict``, ``sample`` and ``inverse_transform`` read (the
scaling and range of each column, the kinds of the columns, the image shape, the classes). Loading
reads tensors and JSON only: it imports nothing named in the files and runs no code of theirs.
``aae.load`` and ``aae sample`` read the same folder (``aae sample`` in the units of the data the
estimator was fitted on).

>>> est.save("models/wine")                      # doctest: +SKIP
>>> est = aae.load_estimator("models/wine")      # doctest: +SKIP

The fingerprint of a fit (:func:`fit_stamp`) is what a ``checkpoint_dir`` continues a fit for:
the training data (its shape, dtype and a SHA-256 of its bytes, and the labels) and every
parameter of the estimator but the number of epochs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config.checks import check_model_size
from ..config.schema import ExperimentConfig
from ..errors import CheckpointError, PathError
from ..files import atomic_write, check_writable, refuse_links
from ..model.priors import Prior, describe
from ..training.checkpoint import CHECKPOINT, ESTIMATOR, FIT, config_of, read_checkpoint, restore, save_checkpoint
from ..training.resume import RUN_FILES
from . import columns

FORMAT = "aae-estimator/1"
"""the estimators a saved one may be: a name in a file picks one of these, and nothing else"""


# -- what of an estimator is kept ------------------------------------------------------------------
def _plain(name: str, value: Any) -> Any:
    """A parameter's value as JSON: numbers, strings, lists and tables of them."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not np.isfinite(value):
            raise ValueError(f"cannot save {name} = {value!r}: not a finite number")
        return value
    if isinstance(value, (os.PathLike, torch.device)):
        return str(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(name, v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(f"{name}[{k!r}]", v) for k, v in value.items()}
    raise ValueError(f"cannot save {name} = {value!r}: only numbers, strings, lists and tables are kept")


def _parameters(est) -> dict[str, Any]:
    """The estimator's parameters as JSON; a prior object or function by its name only (it must be
    passed again to load), a RandomState as None (its state is not kept)."""
    out = {}
    for name, value in est.get_params(deep=False).items():
        if name == "prior" and (isinstance(value, Prior) or callable(value)):
            out[name] = {"name": "callable", "fn": describe(value)["fn"]}
        elif name == "random_state" and isinstance(value, np.random.RandomState):
            out[name] = None
        else:
            out[name] = _plain(name, value)
    return out


def _array(values: np.ndarray) -> dict[str, Any]:
    return {"dtype": values.dtype.str, "values": _plain("classes_", values.tolist())}


def _from_array(table: dict, path) -> np.ndarray:
    try:
        dtype = np.dtype(str(table["dtype"]))
        if dtype.kind not in "biufUO":
            raise TypeError(f"dtype {dtype}")
        return np.asarray(table["values"], dtype=dtype)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its classes are unreadable ({exc}); save the estimator again") from None


SCALING = ("mean_", "scale_", "data_min_", "data_max_")
"""each column's standardization and range in fit, kept as float64 tensors ``estimator/<name>``"""


def kept(est, fitted: bool = True) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """What of ``est`` a checkpoint keeps beside its model, as metadata (JSON strings) and tensors:
    while it fits (``fitted`` False: its parameters, scaling, columns' kinds, image shape and
    classes) or once fitted (also the transform of its training data and, clustering, the training
    points' clusters)."""
    info: dict[str, Any] = {
        "format": FORMAT,
        "class": type(est).__name__,
        "params": _parameters(est),
        "tuples": sorted(k for k, v in est.get_params(deep=False).items() if isinstance(v, tuple)),
        "output": est.output_,
        "dtype": np.dtype(est._dtype).name,
        "n_features_in": int(est.n_features_in_),
        "image_shape": None if est.image_shape_ is None else [int(s) for s in est.image_shape_],
        "column_types": _plain("column_types_", est.column_types_),
    }
    if hasattr(est, "feature_names_in_"):
        info["feature_names_in"] = [str(f) for f in est.feature_names_in_]
    if hasattr(est, "classes_"):
        info["classes"] = _array(np.asarray(est.classes_))
    tensors = {
        f"estimator/{name[:-1]}": torch.from_numpy(np.asarray(getattr(est, name), np.float64).copy())
        for name in SCALING
    }
    if fitted:
        tensors["estimator/embedding"] = torch.from_numpy(np.ascontiguousarray(est.embedding_))
        if hasattr(est, "labels_"):
            tensors["estimator/labels"] = torch.from_numpy(np.ascontiguousarray(est.labels_))
    return {ESTIMATOR: json.dumps(info, sort_keys=True)}, tensors


def fit_stamp(est, x: np.ndarray, labels: np.ndarray | None, cfg: ExperimentConfig) -> dict:
    """What a fit with ``checkpoint_dir`` keeps in each checkpoint beside the model (:func:`kept`),
    with the fingerprint of the fit: the training data (shape, dtype, SHA-256 of its bytes), its labels
    as the estimator codes them with the classes they name, and the estimator's parameters (its class,
    its decoder's likelihood with the kinds of its columns, its image shape, and its whole config but
    ``train.epochs``, which a later fit may raise)."""
    digest = hashlib.sha256()
    x = np.ascontiguousarray(x)
    parts = {"shape": list(x.shape), "dtype": x.dtype.str, "class": type(est).__name__, "output": est.output_}
    parts["image_shape"], parts["column_types"] = est.image_shape_, est.column_types_  # the model's likelihood
    config = cfg.to_dict()
    config["train"].pop("epochs")
    config["data"] = {k: v for k, v in config["data"].items() if k not in ("data_dir", "download")}
    parts["config"] = config
    if labels is not None:
        parts["classes"] = _array(np.asarray(est.classes_)) if hasattr(est, "classes_") else None
    digest.update(json.dumps(parts, sort_keys=True, default=str).encode())
    digest.update(x.tobytes())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    meta, tensors = kept(est, fitted=False)
    return {"meta": {**meta, FIT: digest.hexdigest()}, "tensors": tensors}


# -- save and load ---------------------------------------------------------------------------------
def save(est, path: str | os.PathLike) -> Path:
    """Write the fitted ``est`` to the folder ``path`` (see the module's docstring): refused where the
    folder holds anything but an earlier save or run of an estimator's."""
    path = Path(path)
    check_writable(path, "the estimator's folder")
    if path.exists():
        if not path.is_dir():
            raise PathError(f"{path} is a file; give a folder to save the estimator in")
        other = sorted(p.name for p in path.iterdir() if p.name not in RUN_FILES)
        if other:
            raise PathError(
                f"{path} holds files the estimator did not write ({', '.join(other[:3])}); give an empty or new folder"
            )
        for name in RUN_FILES:
            refuse_links(path / name)
        if (path / CHECKPOINT).exists() and ESTIMATOR not in read_checkpoint(path)[1]:
            raise PathError(
                f"{path} holds a checkpoint that is no estimator's (an aae train run?); give an empty or new folder"
            )
    meta, tensors = kept(est)
    model = est.model_
    save_checkpoint(
        path / CHECKPOINT,
        model=model,
        config=est.config_,
        x_dim=model.x_dim,
        epoch=len(est.history_),
        history=est.history_,
        rng=False,
        extra=tensors,
        metadata=meta,
    )
    atomic_write(path / "config.json", est.config_.to_json())
    return path


def load(path: str | os.PathLike, kinds: dict[str, type], prior=None, device: str | torch.device = "cpu"):
    """A fitted estimator from the folder ``est.save`` wrote (or an estimator's ``checkpoint_dir``,
    whose model is the last epoch's): its class (one of ``kinds``, by name), parameters, model,
    scaling and classes. Nothing is unpickled and nothing named in the files imported; an estimator
    fitted with a prior function needs that function passed as ``prior``."""
    from ..model.autoencoder import build_model

    tensors, meta = read_checkpoint(path)
    try:
        info = json.loads(meta[ESTIMATOR])
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise ValueError(f"format {info.get('format') if isinstance(info, dict) else info!r}")
    except KeyError:
        raise CheckpointError(
            f"{path} is a run, not a saved estimator; load its model with aae.load({str(path)!r})"
        ) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: its estimator is unreadable ({exc}); save it again") from None
    name = info.get("class")
    if name not in kinds:
        raise CheckpointError(f"{path} names the estimator {name!r}; aae has only {', '.join(kinds)}")
    cls = kinds[name]
    params = info.get("params") or {}
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise CheckpointError(f"{path}: {name} has no parameter {unknown[0]!r}; save the estimator again")
    saved_prior = params.get("prior")
    if isinstance(saved_prior, dict) and saved_prior.get("name") == "callable":
        if prior is None:
            raise CheckpointError(
                f"{path} was fitted with the prior function {saved_prior.get('fn', '?')!r}; aae never imports "
                f"code named in a file: pass it, aae.load_estimator(path, prior=fn)"
            )
        params["prior"] = prior
    for name in info.get("tuples") or []:  # as given: JSON keeps a tuple as a list
        if isinstance(params.get(name), list):
            params[name] = tuple(params[name])
    est = cls(**params)
    cfg = config_of(meta, path, prior)
    try:
        dtype = np.dtype(str(info["dtype"]))
        if dtype not in (np.float32, np.float64) or info["output"] not in ("bernoulli", "gaussian"):
            raise ValueError(f"dtype {dtype}, output {info['output']!r}")
        n_features = int(info["n_features_in"])
        shape = info["image_shape"]
        image_shape = None if shape is None else tuple(int(s) for s in shape)
        if image_shape is not None and (len(image_shape) not in (2, 3) or math.prod(image_shape) != n_features):
            raise ValueError(f"image shape {image_shape} for {n_features} features")
        types = columns.declared(info["column_types"], n_features)
        scaling = {name: tensors[f"estimator/{name[:-1]}"].double().numpy() for name in SCALING}
        if any(v.shape != (n_features,) for v in scaling.values()):
            raise ValueError(f"scaling of {n_features} features, shapes {[tuple(v.shape) for v in scaling.values()]}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{path}: its estimator is unreadable ({exc}); save it again") from None
    try:
        check_model_size(cfg.model, int(meta["x_dim"]))
        model = build_model(cfg.model, int(meta["x_dim"]), prior=prior, image_shape=image_shape)
        model.columns = columns.likelihood(types, info["output"], n_features)
    except Exception as exc:  # a config that loads but does not build: one line naming the file
        raise CheckpointError(f"{path}: cannot rebuild the model: {exc}") from None
    restore(model, tensors, path=path)
    est.model_ = model.to(device).eval()
    est.config_ = cfg
    est._set_history(json.loads(meta["history"]))
    est.output_, est._dtype = info["output"], dtype
    est.image_shape_, est.column_types_ = image_shape, types
    est.n_features_in_, est._n_features_out = n_features, cfg.model.z_dim
    for name, values in scaling.items():
        setattr(est, name, values)
    if "feature_names_in" in info:
        est.feature_names_in_ = np.asarray(info["feature_names_in"], dtype=object)
    if "classes" in info:
        est.classes_ = _from_array(info["classes"], path)
    if "estimator/embedding" in tensors:
        est.embedding_ = tensors["estimator/embedding"].numpy()
    if "estimator/labels" in tensors:
        est.labels_ = tensors["estimator/labels"].numpy()
    return est


def data_units(tensors: dict[str, torch.Tensor], meta: dict[str, str], path: str | os.PathLike = "the checkpoint"):
    """For an estimator's checkpoint, the map from the model's output back to the units of the data
    it was fitted on, each column holding values of its kind (0/1, one-hot, whole numbers in fit's
    range), as the estimator's ``sample`` gives; None for any other checkpoint."""
    if ESTIMATOR not in meta or "estimator/mean" not in tensors or "estimator/scale" not in tensors:
        return None
    mean, scale = tensors["estimator/mean"].double().numpy(), tensors["estimator/scale"].double().numpy()
    bounds = [tensors.get(f"estimator/data_{end}") for end in ("min", "max")]
    try:
        types = columns.declared(json.loads(meta[ESTIMATOR]).get("column_types") or {}, len(mean))
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: its estimator's column kinds are unreadable ({exc}); save it again") from None

    def units(out):
        out = out.astype("float64") * scale + mean
        if None in bounds:
            return out
        return columns.valid_values(out, types, *(b.double().numpy() for b in bounds))

    return units
