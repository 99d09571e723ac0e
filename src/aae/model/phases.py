"""The training phases: the only place where losses meet optimizers.

A minibatch runs the regime's phases in the paper's order (Section 2, "Training
procedure"; Section 5 adds the third):

1. :data:`RECONSTRUCTION`: encoder and decoder minimize the reconstruction error;
2. :data:`REGULARIZATION`: each discriminator learns to tell prior samples from codes,
   then the encoder, as the generator, learns to fool them;
3. :data:`CLASSIFICATION`: the encoder minimizes the cross-entropy of q(y|x) on a
   labeled minibatch.

:data:`ELBO` is the VAE baseline on the same networks, :data:`SMOOTHING` the classifier
baselines' y-head terms. Each is a :class:`Phase`: its name, the parameter groups it steps (one
optimizer each, at the rate ``train.lr.<group>``: :data:`RATE_GROUPS` are every phase's) and its
function, which is handed those groups' optimizers in that order. Every phase returns its losses
as tensors (the trainer reads them once per step, so there is no host sync per phase). ``model``
is an :class:`aae.model.autoencoder.AdversarialAutoencoder` or a classifier baseline, read through
its methods and capabilities (annotated as a module, so that the phases, below the models, import
nothing of them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .losses import (
    Y_TERMS,
    YHead,
    classification_loss,
    cluster_head_penalty,
    discriminator_loss,
    generator_loss,
    kl_divergence,
    part_logits,
    part_loss,
    reconstruction_loss,
)


@dataclass
class Batch:
    x: Tensor
    labels: Tensor | None = None
    """-1 where unlabeled; None when the data has no labels"""
    x_labeled: Tensor | None = None
    """a labeled minibatch for the classification phase"""
    y_labeled: Tensor | None = None
    vat_eps: Tensor | None = None
    """(n, 1) VAT radius of each image of ``x`` (model.vat_knn); None: model.vat_eps for all"""


def _step(model: nn.Module, optimizer: Optimizer, loss: Tensor) -> None:
    # Zero every gradient, not only this optimizer's: a phase's backward also reaches
    # parameters it must not update (the discriminators in the generator step).
    model.zero_grad(set_to_none=True)
    with torch.autocast(loss.device.type, enabled=False):  # a bf16 autocast covers the forward pass only
        loss.backward()
        optimizer.step()


def reconstruction_phase(model, batch: Batch, autoencoder: Optimizer) -> dict[str, Tensor]:
    codes = model.encode(batch.x)
    if model.decoder_holds_y_fixed:  # IMSAT's terms alone train q(y|x); the decoder reads it held fixed
        codes = replace(codes, y_logits=codes.y_logits.detach())
    loss = reconstruction_loss(model.decode(model.representation(codes, batch.labels)), batch.x, model.likelihood)
    out = {"reconstruction": loss.detach()}
    if model.has_cluster_heads:
        penalty = cluster_head_penalty(model.cluster_heads, model.config.eta)
        loss = loss + model.config.head_penalty * penalty
        out["head_penalty"] = penalty.detach()
    _step(model, autoencoder, loss)
    return out


def regularization_phase(model, batch: Batch, discriminators: Optimizer, encoder: Optimizer) -> dict[str, Tensor]:
    n = batch.x.shape[0]
    # One encoding serves both steps: the discriminator step does not move the encoder.
    encoded = model.encode(batch.x)
    codes = model.head_codes(encoded)
    # Discriminators: prior samples are real, codes are fake.
    d_loss = sum(
        discriminator_loss(*_judge(model, h, model.sample_prior(h, n, batch.labels), code.detach(), batch.labels))
        for h, code in codes.items()
    )
    _step(model, discriminators, d_loss)
    # Generator: the encoder learns to make its codes pass for prior samples (through the updated
    # discriminators, whose own weights get no gradient here).
    with _frozen(model.discriminators):
        g_loss = sum(generator_loss(model.discriminate(h, code, batch.labels)) for h, code in codes.items())
        out = {"discriminator": d_loss.detach(), "generator": g_loss.detach()}
        if model.has_y_head:
            g_loss = g_loss + _y_terms(model, batch, encoded.y_logits, out)
        elif model.has_part_head and (model.config.vat_weight or model.config.y_invariance_weight):
            g_loss = g_loss + _y_terms(model, batch, part_logits(model.prior, encoded.z), out, parts=True)
        if model.config.label_part_weight and model.label_conditions_prior and batch.labels is not None:
            part = part_loss(model.prior, encoded.z, batch.labels)
            g_loss = g_loss + model.config.label_part_weight * part
            out["part"] = part.detach()
        _step(model, encoder, g_loss)
    return out


def _judge(model: nn.Module, head: str, prior: Tensor, code: Tensor, labels: Tensor | None):
    """The head's discriminator logits on the prior samples and on the codes, in one forward pass
    over both minibatches (one cast of its weights to bf16, one larger matrix product, one
    backward); a discriminator of batch means reads each minibatch's own mean."""
    both = model.discriminate(
        head, torch.cat([prior, code]), None if labels is None else torch.cat([labels, labels]), batches=2
    )
    return both[: prior.shape[0]], both[prior.shape[0] :]


@contextlib.contextmanager
def _frozen(module: torch.nn.Module):
    """No weight gradients for ``module`` inside (they would be computed and thrown away)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _y_terms(model: nn.Module, batch: Batch, logits: Tensor, out: dict, parts: bool = False) -> Tensor:
    """The weighted sum of the y head's terms beyond the paper (:data:`aae.model.losses.Y_TERMS`)
    whose weight is set, on the unlabeled batch (VAT at the batch's radii, else the model's); each
    term's value goes into ``out``. ``parts``: the label-conditioned regime, where the code's part
    posterior under the prior (``logits`` its :func:`~aae.model.losses.part_logits`) stands in for
    q(y|x), for VAT and the invariance term (the config checks refuse the others there)."""
    c = model.config
    if parts:
        probs = logits.new_full((logits.shape[1],), 1 / logits.shape[1])
        logits_of = lambda x: part_logits(model.prior, model.encode(x).z)  # noqa: E731
    else:
        probs = model.priors["y"].probs.to(logits.device)
        logits_of = lambda x: model.encode(x).y_logits  # noqa: E731
    head = YHead(
        logits, batch.x, logits_of, c.vat_eps if batch.vat_eps is None else batch.vat_eps, probs, model.image_shape
    )
    terms = {name: (getattr(c, weight), term(head)) for name, (weight, term) in Y_TERMS.items() if getattr(c, weight)}
    out.update({k: v.detach() for k, (_, v) in terms.items()})
    return sum((w * v for w, v in terms.values()), logits.new_zeros(()))


def smoothing_phase(model, batch: Batch, encoder: Optimizer) -> dict[str, Tensor]:
    """The y head's terms on the unlabeled batch alone, for the classifier baselines (NN+VAT with
    labels, IMSAT without); the AAE runs the same terms inside its generator step."""
    out: dict[str, Tensor] = {}
    _step(model, encoder, _y_terms(model, batch, model.encode(batch.x).y_logits, out))
    return out


def classification_phase(model, batch: Batch, encoder: Optimizer) -> dict[str, Tensor]:
    if batch.x_labeled is None:
        return {}
    loss = classification_loss(model.encode(batch.x_labeled).y_logits, batch.y_labeled)
    _step(model, encoder, loss)
    return {"classification": loss.detach()}


def elbo_phase(model, batch: Batch, autoencoder: Optimizer) -> dict[str, Tensor]:
    codes = model.encode(batch.x)
    recon = reconstruction_loss(model.decode(model.representation(codes, batch.labels)), batch.x, model.likelihood)
    conditioned = batch.labels if model.label_conditions_prior else None
    kl = kl_divergence(codes.z, codes.mean, codes.logvar, model.prior, conditioned, model.config.kl_free_bits)
    _step(model, autoencoder, recon + kl)
    return {"reconstruction": recon.detach(), "kl": kl.detach()}


@dataclass(frozen=True)
class Phase:
    """One step of a minibatch: its ``name``, the parameter ``groups`` it steps (the keys of
    :meth:`~aae.model.autoencoder.AdversarialAutoencoder.parameter_groups` and of ``train.lr``: one
    optimizer each) and its function ``fn(model, batch, *optimizers)``, handed those groups'
    optimizers in that order. ``labeled``: it reads the batch's labeled minibatch."""

    name: str
    groups: tuple[str, ...]
    fn: Callable[..., dict[str, Tensor]] = field(repr=False)
    labeled: bool = False

    def __call__(self, model, batch: Batch, optimizers: Mapping[str, Optimizer]) -> dict[str, Tensor]:
        return self.fn(model, batch, *(optimizers[g] for g in self.groups))

    def group_of(self, loss: str) -> str:
        """The group whose rate drives ``loss``: the one it is named after, else the phase's last step's."""
        return loss if loss in self.groups else self.groups[-1]


RECONSTRUCTION = Phase("reconstruction", ("reconstruction",), reconstruction_phase)
REGULARIZATION = Phase("regularization", ("discriminator", "generator"), regularization_phase)
CLASSIFICATION = Phase("classification", ("classification",), classification_phase, labeled=True)
SMOOTHING = Phase("smoothing", ("generator",), smoothing_phase)
ELBO = Phase("elbo", ("reconstruction",), elbo_phase)
"""the VAE's ELBO steps the autoencoder as the reconstruction does, at its rate"""

PHASES: dict[str, Phase] = {p.name: p for p in (RECONSTRUCTION, REGULARIZATION, CLASSIFICATION, SMOOTHING, ELBO)}


def stepped_groups(phases) -> tuple[str, ...]:
    """The parameter groups ``phases`` step, each once, in the order they first step."""
    return tuple(dict.fromkeys(g for p in phases for g in p.groups))


RATE_GROUPS = stepped_groups(PHASES.values())
"""the parameter groups some phase steps, each with its own optimizer: the keys of ``train.lr``"""


def train_step(
    model: nn.Module,
    batch: Batch,
    optimizers: Mapping[str, Optimizer],
    phases: tuple[Phase, ...],
    sources: dict[str, Phase] | None = None,
) -> dict[str, Tensor]:
    """One minibatch: the phases in order, each with its own groups' optimizers. ``sources``, where
    given, receives the phase each loss came from."""
    losses: dict[str, Tensor] = {}
    for phase in phases:
        out = phase(model, batch, optimizers)
        if sources is not None:
            sources.update(dict.fromkeys(out, phase))
        losses.update(out)
    return losses
