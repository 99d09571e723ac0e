"""What a model has and where its labels go, in one place: :class:`Capabilities`, read from the
``model`` config and its regime alone. The models inherit it (``model.has_y_head``), and
:meth:`Capabilities.of` gives the same answers for a config before any model is built (the config
checks, which labels an experiment hands the trainer), so no other module asks for a regime's
name, tests ``"y" in model.priors`` or compares ``label_to`` with a string.

>>> from aae.config.schema import ModelConfig
>>> caps = Capabilities.of(ModelConfig(regime="semi_supervised"))
>>> caps.has_y_head, caps.decoder_reads_label, [p.name for p in caps.phases]
(True, False, ['reconstruction', 'regularization', 'classification'])
"""

from __future__ import annotations

from typing import Any

from .losses import Y_TERM_WEIGHTS
from .phases import Phase
from .regimes import REGIMES, Regime


class Capabilities:
    """The capabilities of a model of ``config`` (a ``model`` config section) in ``regime``."""

    config: Any
    regime: Regime

    @classmethod
    def of(cls, config: Any) -> Capabilities:
        """The capabilities of the model ``config`` describes, without building it."""
        caps = cls()
        caps.config, caps.regime = config, REGIMES[config.regime]
        return caps

    @property
    def phases(self) -> tuple[Phase, ...]:
        """The phases one minibatch runs: the objective's, then the regime's (a classifier baseline
        smooths q(y|x) on the unlabeled batch where its y head has terms: VAT, mutual information)."""
        y_terms = any(getattr(self.config, k) for k in Y_TERM_WEIGHTS)
        return self.regime.phases(self.config.objective if self.has_decoder else "classifier", y_terms)

    @property
    def has_decoder(self) -> bool:
        """An autoencoder: a decoder, a prior, a discriminator per head; not the classifier
        baselines' q(y|x) alone (``model.objective = 'classifier'``)."""
        return self.config.objective != "classifier"

    @property
    def has_y_head(self) -> bool:
        """A categorical head q(y|x) (m = ``n_classes`` categories)."""
        return self.regime.categorical_head

    @property
    def has_y_discriminator(self) -> bool:
        """A discriminator matches q(y) to its categorical prior (``model.y_regularizer = 'adversary'``)."""
        return self.has_decoder and self.has_y_head and self.config.y_regularizer == "adversary"

    @property
    def decoder_holds_y_fixed(self) -> bool:
        """The decoder reads q(y|x) detached: IMSAT's terms alone train it (``y_regularizer = 'imsat'``)."""
        return self.has_decoder and self.has_y_head and self.config.y_regularizer == "imsat"

    @property
    def has_cluster_heads(self) -> bool:
        """The decoder reads r = W_C y + z, W_C the learned cluster heads (dimensionality reduction)."""
        return self.has_decoder and self.regime.cluster_heads

    @property
    def decoder_reads_label(self) -> bool:
        """The decoder reads the one-hot label beside z (the supervised regime), so every point needs one."""
        return self.has_decoder and self.regime.label_to == "decoder"

    @property
    def label_conditions_prior(self) -> bool:
        """The label says which part of the prior a code belongs to (the label-conditioned regime,
        Section 2.3): the VAE's KL is taken against that part."""
        return self.has_decoder and self.regime.label_to == "discriminator"

    @property
    def has_part_head(self) -> bool:
        """No y head, but a label-conditioned prior: the code's part posterior under the prior
        stands in for q(y|x) in the y head's VAT and invariance terms."""
        return self.label_conditions_prior and not self.has_y_head

    @property
    def z_reads_labels(self) -> bool:
        """The z discriminator reads the one-hot label (and prior samples follow it): the
        label-conditioned regime, or ``model.label_to_discriminator``."""
        return self.has_decoder and (self.label_conditions_prior or self.config.label_to_discriminator)

    @property
    def reads_labels(self) -> bool:
        """Training reads labels (by the regime: the decoder, the z discriminator or the classification phase)."""
        return self.regime.label_to is not None

    @property
    def labels_needed(self) -> str:
        """How many training labels it needs: none, some (semi-supervised), optional or all."""
        return self.regime.labels

    @property
    def labels_optional(self) -> bool:
        """It trains with labels or without them (label-conditioned, dimensionality reduction)."""
        return self.regime.labels == "optional"
