"""An estimator's run config: the sizes derived from the data, the bundled recipes some estimators
start from, and the estimator's parameters on top. Every value goes through the config's own
checks (:func:`aae.config.load.from_dict`), so a bad width or learning rate is refused there, with
the config key's message, and nowhere else.

Precedence, lowest first: the sizes derived from the data (only without ``config``), the
estimator's recipe (only without ``config``), the config file, ``overrides``, the estimator's
parameters.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from ..config.load import from_dict, load_config, tomllib
from ..config.schema import CONFIG_DIR, ExperimentConfig
from ..model.phases import RATE_GROUPS
from ..model.priors import describe


def recipe(name: str, model_keys: tuple[str, ...] = (), train_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Some keys of a bundled config (``src/aae/configs/<name>.toml``), as a config table: what an
    estimator takes from the recipe it is the small-data version of."""
    table = tomllib.loads((CONFIG_DIR / f"{name}.toml").read_text("utf-8"))
    return {"model": {k: table["model"][k] for k in model_keys}, "train": {k: table["train"][k] for k in train_keys}}


def ema(total_steps: int) -> float:
    """A weight-average decay whose window is a fifth of the run (0.999 from 5000 steps on)."""
    return min(0.999, 1 - 5 / max(total_steps, 10))


def default_epochs(n: int, batch: int) -> int:
    """Enough epochs of ``n // batch`` steps for ``clip(n, 600, 3000)`` optimizer steps."""
    return math.ceil(int(np.clip(n, 600, 3000)) / max(n // batch, 1))


def default_sizes(n: int, d: int, batch: int) -> dict[str, Any]:
    """The sizes derived from the data (n rows, d features), with ``batch`` rows a batch: two
    hidden layers of ``clip(2 d, 64, 512)`` rounded to a power of two, and :func:`default_epochs`."""
    width = int(np.clip(2 ** round(math.log2(2 * d)), 64, 512))
    return {
        "model": {"hidden": [width, width], "disc_hidden": [width, width]},
        "train": {"batch_size": batch, "epochs": default_epochs(n, batch)},
    }


def seed(random_state) -> int:
    """An int seed for torch: an int is used as it is (the ``train.seed`` of ``aae train``); None or a
    RandomState draws one (from numpy's global state for None), as scikit-learn's estimators do."""
    rng = check_random_state(random_state)
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(rng.randint(np.iinfo(np.int32).max))


def _widths(value) -> list | None:
    """``hidden``/``disc_hidden`` as the config's list: an int is one layer (as ``MLPClassifier``
    reads it); the config checks the widths."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return [int(value)]
    items = np.asarray(value).ravel().tolist() if isinstance(value, np.ndarray) else list(value)
    return [int(w) if isinstance(w, numbers.Integral) and not isinstance(w, bool) else w for w in items]


def _merge(table: dict, extra: dict) -> dict:
    out = {section: dict(values) for section, values in table.items()}
    for section, values in extra.items():
        out.setdefault(section, {}).update(values)
    return out


def build_config(est, n: int, d: int, *, model: dict[str, Any], labeled: bool) -> ExperimentConfig:
    """The run's config for ``est`` on n rows of d features: ``model`` holds what the fit decided
    (regime, objective, categories, output, networks), ``labeled`` whether the fit has labels."""
    batch = min(est._batch_size(n), n)
    base = {} if est.config is not None else _merge(default_sizes(n, d, batch), est._recipe(n, d, batch, labeled))
    own = {**{k: v for k, v in est._settings().items() if v is not None}, **model}
    # the keys the checks read across (regime, objective, encoder) hold for the file's checks too
    across = [f"model.{k}={own[k]}" for k in ("regime", "objective", "encoder") if k in own]
    table = load_config(est.config, [*est.overrides, *across], base=base).to_dict()
    m, t = table["model"], table["train"]
    chosen = {"z_dim": est.n_components, "hidden": _widths(est.hidden), "disc_hidden": _widths(est.disc_hidden)}
    m.update({k: v for k, v in chosen.items() if v is not None}, **own)
    if isinstance(est.prior, str):
        m["prior"] = {"name": est.prior}
    elif isinstance(est.prior, dict):
        m["prior"] = dict(est.prior)
    elif est.prior is not None:  # a function or Prior object: recorded by name, passed to the model
        m["prior"] = describe(est.prior)
    if est.epochs is not None:
        t["epochs"] = est.epochs
    if est.batch_size is not None:
        t["batch_size"] = est.batch_size
    t["batch_size"] = min(t["batch_size"], n)
    if est.lr is not None:
        t["lr"] = {**t["lr"], **(est.lr if isinstance(est.lr, dict) else dict.fromkeys(RATE_GROUPS, est.lr))}
    if m["vat_knn"]:
        m["vat_knn"] = min(m["vat_knn"], n - 1)
    t["seed"], t["select_by"] = seed(est.random_state), ""
    return from_dict(table)
