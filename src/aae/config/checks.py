"""Every check of a config, each failure one line naming the key, the value and what is allowed:
of one value against its type and the allowed values and range its :func:`key` declares
(:func:`check_type`, :func:`check_range`, as a file or override is read) and across keys
(:func:`validate`, once the config is built).
"""

from __future__ import annotations

import dataclasses
import typing

from ..errors import ConfigError
from ..model.capabilities import Capabilities
from .keys import check_range, check_type
from .schema import MAX_WEIGHTS, SECTIONS, ExperimentConfig


# -- checks across keys -------------------------------------------------------------------
def check_every_key(cfg: ExperimentConfig) -> None:
    """Every key's type and range once more, on the built config: a value set on it after it was
    read (an estimator's parameters) is held to the same rules as one read from a file."""
    for section, cls in SECTIONS.items():
        part, hints = getattr(cfg, section), typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            name = f"{section}.{f.name}"
            value = check_type(getattr(part, f.name), hints[f.name], name)
            check_range(value, f.metadata, name)
            setattr(part, f.name, value)


def model_weights(m, x_dim: int = 0) -> int:
    """About how many weights the networks of the model config ``m`` have on ``x_dim`` features (the
    encoder, the decoder that mirrors it, and two discriminators at most)."""

    def chain(widths: list[int]) -> int:
        return sum(a * b for a, b in zip(widths, widths[1:]))

    code = m.z_dim * 2 + m.n_classes + 1
    h, d = m.hidden or [0], m.disc_hidden or [0]
    nets = 2 * chain(h) + (2 * x_dim + m.noise_dim) * h[0] + 2 * code * h[-1]
    return nets + 2 * (chain(d) + code * d[0] + d[-1])


def check_model_size(m, x_dim: int = 0) -> None:
    """Refuse, before any is allocated, a model of more than MAX_WEIGHTS weights."""
    weights = model_weights(m, x_dim)
    if weights > MAX_WEIGHTS:
        on = f" on {x_dim} features" if x_dim else ""
        raise ConfigError(
            f"model.hidden = {m.hidden} and model.disc_hidden = {m.disc_hidden}{on} make about {weights:.2g} "
            f"weights, more than {MAX_WEIGHTS:.0e} ({4 * MAX_WEIGHTS / 1e9:.1f} GB); choose narrower layers"
        )


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Every key's type and range (:func:`check_every_key`), then the checks that read more than one
    key; each failure is one line naming the keys."""
    from ..model.priors import PRIORS, make_prior

    check_every_key(cfg)
    check_model_size(cfg.model)
    name = cfg.name
    if name in ("", ".", "..") or len(name) > 100 or any(c in name for c in "/\\\0") or not name.isprintable():
        raise ConfigError(
            f"name = {name!r} is not allowed; the run's default folder is runs/<name>: give a plain name "
            f"(no / or \\, at most 100 characters)"
        )
    m, t = cfg.model, cfg.train
    model = Capabilities.of(m)  # what the model of this config has
    if m.objective == "vae" and m.encoder != "gaussian":
        raise ConfigError(f"model.objective = 'vae' needs model.encoder = 'gaussian', not {m.encoder!r}")
    if m.objective == "classifier":
        if not model.has_y_head:
            raise ConfigError(
                f"model.objective = 'classifier' trains q(y|x): it needs the semi_supervised, "
                f"dim_reduction or clustering regime, not {m.regime!r}"
            )
        if not model.reads_labels and not (m.y_marginal_weight > 0 and m.y_entropy_weight > 0):
            # IMSAT (Hu et al. 2017): without either term a classifier without labels is content with one cluster
            raise ConfigError(
                "model.objective = 'classifier' without labels clusters by IMSAT's objective: it needs "
                "model.y_marginal_weight > 0 and model.y_entropy_weight > 0"
            )
    if m.y_regularizer == "imsat":
        if not model.has_y_head:
            raise ConfigError(f"model.y_regularizer = 'imsat' needs a regime with a y head, not {m.regime!r}")
        if not (m.y_marginal_weight > 0 and m.y_entropy_weight > 0):
            raise ConfigError(
                "model.y_regularizer = 'imsat' trains q(y|x) by the mutual information: it needs "
                "model.y_marginal_weight > 0 and model.y_entropy_weight > 0"
            )
    for weight in ("vat_weight", "y_invariance_weight"):  # on q(y|x), or on the part posterior of a code
        if getattr(m, weight) and not (model.has_y_head or model.has_part_head):
            raise ConfigError(
                f"model.{weight} smooths q(y|x), or a label-conditioned code's part of the prior: it needs "
                f"a regime with a y head or the label_conditioned regime, not {m.regime!r}"
            )
    if model.has_part_head:
        for weight in ("y_marginal_weight", "y_entropy_weight"):
            if getattr(m, weight):
                raise ConfigError(f"model.{weight} weighs a term of q(y|x): the {m.regime!r} regime has no y head")
    if m.label_to_discriminator and not model.reads_labels:
        raise ConfigError(f"model.label_to_discriminator needs a regime that reads labels, not {m.regime!r}")
    if m.label_part_weight and not model.label_conditions_prior:
        raise ConfigError(
            f"model.label_part_weight pulls a labeled code into its part of the prior: it needs the "
            f"label_conditioned regime, not {m.regime!r}"
        )
    name = m.prior.get("name", "gaussian")
    if not isinstance(name, str) or name not in PRIORS:
        raise ConfigError(f"model.prior: unknown prior {name!r}; allowed: {', '.join(PRIORS)}")
    if name != "callable":  # a function's record: the function itself is passed to the model
        prior = make_prior(m.prior, m.z_dim)
        parted = [k for k in ("label_part_weight", "vat_weight", "y_invariance_weight") if getattr(m, k)]
        if parted and model.has_part_head and prior.n_parts is None:
            raise ConfigError(f"model.{parted[0]} needs a prior with parts (mixture or swiss_roll), not {name!r}")
        if model.z_reads_labels and prior.n_parts is not None and prior.n_parts < m.n_classes:
            raise ConfigError(
                f"model.prior has {prior.n_parts} parts but model.n_classes = {m.n_classes}: a label-"
                f"conditioned discriminator needs one part per class"
            )
    if cfg.data.subset is not None and cfg.data.subset < t.batch_size:
        raise ConfigError(f"data.subset = {cfg.data.subset} is fewer images than train.batch_size = {t.batch_size}")
    return cfg
