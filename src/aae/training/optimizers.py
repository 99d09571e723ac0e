"""The trainer's optimizers and its weight average: one optimizer per parameter group that the
model's phases step (:data:`OPTIMIZERS_OF`), and the moving average of ``train.ema``.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

from ..config.schema import TrainConfig

OPTIMIZERS_OF = {
    "reconstruction": ("reconstruction",),
    "elbo": ("reconstruction",),
    "regularization": ("discriminator", "generator"),
    "classification": ("classification",),
    "smoothing": ("generator",),
}
"""the optimizers each phase steps; the VAE's ELBO steps the reconstruction optimizer"""


def make_optimizer(params, phase: str, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The paper's optimizers: SGD with momentum 0.9, or Adam with beta1 0.5 (as GANs train), as
    one fused kernel per step where the device has one (the CPU and CUDA do): the same update as
    PyTorch's per-tensor loop, in one pass over the parameters."""
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr[phase], momentum=0.9, fused=fused or None)
    return torch.optim.Adam(params, lr=cfg.lr[phase], betas=(0.5, 0.999), fused=fused or None)


def phase_optimizers(model, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """An optimizer for each of the model's parameter groups that one of its phases steps."""
    groups, needed = model.parameter_groups(), {o for p in model.phases for o in OPTIMIZERS_OF[p]}
    return {k: make_optimizer(groups[k], k, cfg) for k in groups if k in needed}


def ema_with_warmup(decay: float):
    """The update of an exponential moving average of weights whose decay grows as n / (n + 1) until it
    reaches ``decay``: the plain mean of the first 1 / (1 - decay) steps, then the moving average, so
    a run shorter than the averaging window is not stuck near its initial weights."""

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():  # a counter such as batch norm's num_batches_tracked
            torch._foreach_copy_(averaged, current)
            return
        # 1 - min(decay, n / (n + 1)), kept on the device: no host sync per step on a GPU
        weight = (n.to(averaged[0].dtype) + 1).reciprocal().clamp_min(1 - decay)
        torch._foreach_lerp_(averaged, current, weight)

    return update


def weight_average(model: torch.nn.Module, decay: float) -> AveragedModel | None:
    """The moving average of ``model``'s weights and buffers for ``train.ema = decay``; None at 0."""
    if decay > 0:
        return AveragedModel(model, multi_avg_fn=ema_with_warmup(decay), use_buffers=True)
    return None
