"""The networks: MLP blocks for the encoder (three kinds), the decoder and the discriminators.

Every network returns logits or unconstrained values; probabilities appear only inside
losses or in ``predict_proba``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .conv import ConvFeatures

ENCODER_KINDS = ("deterministic", "gaussian", "universal")


def mlp(
    sizes: list[int], *, final_activation: bool = False, batch_norm: bool = False, dropout: float = 0.0
) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (and after the last if asked),
    each ReLU preceded by batch normalization and followed by dropout if asked."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if final_activation or i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b), nn.ReLU()] if batch_norm else [nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@dataclass
class Codes:
    """What the encoder gives for a batch: the style code ``z`` and, where the model has a
    categorical head, its logits ``y_logits``. A Gaussian encoder also gives ``mean`` and ``logvar``."""

    z: Tensor
    y_logits: Tensor | None = None
    mean: Tensor | None = None
    logvar: Tensor | None = None

    @property
    def y(self) -> Tensor | None:
        """q(y|x) as probabilities (the softmax the decoder and the y discriminator read)."""
        return None if self.y_logits is None else self.y_logits.softmax(-1)


class Encoder(nn.Module):
    """q(z, y | x) as an MLP trunk with a style head and an optional categorical head.

    ``kind`` chooses q(z|x) (Section 2.1): ``deterministic`` (z = f(x)); ``gaussian``
    (z = mean + std * eps, the reparametrization trick); ``universal`` (z = f(x, eta) with
    eta ~ N(0, I) read beside x; its scale is the first layer's to learn). ``z_dim = 0`` leaves
    the categorical head alone (the classifier baselines).
    """

    def __init__(
        self,
        x_dim: int,
        hidden: list[int],
        z_dim: int,
        *,
        kind: str = "deterministic",
        n_categories: int = 0,
        noise_dim: int = 100,
        batch_norm: bool = False,
        dropout: float = 0.0,
        image_shape: tuple[int, ...] | None = None,
        channels: int = 0,
    ):
        super().__init__()
        if kind not in ENCODER_KINDS:
            raise ConfigError(f"model.encoder = {kind!r} is not allowed; choose one of: {', '.join(ENCODER_KINDS)}")
        self.kind, self.z_dim = kind, z_dim
        self.noise_dim = noise_dim if kind == "universal" else 0
        # with channels, a convolutional trunk reads the images first (model.net = "conv")
        self.features = ConvFeatures(image_shape, channels) if channels else None
        in_dim = (self.features.out_dim if self.features is not None else x_dim) + self.noise_dim
        self.trunk = mlp([in_dim, *hidden], final_activation=True, batch_norm=batch_norm, dropout=dropout)
        width = hidden[-1] if hidden else in_dim
        self.z_head = nn.Linear(width, 2 * z_dim if kind == "gaussian" else z_dim) if z_dim else None
        self.y_head = nn.Linear(width, n_categories) if n_categories else None

    def forward(self, x: Tensor, sample: bool = True) -> Codes:
        """Codes of ``x``. With ``sample=False`` the code is the posterior mean (gaussian) or
        the code at zero noise (universal), for a repeatable transform."""
        if self.features is not None:
            x = self.features(x)
        if self.noise_dim:
            shape = (x.shape[0], self.noise_dim)
            noise = torch.randn(shape, device=x.device, dtype=x.dtype) if sample else x.new_zeros(shape)
            x = torch.cat([x, noise], 1)
        h = self.trunk(x)
        y_logits = None if self.y_head is None else self.y_head(h)
        if self.z_head is None:
            return Codes(h.new_zeros(h.shape[0], 0), y_logits)
        out = self.z_head(h)
        if self.kind != "gaussian":
            return Codes(out, y_logits)
        mean, logvar = out.chunk(2, -1)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean) if sample else mean
        return Codes(z, y_logits, mean, logvar)


class Discriminator(nn.Module):
    """D(code [, one-hot label]) -> logit that the code came from the prior.

    With ``batch_mean`` each code is read beside the mean code of its minibatch (minibatch
    features, as in Salimans et al. 2016 and ProGAN): a discriminator of single samples cannot
    see that every code sits on the same category, one of the batch can.
    """

    def __init__(
        self, code_dim: int, hidden: list[int], label_dim: int = 0, batch_mean: bool = False, dropout: float = 0.0
    ):
        super().__init__()
        self.label_dim, self.batch_mean = label_dim, batch_mean
        self.net = mlp([code_dim * (2 if batch_mean else 1) + label_dim, *hidden, 1], dropout=dropout)

    def forward(self, code: Tensor, label_onehot: Tensor | None = None, batches: int = 1) -> Tensor:
        """Logits of ``code``, which holds ``batches`` minibatches of equal size one after another
        (each code is read beside its own minibatch's mean)."""
        if self.batch_mean:
            parts = code.unflatten(0, (batches, -1))
            code = torch.cat([parts, parts.mean(1, keepdim=True).expand_as(parts)], 2).flatten(0, 1)
        if self.label_dim:
            code = torch.cat([code, label_onehot], 1)
        return self.net(code).squeeze(-1)
