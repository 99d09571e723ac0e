"""The training phases: the only place where losses meet optimizers.

A minibatch runs the regime's phases in the paper's order (Section 2, "Training
procedure"; Section 5 adds the third):

1. ``reconstruction_phase``: encoder and decoder minimize the reconstruction error;
2. ``regularization_phase``: each discriminator learns to tell prior samples from codes,
   then the encoder, as the generator, learns to fool them;
3. ``classification_phase``: the encoder minimizes the cross-entropy of q(y|x) on a
   labeled minibatch.

``elbo_phase`` is the VAE baseline on the same networks. Every phase returns its losses as
tensors (the trainer reads them once per step, so there is no host sync per phase).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..data.augment import small_transforms
from .autoencoder import AdversarialAutoencoder
from .losses import (
    classification_loss,
    cluster_head_penalty,
    discriminator_loss,
    generator_loss,
    invariance_loss,
    kl_divergence,
    marginal_kl,
    mean_entropy,
    reconstruction_loss,
    virtual_adversarial_loss,
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


def _step(model: AdversarialAutoencoder, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    # Zero every gradient, not only this optimizer's: a phase's backward also reaches
    # parameters it must not update (the discriminators in the generator step).
    model.zero_grad(set_to_none=True)
    with torch.autocast(loss.device.type, enabled=False):  # a bf16 autocast covers the forward pass only
        loss.backward()
        optimizer.step()


def _vat(model: AdversarialAutoencoder, batch: Batch, target_logits: Tensor | None = None) -> Tensor:
    """The virtual adversarial loss of q(y|x) on the unlabeled batch, at the batch's radii (else the
    model's radius) and the model's probe size."""
    eps = model.config.vat_eps if batch.vat_eps is None else batch.vat_eps
    return virtual_adversarial_loss(lambda x: model.encode(x).y_logits, batch.x, eps, target_logits=target_logits)


def reconstruction_phase(model, batch: Batch, optimizers) -> dict[str, Tensor]:
    codes = model.encode(batch.x)
    if model.config.y_regularizer == "imsat" and codes.y_logits is not None:
        # IMSAT's terms alone train q(y|x); the decoder reads it held fixed
        codes = replace(codes, y_logits=codes.y_logits.detach())
    loss = reconstruction_loss(model.decode(model.representation(codes, batch.labels)), batch.x, model.likelihood)
    out = {"reconstruction": loss.detach()}
    if model.cluster_heads is not None:
        penalty = cluster_head_penalty(model.cluster_heads, model.config.eta)
        loss = loss + model.config.head_penalty * penalty
        out["head_penalty"] = penalty.detach()
    _step(model, optimizers["reconstruction"], loss)
    return out


def regularization_phase(model, batch: Batch, optimizers) -> dict[str, Tensor]:
    n = batch.x.shape[0]
    # One encoding serves both steps: the discriminator step does not move the encoder.
    encoded = model.encode(batch.x)
    codes = model.head_codes(encoded)
    # Discriminators: prior samples are real, codes are fake.
    d_loss = sum(
        discriminator_loss(*_judge(model, h, model.sample_prior(h, n, batch.labels), code.detach(), batch.labels))
        for h, code in codes.items()
    )
    _step(model, optimizers["discriminator"], d_loss)
    # Generator: the encoder learns to make its codes pass for prior samples (through the updated
    # discriminators, whose own weights get no gradient here).
    with _frozen(model.discriminators):
        g_loss = sum(generator_loss(model.discriminate(h, code, batch.labels)) for h, code in codes.items())
        out = {"discriminator": d_loss.detach(), "generator": g_loss.detach()}
        if encoded.y_logits is not None:
            g_loss = g_loss + _y_terms(model, batch, encoded.y_logits, out)
        _step(model, optimizers["generator"], g_loss)
    return out


def _judge(model: AdversarialAutoencoder, head: str, prior: Tensor, code: Tensor, labels: Tensor | None):
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


def _y_terms(model: AdversarialAutoencoder, batch: Batch, logits: Tensor, out: dict) -> Tensor:
    """The y head's terms beyond the paper, each off at weight 0: VAT on q(y|x), its invariance to
    small rotations and shifts, and IMSAT's mutual information (the marginal's KL to the prior, the
    mean conditional entropy); each term's value goes into ``out``."""
    c, terms = model.config, {}
    if c.vat_weight:
        terms["vat"] = c.vat_weight, _vat(model, batch, target_logits=logits)
    if c.y_invariance_weight:
        terms["y_invariance"] = (
            c.y_invariance_weight,
            invariance_loss(lambda x: model.encode(x).y_logits, small_transforms(batch.x, model.image_shape), logits),
        )
    if c.y_marginal_weight:
        terms["y_marginal"] = (
            c.y_marginal_weight,
            marginal_kl(logits.softmax(-1), model.priors["y"].probs.to(logits.device)),
        )
    if c.y_entropy_weight:
        terms["y_entropy"] = c.y_entropy_weight, mean_entropy(logits)
    out.update({k: v.detach() for k, (_, v) in terms.items()})
    return sum((w * v for w, v in terms.values()), logits.new_zeros(()))


def smoothing_phase(model, batch: Batch, optimizers) -> dict[str, Tensor]:
    """The y head's terms on the unlabeled batch alone, for the classifier baselines (NN+VAT with
    labels, IMSAT without); the AAE runs the same terms inside its generator step."""
    out: dict[str, Tensor] = {}
    _step(model, optimizers["generator"], _y_terms(model, batch, model.encode(batch.x).y_logits, out))
    return out


def classification_phase(model, batch: Batch, optimizers) -> dict[str, Tensor]:
    if batch.x_labeled is None:
        return {}
    loss = classification_loss(model.encode(batch.x_labeled).y_logits, batch.y_labeled)
    _step(model, optimizers["classification"], loss)
    return {"classification": loss.detach()}


def elbo_phase(model, batch: Batch, optimizers) -> dict[str, Tensor]:
    codes = model.encode(batch.x)
    recon = reconstruction_loss(model.decode(model.representation(codes, batch.labels)), batch.x, model.likelihood)
    conditioned = batch.labels if model.regime.label_to == "discriminator" else None
    kl = kl_divergence(codes.z, codes.mean, codes.logvar, model.prior, conditioned, model.config.kl_free_bits)
    _step(model, optimizers["reconstruction"], recon + kl)
    return {"reconstruction": recon.detach(), "kl": kl.detach()}


PHASES: dict[str, Callable[..., dict[str, Tensor]]] = {
    "reconstruction": reconstruction_phase,
    "regularization": regularization_phase,
    "classification": classification_phase,
    "smoothing": smoothing_phase,
    "elbo": elbo_phase,
}


def train_step(model: AdversarialAutoencoder, batch: Batch, optimizers, phases: tuple[str, ...]) -> dict[str, Tensor]:
    """One minibatch: the phases in order, each with its own optimizer(s)."""
    losses: dict[str, Tensor] = {}
    for name in phases:
        losses.update(PHASES[name](model, batch, optimizers))
    return losses
