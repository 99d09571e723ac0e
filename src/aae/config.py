"""Typed configs, read from plain TOML files with dotted overrides.

An experiment is four tables, ``[model]``, ``[train]``, ``[data]`` and ``[eval]``; every key
has a default (the paper's MNIST setting where the paper gives one), so a config file only
says what differs. Each key's documentation, allowed values and range live beside it (the
README's key table and ``aae train --help`` are generated from them), and every check, of one
key or across keys, runs when the config is loaded: a bad value is one line naming the key,
the value and what is allowed, before any data is read.

>>> cfg = load_config(None, overrides=["model.z_dim=8", "train.epochs=3"])
>>> cfg.model.z_dim, cfg.train.epochs
(8, 3)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .config_checks import check_range, check_type, key, validate
from .errors import ConfigError
from .regimes import REGIMES

CONFIG_DIR = Path(__file__).parent / "configs"
LR_PHASES = ("reconstruction", "discriminator", "generator", "classification")
Y_TERM_WEIGHTS = ("vat_weight", "y_invariance_weight", "y_marginal_weight", "y_entropy_weight")
"""the model keys weighting the y head's terms beyond the paper (VAT, invariance, IMSAT's two), each off at 0"""
"""the optimizers a model may have, one per phase that steps (the VAE's ELBO steps reconstruction's)"""


@dataclass
class ModelConfig:
    regime: str = key(
        "unsupervised",
        "where the label goes and which heads the code has (see the regime table)",
        choices=tuple(REGIMES),
    )
    objective: str = key(
        "aae",
        "aae: the adversarial autoencoder; vae: the ELBO on the same networks (needs the "
        "gaussian encoder); ae: no regularization; classifier: the encoder's q(y|x) alone, trained on "
        "the labels and the y head's terms below (the paper's NN baseline, NN+VAT, IMSAT)",
        choices=("aae", "vae", "ae", "classifier"),
    )
    encoder: str = key(
        "deterministic",
        "q(z|x): deterministic, gaussian (reparametrization) or universal (x plus noise)",
        choices=("deterministic", "gaussian", "universal"),
    )
    z_dim: int = key(2, "size of the style code z (the map's dimension n for dim_reduction)", low=1)
    n_classes: int = key(10, "classes, or the clusters m of the categorical head", low=2)
    hidden: list[int] = key(doc="encoder hidden layers; the decoder mirrors them", factory=lambda: [1000, 1000], low=1)
    disc_hidden: list[int] = key(doc="discriminator hidden layers", factory=lambda: [1000, 1000], low=1)
    noise_dim: int = key(100, "universal encoder: size of the N(0, I) noise read beside x", low=1)
    output: str = key(
        "bernoulli",
        "bernoulli (sigmoid, cross-entropy; data in [0, 1]) or gaussian (linear, squared error)",
        choices=("bernoulli", "gaussian"),
    )
    encoder_batch_norm: bool = key(False, "batch normalization before each ReLU of the encoder")
    dropout: float = key(
        0.0, "dropout after each hidden ReLU of every network, in training only (beyond the paper)", low=0, below=1
    )
    prior: dict[str, Any] = key(
        doc="p(z): a table with name = gaussian (std), mixture (n_modes, radius, radial_std, "
        "tangential_std), swiss_roll (n_parts, scale, turns, noise) or uniform (low, high); "
        "a function is passed as an object (name = callable records its name, never imported)",
        factory=lambda: {"name": "gaussian"},
    )
    label_to_discriminator: bool = key(
        False, "the z discriminator also reads the one-hot label (supervised: z then cannot carry the class)"
    )
    y_regularizer: str = key(
        "adversary",
        "y head: adversary (a discriminator matches q(y) to Cat, the paper) or "
        "imsat (no y discriminator; the decoder reads q(y|x) held fixed, and the two "
        "mutual-information weights below train it, as in IMSAT)",
        choices=("adversary", "imsat"),
    )
    vat_weight: float = key(
        0.0, "y head: weight of virtual adversarial training of q(y|x) on the unlabeled batch (beyond the paper)", low=0
    )
    vat_eps: float = key(
        2.0,
        "y head: VAT radius in input units (MNIST 2, 8x8 digits 0.3), or with vat_knn the "
        "factor of each image's k-th neighbour distance",
        above=0,
    )
    vat_knn: int = key(
        0,
        "k > 0: each image's VAT radius is vat_eps times its distance to its k-th nearest "
        "training image (IMSAT's rule)",
        low=0,
    )
    y_marginal_weight: float = key(0.0, "y head: weight of KL(batch mean of q(y|x) || Cat) (beyond the paper)", low=0)
    y_entropy_weight: float = key(
        0.0, "y head: weight of the mean entropy of q(y|x) (with the above: IMSAT's mutual information)", low=0
    )
    y_invariance_weight: float = key(
        0.0,
        "y head: weight of KL(q(y|x) || q(y|T(x))) on the unlabeled batch, T a random rotation of each "
        "image by up to 15 degrees and shift by up to 1/14 of its side (2 pixels on MNIST), so that "
        "q(y|x) ignores them (beyond the paper)",
        low=0,
    )
    eta: float = key(1.0, "dim_reduction: cluster heads closer than eta are penalized (Section 7)", low=0)
    head_penalty: float = key(1.0, "dim_reduction: weight of the cluster-head distance penalty", low=0)


@dataclass
class TrainConfig:
    epochs: int = key(50, "epochs", low=1)
    batch_size: int = key(100, "minibatch size (the classification phase's labeled minibatch too)", low=1)
    optimizer: str = key(
        "adam", "adam (betas 0.5, 0.999) or sgd (momentum 0.9, as in the paper)", choices=("adam", "sgd")
    )
    lr: dict[str, float] = key(
        doc="learning rate per phase: reconstruction, discriminator, generator, classification",
        factory=lambda: dict.fromkeys(LR_PHASES, 1e-3),
        above=0,
        high=10,
    )
    lr_milestones: list[int] = key(
        doc="epochs at which every learning rate is multiplied by lr_gamma", factory=list, low=1
    )
    lr_gamma: float = key(0.1, "learning-rate decay factor at each milestone", above=0, high=1)
    shift: int = key(
        0,
        "augmentation: each training image moves by a random whole number of pixels in [-shift, "
        "shift] along each axis, drawn anew each step (beyond the paper)",
        low=0,
    )
    ema: float = key(
        0.0,
        "decay of a moving average of the weights; when > 0 the average is what is measured "
        "and saved (0.999: ~1000 steps)",
        low=0,
        below=1,
    )
    select_by: str = key(
        "",
        "early stopping: the per-epoch metric (valid_error) whose lowest epoch is the result; empty keeps the last",
        choices=("", "valid_error"),
    )
    seed: int = key(0, "seeds torch: a CPU run repeats bit for bit with the same code, machine and thread count", low=0)
    eval_every: int = key(1, "epochs between per-epoch evaluations", low=1)
    precision: str = key(
        "fp32",
        "the training steps' matrix products: fp32, bf16 (autocast; losses, weights and "
        "optimizer state stay float32), or auto: bf16 where the hardware has bf16 matrix units "
        "(CPU amx_bf16 / avx512_bf16, CUDA compute capability 8.0 or more), else fp32; fp32 by default, "
        "the precision of the bundled recipes' records",
        choices=("auto", "fp32", "bf16"),
    )


@dataclass
class DataConfig:
    name: str = key("mnist", "mnist, digits, svhn, or a path to a .npy/.npz file")
    data_dir: str | None = key(None, "where data sets live (default $AAE_DATA_DIR, else ~/.cache/aae)")
    download: bool = key(True, "download MNIST if it is missing")
    n_labeled: int | None = key(None, "training labels kept, balanced across classes (None: all)", low=0)
    label_seed: int = key(0, "which labeled images (and validation split) are drawn", low=0)
    valid_size: int | None = key(None, "validation images carved from the training set (None: 10000 for MNIST)", low=0)
    subset: int | None = key(None, "train on the first N training images only (quick runs)", low=1)


@dataclass
class EvalConfig:
    tta_shift: int = key(
        0,
        "q(y|x) is measured as its mean over every shift of the image by up to this many pixels (beyond the paper)",
        low=0,
    )


@dataclass
class ExperimentConfig:
    name: str = key("experiment", "the experiment's name")
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig, "eval": EvalConfig}


REMOVED = {
    "model.separate_y_trunk",
    "model.z_disc_reads_y",
    "model.hidden_noise",
    "model.input_noise",
    "model.input_dropout",
    "model.y_batch_mean",
    "model.vat_xi",
    "model.noise_std",
    "model.y_adversary",
    "model.reconstruction_trains_y",
    "train.classification_optimizer",
    "train.labeled_batch_size",
    "train.checkpoint_every",
    "train.betas",
    "train.momentum",
    "train.device",
    "train.threads",
    "train.progress",
    "eval.mmd_points",
}
"""keys of earlier versions, dropped without a warning from configs that runs saved (``strict=False``)"""


def _migrate(table: dict[str, Any]) -> dict[str, Any]:
    """A config saved by an earlier version in today's keys: the y head's two flags became
    ``y_regularizer``, and the NN / NN+VAT / IMSAT objectives became the one classifier."""
    model = dict(table.get("model") or {})
    if "y_regularizer" in model:  # saved since the merge (a run records every key): today's classifier
        return table
    if model.get("y_adversary") is False:
        model["y_regularizer"] = "imsat"
    if model.get("objective") == "classifier":  # it ignored the y head's terms
        model.update(vat_weight=0.0, y_marginal_weight=0.0, y_entropy_weight=0.0)
    elif model.get("objective") == "vat":
        model["objective"] = "classifier"
    return {**table, "model": model} if model else table


def _build(cls: type, table: dict[str, Any], prefix: str, strict: bool = True) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    obj = cls()
    for name, value in table.items():
        full = f"{prefix}{name}"
        if name not in fields:
            if not strict:
                if full not in REMOVED:
                    logging.getLogger("aae").warning(
                        "ignoring config key %r, which this version of aae does not have", full
                    )
                continue
            section = prefix.rstrip(".") or "top level"
            raise ConfigError(f"unknown config key {full!r}; allowed in [{section}]: {', '.join(fields)}")
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} must be a table, e.g. [{full}]")
            value = _build(hints[name], value, f"{full}.", strict)
        else:
            value = check_type(value, hints[name], full)
            if full == "train.lr":
                unknown = set(value) - set(LR_PHASES)
                if unknown:
                    raise ConfigError(
                        f"train.lr has unknown phase {sorted(unknown)[0]!r}; allowed: {', '.join(LR_PHASES)}"
                    )
                value = {**TrainConfig().lr, **value}
            check_range(value, fields[name].metadata, full)
        setattr(obj, name, value)
    return obj


# -- reading --------------------------------------------------------------------------------
def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        old = out.get(k)
        # A prior table that names another prior replaces the old one, whose arguments would not fit.
        renamed = (
            k == "prior"
            and isinstance(v, dict)
            and isinstance(old, dict)
            and v.get("name", old.get("name")) != old.get("name")
        )
        out[k] = _merge(old, v) if isinstance(v, dict) and isinstance(old, dict) and not renamed else v
    return out


def _parse_override(item: str) -> dict:
    name, sep, raw = item.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f"override {item!r} must look like section.key=value, e.g. train.epochs=5")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word, e.g. model.regime=supervised
    out: dict = {}
    node = out
    parts = name.strip().split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def resolve_config_path(name: str | Path) -> Path:
    """A config file by path, or by name among the bundled ones (``aae train --config mnist_mixture_aae``)."""
    path = Path(name)
    if path.is_file():
        return path
    bundled = CONFIG_DIR / f"{path.stem}.toml"
    if path.parent == Path(".") and path.suffix in ("", ".toml") and bundled.is_file():
        return bundled  # a bare name, never a mistyped path
    raise ConfigError(f"config {str(name)!r} not found; give a path, or one of: {', '.join(bundled_configs())}")


def bundled_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def from_dict(table: dict[str, Any], strict: bool = True) -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from nested dicts (as in a TOML or JSON file).
    ``strict=False`` (for configs saved by runs of another version) maps old keys to today's and drops
    keys this version does not have."""
    return validate(_build(ExperimentConfig, table if strict else _migrate(table), "", strict))


def load_config(
    path: str | Path | None = None, overrides: typing.Sequence[str] = (), base: dict | None = None
) -> ExperimentConfig:
    """Read a TOML config (a path or a bundled name), apply ``section.key=value`` overrides, validate."""
    table: dict[str, Any] = dict(base or {})
    if path is not None:
        file = resolve_config_path(path)
        try:
            text = file.read_bytes().decode("utf-8")
            table = _merge(table, tomllib.loads(text))
        except UnicodeDecodeError:
            raise ConfigError(f"{file}: not a UTF-8 text file; a config is TOML text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot be read ({exc.strerror})") from None
    for item in overrides:
        table = _merge(table, _parse_override(item))
    return from_dict(table)
