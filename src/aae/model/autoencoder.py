"""The one model: :class:`AdversarialAutoencoder`, an encoder with latent heads, a decoder and
one discriminator per head, built from a ``model`` config section (:class:`aae.config.schema.ModelConfig`,
read by attribute). It holds no optimizers; the phases in :mod:`aae.model.phases` train it.

>>> from aae.config.schema import ModelConfig
>>> model = AdversarialAutoencoder(ModelConfig(hidden=[64], disc_hidden=[32]), x_dim=64)
>>> model.encode(torch.rand(5, 64)).z.shape
torch.Size([5, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .capabilities import Capabilities
from .conv import ConvDecoder, image_hwc
from .likelihood import ColumnLikelihood
from .nets import Codes, Discriminator, Encoder, mlp
from .priors import Categorical, Prior, make_prior
from .regimes import REGIMES


def image_shape_for(config: Any, x_dim: int, image_shape: tuple[int, ...] | None) -> tuple[int, int, int] | None:
    """The data's (height, width, channels), or None for flat data; checked against ``x_dim``, and
    required by the convolutional networks."""
    if image_shape is None:
        return image_hwc(None) if config.net == "conv" else None
    h, w, c = (*image_shape, 1) if len(image_shape) == 2 else tuple(image_shape)
    if h * w * c != x_dim:
        raise ConfigError(f"image shape {tuple(image_shape)} does not hold {x_dim} features")
    return image_hwc((h, w, c)) if config.net == "conv" else (int(h), int(w), int(c))


def one_hot_with_unlabeled(labels: Tensor, n_classes: int) -> Tensor:
    """One-hot over ``n_classes + 1`` slots; label -1 (unlabeled) takes the extra last slot (Section 2.3)."""
    return F.one_hot(torch.where(labels < 0, n_classes, labels), n_classes + 1).float()


def decoder_for(
    config: Any, x_dim: int, n_y: int, image_shape: tuple[int, ...] | None = None
) -> tuple[nn.Parameter | None, nn.Module]:
    """The cluster heads (None but for dimensionality reduction) and the decoder, which reads what
    :meth:`AdversarialAutoencoder.representation` gives: z, with y (``n_y`` wide) and, by regime,
    the one-hot label; or r = W_C y + z."""
    c, caps = config, Capabilities.of(config)
    heads = None
    if caps.has_cluster_heads:
        # W_C: one learned n-dimensional head per cluster (Section 7); r = W_C y + z.
        heads = nn.Parameter(torch.randn(n_y, c.z_dim) * c.eta)
        width = c.z_dim
    else:
        width = c.z_dim + n_y + (c.n_classes if caps.decoder_reads_label else 0)
    if c.net != "conv":
        return heads, mlp([width, *reversed(c.hidden), x_dim], dropout=c.dropout)
    dense = mlp([width, *reversed(c.hidden)], final_activation=True, dropout=c.dropout)
    return heads, nn.Sequential(dense, ConvDecoder(([width, *reversed(c.hidden)])[-1], image_shape, c.channels))


class ModelBase(nn.Module, Capabilities):
    """What both models share: their ``config`` (a ``model`` section), the data's width ``x_dim``
    and ``image_shape``, their ``regime``, the codes of their ``encoder`` and their device; what
    they have is their :class:`~aae.model.capabilities.Capabilities`."""

    encoder: Encoder

    def __init__(self, config: Any, x_dim: int, image_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.config, self.x_dim = config, int(x_dim)
        self.image_shape = image_shape_for(config, x_dim, image_shape)
        self.regime = REGIMES[config.regime]

    def encode(self, x: Tensor, sample: bool = True) -> Codes:
        return self.encoder(x, sample)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class AdversarialAutoencoder(ModelBase):
    """An autoencoder whose code heads are each matched to a prior by a discriminator.

    Heads: ``z`` (style, any prior) always; ``y`` (categorical over ``n_classes``) where the
    regime has a categorical head. The decoder reads ``z`` and, by regime, the one-hot label
    (supervised), ``y`` (semi-supervised, clustering) or ``W_C y + z`` (dimensionality
    reduction, with ``cluster_heads`` the rows of ``W_C``). What it has is read from its
    :class:`~aae.model.capabilities.Capabilities` (``has_y_head``, ``decoder_reads_label``, ...).
    """

    has_decoder = True

    def __init__(
        self, config: Any, x_dim: int, prior: Prior | Callable | None = None, image_shape: tuple[int, ...] | None = None
    ):
        super().__init__(config, x_dim, image_shape)
        c = config
        self.prior = make_prior(prior if prior is not None else c.prior, c.z_dim)
        n_y = c.n_classes if self.has_y_head else 0
        self.encoder = Encoder(
            x_dim,
            c.hidden,
            c.z_dim,
            kind=c.encoder,
            n_categories=n_y,
            noise_dim=c.noise_dim,
            batch_norm=c.encoder_batch_norm,
            dropout=c.dropout,
            image_shape=self.image_shape,
            channels=c.channels if c.net == "conv" else 0,
        )
        self.cluster_heads, self.decoder = decoder_for(c, x_dim, n_y, self.image_shape)
        label_dim = c.n_classes + 1 if self.z_reads_labels else 0
        self.discriminators = nn.ModuleDict({"z": Discriminator(c.z_dim, c.disc_hidden, label_dim, dropout=c.dropout)})
        self.priors: dict[str, Prior] = {"z": self.prior}
        if self.has_y_discriminator:
            # reading the minibatch's mean y stops every code collapsing onto one category
            self.discriminators["y"] = Discriminator(n_y, c.disc_hidden, batch_mean=True, dropout=c.dropout)
        if n_y:
            self.priors["y"] = Categorical(n_y)

    # -- the parts -----------------------------------------------------------------------
    def representation(self, codes: Codes, labels: Tensor | None = None) -> Tensor:
        """What the decoder reads, by regime: z; [z, one-hot label]; [y, z]; or W_C y + z."""
        if self.has_cluster_heads:
            return codes.y @ self.cluster_heads + codes.z
        parts = [codes.z]
        if self.has_y_head:
            parts.insert(0, codes.y)
        if self.decoder_reads_label:
            if labels is None or (labels < 0).any():
                raise ConfigError("the supervised regime's decoder needs a label for every point")
            parts.append(F.one_hot(labels, self.config.n_classes).float())
        return torch.cat(parts, 1)

    def decode(self, representation: Tensor) -> Tensor:
        """Decoder output: logits (bernoulli output) or means (gaussian output)."""
        return self.decoder(representation)

    def head_codes(self, codes: Codes) -> dict[str, Tensor]:
        """The code of each head that has a discriminator, as the discriminator sees it."""
        out = {"z": codes.z}
        if self.has_y_discriminator:
            out["y"] = codes.y
        return out

    def sample_prior(self, head: str, n: int, labels: Tensor | None = None) -> Tensor:
        """Prior samples for a head; per label where the z discriminator reads the label."""
        conditioned = head == "z" and self.z_reads_labels and labels is not None
        if conditioned and self.prior.n_parts is None:
            labels = None  # a prior without parts: every label sees the whole prior
        return self.priors[head].sample(n, labels.cpu() if conditioned and labels is not None else None).to(self.device)

    def discriminate(self, head: str, code: Tensor, labels: Tensor | None = None, batches: int = 1) -> Tensor:
        """The head's discriminator logit for ``code`` (``batches`` minibatches of equal size, one
        after another); it also reads the one-hot label (with the unlabeled slot) where it is
        label-conditioned."""
        disc = self.discriminators[head]
        if disc.label_dim:
            if labels is None:
                labels = torch.full((code.shape[0],), -1, dtype=torch.long, device=code.device)
            return disc(code, one_hot_with_unlabeled(labels, self.config.n_classes).to(code.dtype), batches)
        return disc(code, batches=batches)

    # -- parameter groups: the phases step them, each with its own optimizer -----------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each group a phase steps (:attr:`aae.model.phases.Phase.groups`)."""
        decoder = list(self.decoder.parameters()) + ([self.cluster_heads] if self.has_cluster_heads else [])
        encoder = list(self.encoder.parameters())
        return {
            "reconstruction": encoder + decoder,
            "discriminator": list(self.discriminators.parameters()),
            "generator": encoder,
            "classification": encoder,
        }

    # -- conveniences ------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Reconstructions of ``x`` in data space (probabilities for a bernoulli output)."""
        codes = self.encode(x, sample=False)
        return self.to_data(self.decode(self.representation(codes, labels)))

    columns: ColumnLikelihood | None = None
    """a likelihood per column for a table of mixed columns (set by the estimators), else None"""

    @property
    def likelihood(self) -> str | ColumnLikelihood:
        """What the reconstruction loss reads: the columns' likelihoods, or ``config.output``."""
        return self.columns if self.columns is not None else self.config.output

    def to_data(self, out: Tensor) -> Tensor:
        if self.columns is not None:
            return self.columns.to_data(out)
        return out.sigmoid() if self.config.output == "bernoulli" else out

    @torch.no_grad()
    def generate(
        self, n: int, labels: Tensor | None = None, z: Tensor | None = None, y: Tensor | None = None
    ) -> Tensor:
        """Decode ``n`` samples of the priors (or the given ``z``/``y``) into data space.

        ``labels`` are the decoder's labels (supervised), the categories to decode (models with a
        y head), or the parts of the prior to sample z from (label-conditioned); without them
        categories and z are drawn from the whole prior.
        """
        # sample_prior samples per label only where the z discriminator is label-conditioned
        z = self.sample_prior("z", n, labels) if z is None else z.to(self.device)
        y_logits = None
        if self.has_y_head:
            if y is None:
                y = self.priors["y"].sample(n, labels.cpu() if labels is not None else None).to(self.device)
            y_logits = torch.log(y.clamp_min(1e-12))  # softmax(log onehot) = onehot
        codes = Codes(z, y_logits)
        return self.to_data(self.decode(self.representation(codes, labels if self.decoder_reads_label else None)))

    @torch.no_grad()
    def restyle(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """Encode each image's style z, then decode it under every label (Section 4): shape
        ``(n, n_labels, d)``. Needs a model whose decoder reads the label (supervised)."""
        if not self.decoder_reads_label:
            raise ConfigError("restyle needs the supervised regime (the label goes to the decoder)")
        labels = torch.arange(self.config.n_classes, device=self.device) if labels is None else labels.to(self.device)
        z = self.encode(x.to(self.device), sample=False).z
        n, k = len(z), len(labels)
        return self.generate(n * k, labels=labels.repeat(n), z=z.repeat_interleave(k, 0)).reshape(n, k, -1)


class Classifier(ModelBase):
    """The encoder's q(y|x) alone, with no decoder and no discriminator: the baselines the paper
    and the reproductions compare with (Section 5's NN: trained on the labels only; NN+VAT: plus
    virtual adversarial training on the unlabeled images; without labels and with the mutual
    information, IMSAT, Hu et al. 2017). Trained by the same trainer, measured by the same code."""

    prior = None
    cluster_heads = None
    has_decoder = False
    """whatever ``model.objective`` says: q(y|x) alone"""
    ignores = (
        "encoder",
        "z_dim",
        "noise_dim",
        "output",
        "prior",
        "disc_hidden",
        "label_to_discriminator",
        "y_regularizer",
        "eta",
        "head_penalty",
    )
    """the model keys that only the autoencoder reads"""
    rate_groups = ("generator", "classification")
    """the ``train.lr`` groups it steps: the y head's terms and the labels"""

    def __init__(self, config: Any, x_dim: int, prior=None, image_shape: tuple[int, ...] | None = None):
        super().__init__(config, x_dim, image_shape)
        self.encoder = Encoder(
            x_dim,
            config.hidden,
            0,
            n_categories=config.n_classes,
            batch_norm=config.encoder_batch_norm,
            dropout=config.dropout,
            image_shape=self.image_shape,
            channels=config.channels if config.net == "conv" else 0,
        )
        self.priors: dict[str, Prior] = {"y": Categorical(config.n_classes)}

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        encoder = list(self.encoder.parameters())
        return dict.fromkeys(self.rate_groups, encoder)


def n_categories(model: AdversarialAutoencoder) -> int | None:
    """How many categories ``model.generate`` takes as labels: the y head's, the decoder's labels
    or, where the z discriminator reads the label, the prior's parts (class k from part k); None
    for a model without any."""
    if model.has_y_head or model.decoder_reads_label:
        return model.config.n_classes
    if model.z_reads_labels and model.prior.n_parts is not None:
        return model.config.n_classes  # class k is drawn from part k of the prior
    return None


def build_model(
    config: Any, x_dim: int, prior: Prior | Callable | None = None, image_shape: tuple[int, ...] | None = None
) -> nn.Module:
    """The model a config describes: the adversarial autoencoder, or for ``objective =
    'classifier'`` the encoder's q(y|x) alone."""
    if not Capabilities.of(config).has_decoder:
        return Classifier(config, x_dim, image_shape=image_shape)
    return AdversarialAutoencoder(config, x_dim, prior=prior, image_shape=image_shape)
