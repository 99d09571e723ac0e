"""The losses. Networks give logits; sigmoids and softmaxes live only here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.augment import small_transforms
from .priors import Gaussian, Prior


def reconstruction_loss(out: Tensor, x: Tensor, output: str | Callable = "bernoulli") -> Tensor:
    """-log p(x|r), summed over pixels and averaged over the batch.

    ``bernoulli``: cross-entropy of sigmoid(out) against x in [0, 1]; ``gaussian``: squared error / 2;
    a callable (a :class:`~aae.model.likelihood.ColumnLikelihood`): its value.
    """
    if callable(output):
        return output(out, x)
    out = out.float()  # losses in float32 under a bf16 autocast
    if output == "bernoulli":
        per = F.binary_cross_entropy_with_logits(out, x, reduction="none")
    else:
        per = 0.5 * (out - x) ** 2
    return per.sum(1).mean()


def discriminator_loss(on_prior: Tensor, on_codes: Tensor) -> Tensor:
    """The discriminator tells prior samples (real, target 1) from codes (fake, target 0)."""
    on_prior, on_codes = on_prior.float(), on_codes.float()
    return F.binary_cross_entropy_with_logits(on_prior, torch.ones_like(on_prior)) + F.binary_cross_entropy_with_logits(
        on_codes, torch.zeros_like(on_codes)
    )


def generator_loss(on_codes: Tensor) -> Tensor:
    """The encoder, as generator, wants its codes taken for prior samples (non-saturating form)."""
    on_codes = on_codes.float()
    return F.binary_cross_entropy_with_logits(on_codes, torch.ones_like(on_codes))


def classification_loss(y_logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(y_logits.float(), labels)


def part_logits(prior: Prior, z: Tensor) -> Tensor:
    """(n, n_parts): log p(z | part k) of each code under each part of ``prior``, in float32 (the
    densities fall far out of bf16's range): softmax of it is the code's part posterior q(k|x)."""
    with torch.autocast(z.device.type, enabled=False):
        return prior.part_log_probs(z.float())


def part_loss(prior: Prior, z: Tensor, labels: Tensor) -> Tensor:
    """The cross-entropy of each labeled code's own part of ``prior`` (labels -1: unlabeled, left
    out), the parts weighed by their densities at z; 0 without labeled codes."""
    labeled = labels >= 0
    if not labeled.any():
        return z.new_zeros(())
    return F.cross_entropy(part_logits(prior, z[labeled]), labels[labeled])


def marginal_kl(y: Tensor, probs: Tensor) -> Tensor:
    """KL(mean of the batch's q(y|x) || Cat(probs)): the analytic estimate, on one minibatch, of how far
    the aggregated categorical posterior is from its prior (what the y discriminator judges)."""
    mean = y.float().mean(0).clamp_min(1e-12)
    return (mean * (mean.log() - probs.clamp_min(1e-12).log())).sum()


def mean_entropy(logits: Tensor) -> Tensor:
    """Mean over the batch of the entropy of softmax(logits), in nats: H(Y|X) on one minibatch."""
    log_p = F.log_softmax(logits.float(), 1)
    return -(log_p.exp() * log_p).sum(1).mean()


def _unit(d: Tensor) -> Tensor:
    return d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (d.dim() - 1))


VAT_XI = 1e-2
"""the norm of the power iteration's probe (small against any radius the configs use)"""


def virtual_adversarial_loss(
    logits_of: Callable[[Tensor], Tensor],
    x: Tensor,
    eps: float | Tensor,
    xi: float = VAT_XI,
    target_logits: Tensor | None = None,
) -> Tensor:
    """KL(p(y|x) || p(y|x + r)) at the perturbation r of norm ``eps`` (a float, or (n, 1) for one
    radius per point) that changes p(y|x) most
    (virtual adversarial training, Miyato et al. 2018; one power iteration from a random start,
    probing at norm ``xi``). p(y|x) is held fixed, so only the perturbed side is trained; pass
    ``target_logits`` when the caller already has them.

    Under a bf16 autocast the probe's change to p(y|x) is smaller than bf16's rounding, so the
    direction would be rounding noise: there the target and the probe run in float32, and only
    the final perturbed pass in bf16."""
    low_precision = torch.is_autocast_enabled(x.device.type)
    with torch.autocast(x.device.type, enabled=False):
        with torch.no_grad():
            if target_logits is None or low_precision:
                target_logits = logits_of(x)
            target = target_logits.detach().float().log_softmax(-1)
        probe = (xi * _unit(torch.randn_like(x))).requires_grad_()
        kl = _kl_from_held(target, logits_of(x + probe))
        direction = torch.autograd.grad(kl, probe)[0]
    return _kl_from_held(target, logits_of(x + eps * _unit(direction)))


def invariance_loss(logits_of: Callable[[Tensor], Tensor], view: Tensor, target_logits: Tensor) -> Tensor:
    """KL(p(y|x) || p(y|T(x))) for the transformed images ``view`` = T(x), with p(y|x) (its logits
    ``target_logits``) held fixed, as in VAT, so only the transformed side is trained."""
    return _kl_from_held(target_logits.detach().float().log_softmax(-1), logits_of(view))


def _kl_from_held(target: Tensor, logits: Tensor) -> Tensor:
    """Mean over the batch of KL(p || q), p the held log-probabilities ``target``, q the softmax of
    ``logits`` (in float32): the divergence VAT and the invariance term train q by."""
    return F.kl_div(logits.float().log_softmax(-1), target, log_target=True, reduction="batchmean")


def cluster_head_penalty(heads: Tensor, eta: float) -> Tensor:
    """Sum over pairs of cluster heads of max(0, eta - distance) (Section 7): zero once every
    two heads are at least ``eta`` apart."""
    m = heads.shape[0]
    i, j = torch.triu_indices(m, m, offset=1, device=heads.device)
    dist = (heads[i] - heads[j]).norm(dim=1)
    return F.relu(eta - dist).sum()


def kl_divergence(
    z: Tensor, mean: Tensor, logvar: Tensor, prior: Prior, labels: Tensor | None = None, free_bits: float = 0.0
) -> Tensor:
    """KL(q(z|x) || p(z)) averaged over the batch: closed form against a Gaussian prior, else a
    one-sample Monte Carlo estimate log q(z|x) - log p(z) at the reparametrized ``z``. With
    ``free_bits`` (Kingma et al. 2016) each dimension's batch-mean KL counts as at least that many
    nats (the whole code's, against a non-Gaussian prior), so the loss does not push it below."""
    mean, logvar = mean.float(), logvar.float()
    if isinstance(prior, Gaussian):
        var_ratio = logvar.exp() / prior.std**2
        kl = 0.5 * (var_ratio + mean.pow(2) / prior.std**2 - 1 - var_ratio.log())
        return kl.mean(0).clamp_min(free_bits).sum()
    z = z.float()
    log_q = (-0.5 * ((z - mean) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum(1)
    return (log_q - prior.log_prob(z, labels)).mean().clamp_min(free_bits * z.shape[1])


# -- the y head's terms beyond the paper -------------------------------------------------------
@dataclass
class YHead:
    """What a term of the y head reads, on the unlabeled batch: q(y|x)'s ``logits`` of the images
    ``x``, ``logits_of`` (images -> logits: q(y|.) read elsewhere), the VAT radius ``eps`` (a
    float, or one per image), the categorical prior's ``probs`` and the images' ``image_shape``
    (the model's; None: square, one channel)."""

    logits: Tensor
    x: Tensor
    logits_of: Callable[[Tensor], Tensor]
    eps: float | Tensor
    probs: Tensor
    image_shape: tuple[int, ...] | None = None


Y_TERMS: dict[str, tuple[str, Callable[[YHead], Tensor]]] = {
    "vat": ("vat_weight", lambda q: virtual_adversarial_loss(q.logits_of, q.x, q.eps, target_logits=q.logits)),
    "y_invariance": (
        "y_invariance_weight",
        lambda q: invariance_loss(q.logits_of, small_transforms(q.x, q.image_shape), q.logits),
    ),
    "y_marginal": ("y_marginal_weight", lambda q: marginal_kl(q.logits.softmax(-1), q.probs)),
    "y_entropy": ("y_entropy_weight", lambda q: mean_entropy(q.logits)),
}
"""The y head's terms beyond the paper (VAT, invariance, IMSAT's two), by the name each is logged
under: the model key weighting it (off at 0) and its loss. The encoder's generator step, and the
classifier baselines' smoothing phase, add every term whose weight is set, in this order."""

Y_TERM_WEIGHTS = tuple(weight for weight, _ in Y_TERMS.values())
"""the model keys weighting the y head's terms"""
