"""Reading a config: TOML files and ``section.key=value`` overrides, merged, built into the
typed sections and checked; configs saved by earlier versions migrated."""

from __future__ import annotations

import dataclasses
import logging
import sys
import typing
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import ConfigError
from .checks import validate
from .keys import check_range, check_type
from .schema import CONFIG_DIR, LR_PHASES, ExperimentConfig, TrainConfig

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
    except RecursionError:
        raise ConfigError(f"override {name.strip()}: its value is nested too deeply; flatten it") from None
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
        except RecursionError:
            raise ConfigError(f"{file}: a value is nested too deeply (thousands of levels); flatten it") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot be read ({exc.strerror})") from None
    for item in overrides:
        table = _merge(table, _parse_override(item))
    return from_dict(table)
