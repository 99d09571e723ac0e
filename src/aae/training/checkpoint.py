"""Run directories and checkpoints: safetensors for tensors, JSON for the rest; no pickle, and
nothing named in a file is ever imported.

A run directory holds ``checkpoint.safetensors`` (weights, optimizer state, RNG state, with the
config, epoch and history as JSON in its metadata, and a SHA-256 of all of it that loading
verifies), ``config.json``, ``metrics.jsonl`` and ``figures/``. Files are written atomically and
never through a link (:mod:`aae.files`): to a temporary name, flushed, then renamed, so a run
killed mid-write leaves the previous checkpoint whole. A training holds an exclusive lock on its
run directory (:class:`aae.training.resume.RunLock`). What of a trainer a checkpoint keeps is
:meth:`aae.training.trainer.Trainer.state_dict`, laid out in the file by :func:`save_state` and
read back by :func:`training_state`; the run directory it lives in is :mod:`aae.training.resume`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .._version import __version__
from ..config.checks import check_model_size
from ..config.load import from_dict
from ..config.schema import ExperimentConfig
from ..errors import AAEError, CheckpointError
from ..files import atomic_write
from .devices import rng_state

FORMAT = "aae-checkpoint/1"
CHECKPOINT = "checkpoint.safetensors"
LOCK = ".lock"
ESTIMATOR, FIT = "estimator", "fit"
"""an estimator's checkpoint's metadata: what of the estimator it keeps beside the model (JSON, and
its scaling and range as the tensors ``estimator/mean``, ``/scale``, ``/data_min``,
``/data_max``), and the fingerprint of the fit (its data and parameters) that a
``checkpoint_dir`` continues only for the same"""


def _split_optimizer(prefix: str, state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for idx, per_param in state["state"].items():
        meta["state"][str(idx)] = {}
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                meta["state"][str(idx)][key] = value
    return tensors, meta


def _join_optimizer(prefix: str, meta: dict, tensors: dict[str, torch.Tensor]) -> dict:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, value in tensors.items():
        if name.startswith(prefix + "/"):
            idx, key = name[len(prefix) + 1 :].split("/", 1)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _storable(tensors: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    config: ExperimentConfig,
    x_dim: int,
    epoch: int,
    history: list[dict],
    optimizers: dict | None = None,
    rng: bool = True,
    raw: torch.nn.Module | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Save everything needed to rebuild the model. ``model`` is what :func:`load` gives; ``raw``, if
    training runs on other weights than those, is what training continues from; ``optimizers``
    (by parameter group) and the random state (``rng``) are kept to resume training exactly;
    ``extra`` and ``metadata`` as :func:`save_state` takes them."""
    state = {
        "epoch": epoch,
        "history": history,
        "model": model.state_dict(),
        "raw": None if raw is None else raw.state_dict(),
        "optimizers": {group: opt.state_dict() for group, opt in (optimizers or {}).items()},
        "rng": rng_state() if rng else None,
    }
    image_shape, metadata = getattr(model, "image_shape", None), {**columns_meta(model), **(metadata or {})}
    save_state(path, state, config=config, x_dim=x_dim, image_shape=image_shape, extra=extra, metadata=metadata)


def save_state(
    path: str | os.PathLike,
    state: dict,
    *,
    config: ExperimentConfig,
    x_dim: int,
    image_shape: tuple[int, ...] | None = None,
    extra: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Save a training state as :meth:`aae.training.trainer.Trainer.state_dict` gives it (the
    entries but ``model``, ``epoch`` and ``history`` may be missing or None), with the config, the
    data's width and image shape that rebuild its model. Tensors are named by part: ``model/``,
    ``raw/``, ``average/``, ``ema/steps``, ``selected/``, ``optim/<group>/`` and ``rng/``; ``extra``
    are more tensors by name and ``metadata`` more JSON strings by name, kept beside them (an
    estimator's, :data:`ESTIMATOR` and :data:`FIT`, and a mixed table's :func:`columns_meta`)."""
    tensors = _storable(state["model"], "model/")
    if state.get("raw") is not None:
        tensors.update(_storable(state["raw"], "raw/"))
    tensors.update(_storable(extra or {}))
    if state.get("ema_steps") is not None:
        tensors.update(_storable({"ema/steps": state["ema_steps"]}))
    if state.get("average") is not None:
        tensors.update(_storable(state["average"], "average/"))
    if state.get("selected") is not None:
        tensors["selected/epoch"] = torch.tensor(state["selected"]["epoch"])
        tensors["selected/value"] = torch.tensor(state["selected"]["value"], dtype=torch.float64)
    optim_meta = {}
    for group, opt_state in (state.get("optimizers") or {}).items():
        t, optim_meta[group] = _split_optimizer(f"optim/{group}", opt_state)
        tensors.update(t)
    if state.get("rng") is not None:
        tensors["rng/torch"] = state["rng"]["torch"]
        tensors.update({f"rng/cuda/{i}": s for i, s in enumerate(state["rng"]["cuda"])})
    meta = {
        **(metadata or {}),
        "format": FORMAT,
        "aae_version": __version__,
        "config": config.to_json(),
        "x_dim": str(x_dim),
        "image_shape": json.dumps(list(image_shape or [])),
        "epoch": str(state["epoch"]),
        "history": json.dumps(state["history"]),
        "optimizers": json.dumps(optim_meta),
    }
    # the tensors' bytes do not depend on the metadata: serialize once to hash them, then with the hash
    data = st_save(tensors, metadata=meta)
    meta["sha256"] = _digest(data, meta)
    atomic_write(path, st_save(tensors, metadata=meta))


def training_state(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict:
    """A checkpoint's training state, in the form :func:`save_state` took it."""

    def part(prefix: str) -> dict[str, torch.Tensor] | None:
        return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")} or None

    selected = None
    if "selected/epoch" in tensors:
        selected = {"epoch": int(tensors["selected/epoch"]), "value": float(tensors["selected/value"])}
    optim_meta = json.loads(meta["optimizers"])
    cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith("rng/cuda/"))]
    return {
        "epoch": int(meta["epoch"]),
        "history": json.loads(meta["history"]),
        "model": part("model"),
        "raw": part("raw"),
        "average": part("average"),
        "ema_steps": tensors.get("ema/steps"),
        "selected": selected,
        "optimizers": {g: _join_optimizer(f"optim/{g}", m, tensors) for g, m in optim_meta.items()},
        "rng": {"torch": tensors["rng/torch"], "cuda": cuda} if "rng/torch" in tensors else None,
    }


def _digest(data: bytes, meta: dict[str, str]) -> str:
    """SHA-256 of a serialized checkpoint's tensor bytes and of its metadata (but the hash itself)."""
    header = 8 + int.from_bytes(data[:8], "little")
    digest = hashlib.sha256(data[header:])
    digest.update(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a checkpoint, or a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first (aae train --out DIR), then pass that DIR")
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError, RecursionError) as exc:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({_first_line(exc)}); move it away to train this run afresh"
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an aae checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("sha256") != _digest(data, meta):
        raise CheckpointError(
            f"{path} does not match its own SHA-256: the file was altered or damaged; move it away "
            f"to train this run afresh"
        )
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise CheckpointError(f"{path} holds NaN or infinite values in {bad!r}; it cannot be used")
    return tensors, meta


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def config_of(
    meta: dict[str, str], path: str | os.PathLike = "checkpoint", prior: Callable | None = None
) -> ExperimentConfig:
    """The config a checkpoint was trained with. A run trained with a prior function records only
    its name; the function itself must be passed (``prior``), never imported from the file."""
    try:
        table = json.loads(meta["config"])
        named = (table.get("model") or {}).get("prior") or {}
        if isinstance(named, dict) and named.get("name") == "callable":
            if prior is None:
                raise CheckpointError(
                    f"{path} was trained with the prior function {named.get('fn', '?')!r}; aae "
                    f"never imports code named in a file: pass it, aae.load(path, prior=fn)"
                )
            table["model"]["prior"] = {"name": "gaussian"}  # the function passed replaces it
        return from_dict(table, strict=False)
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: its config is unreadable ({exc}); train again") from None


def restore(
    model: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    *,
    path: str | os.PathLike = "checkpoint",
    prefix: str = "model",
) -> None:
    """Load the weights saved under ``prefix`` (``model``: the ones to use; ``raw``: the ones to train on)."""
    try:
        load_weights(model, {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")})
    except CheckpointError as exc:
        raise CheckpointError(f"{path} {exc}") from None


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(weights)``, a mismatch one line: "does not fit this model's shapes: ..."."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise CheckpointError(f"does not fit this model's shapes: {first}") from None


def image_shape_of_meta(meta: dict[str, str]) -> tuple[int, ...] | None:
    """The (height, width, channels) a checkpoint's model was built for; None for flat data and for
    checkpoints of versions that did not record it."""
    shape = json.loads(meta.get("image_shape") or "[]")
    return tuple(int(s) for s in shape) or None


def columns_meta(model) -> dict[str, str]:
    """A model's likelihood per column (an estimator's mixed table) as metadata; none for the rest."""
    columns = getattr(model, "columns", None)
    return {} if columns is None else {"columns": json.dumps(columns.to_dict())}


def columns_of_meta(meta: dict[str, str]):
    """The likelihood per column a checkpoint's model was trained with, or None."""
    from ..model.likelihood import ColumnLikelihood

    if "columns" not in meta:
        return None
    table = json.loads(meta["columns"])
    if int(table["d"]) != int(meta["x_dim"]) or table["base"] not in ("bernoulli", "gaussian"):
        raise ValueError(f"columns {table['d']} {table['base']!r} of a model of {meta['x_dim']} features")
    return ColumnLikelihood(int(table["d"]), table["base"], table["bernoulli"], table["groups"])


def load(path: str | os.PathLike, device: str | torch.device = "cpu", prior: Callable | None = None):
    """Load a trained model from a run directory or checkpoint file. Nothing is unpickled and
    nothing named in the file is imported: a run trained with a prior function of its own needs that
    function passed as ``prior``.

    >>> model = aae.load("runs/demo")            # doctest: +SKIP
    >>> images = model.generate(16)              # doctest: +SKIP
    """
    from ..model.autoencoder import build_model

    tensors, meta = read_checkpoint(path)
    config = config_of(meta, path, prior)
    try:
        check_model_size(config.model, int(meta["x_dim"]))
        model = build_model(config.model, int(meta["x_dim"]), prior=prior, image_shape=image_shape_of_meta(meta))
        model.columns = columns_of_meta(meta)
    except (AAEError, KeyError, TypeError, ValueError, IndexError, RecursionError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model: {exc}") from None
    restore(model, tensors, path=path)
    return model.to(device).eval()


def what_must_match(config: dict) -> dict:
    """The parts of a config a resumed run must share with its checkpoint: what a resume could not
    apply (the model, the data, the optimizer's kind, the seed, the early-stopping metric), not
    where data lives. A key that a later version added takes its default, so older checkpoints
    still resume."""
    config = from_dict(config, strict=False).to_dict()
    data = {k: v for k, v in config["data"].items() if k not in ("data_dir", "download")}
    train = {k: config["train"][k] for k in ("optimizer", "seed", "select_by")}
    return {"model": config["model"], "data": data, "train": train}
