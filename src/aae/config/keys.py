"""The config's field machinery: :func:`key` (a field with its doc, choices and range) and the
checks of one value (its type and its range)."""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import field
from typing import Any

from ..errors import ConfigError


def key(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    factory: Any = None,
    choices: tuple | None = None,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    below: float | None = None,
    longest: int | None = None,
) -> Any:
    """A config field with its documentation, its allowed values and its range (``low <= v <= high``,
    ``above < v < below``; for a list or table, of every item, and at most ``longest`` items)."""
    meta = {
        "doc": " ".join(doc.split()),
        "choices": choices,
        "low": low,
        "high": high,
        "above": above,
        "below": below,
        "longest": longest,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def shown(value: Any) -> str:
    """A value as a config file spells it: tables inline, true/false, strings quoted."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {shown(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


# -- checks of one value ------------------------------------------------------------------
def check_type(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        for arg in typing.get_args(tp):
            if arg is not type(None):
                try:
                    return check_type(value, arg, key)
                except ConfigError:
                    pass
        names = " or ".join("none" if a is type(None) else a.__name__ for a in typing.get_args(tp))
        raise ConfigError(f"{key} = {value!r} is not allowed; expected {names}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {value!r} is not allowed; expected a list, e.g. [256, 256]")
        (item,) = typing.get_args(tp)
        return [check_type(v, item, key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} = {value!r} is not allowed; expected a table, e.g. {{ name = ... }}")
        _, vt = typing.get_args(tp)
        return {k: check_type(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool):
        raise ConfigError(f"{key} = {value!r} is not allowed; expected true or false")
    if (tp is int and isinstance(value, bool)) or not isinstance(value, tp):
        raise ConfigError(f"{key} = {value!r} is not allowed; expected {'a number' if tp is float else tp.__name__}")
    if tp is int and isinstance(value, float):
        raise ConfigError(f"{key} = {value!r} is not allowed; expected a whole number (int), not {value!r}")
    if tp is float and not math.isfinite(value):
        raise ConfigError(f"{key} = {value!r} is not allowed; expected a finite number")
    return value


def check_range(value: Any, meta: dict, key: str) -> None:
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
    longest = meta.get("longest")
    if longest is not None and len(items) > longest:
        raise ConfigError(f"{key} has {len(items)} items; at most {longest} are allowed")
    low, high, above, below = meta["low"], meta["high"], meta["above"], meta["below"]
    for v in items:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        bad = (
            (low is not None and v < low)
            or (high is not None and v > high)
            or (above is not None and v <= above)
            or (below is not None and v >= below)
        )
        if bad:
            lo = f"{low} <= " if low is not None else f"{above} < " if above is not None else ""
            hi = f" <= {high}" if high is not None else f" < {below}" if below is not None else ""
            raise ConfigError(f"{key} = {shown(value)} is not allowed; allowed: {lo}{key}{hi}")
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(repr(c) for c in meta["choices"])
        raise ConfigError(f"{key} = {value!r} is not allowed; choose one of: {allowed}")
