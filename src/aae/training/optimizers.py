"""The trainer's optimizers and its weight average: :class:`Optimizers`, one optimizer per
parameter group that the model's phases step (:attr:`aae.model.phases.Phase.groups`), which also
sets their learning rates; and the moving average of ``train.ema``.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

from ..config.schema import TrainConfig
from ..model.phases import stepped_groups


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The paper's optimizers: SGD with momentum 0.9, or Adam with beta1 0.5 (as GANs train), as
    one fused kernel per step where the device has one (the CPU and CUDA do): the same update as
    PyTorch's per-tensor loop, in one pass over the parameters. Its rate is :class:`Optimizers`' to set."""
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=0.9, fused=fused or None)
    return torch.optim.Adam(params, betas=(0.5, 0.999), fused=fused or None)


class Optimizers(dict):
    """An optimizer for each parameter group the model's phases step, by the group's name, each at
    its rate ``train.lr.<group>`` times ``train.lr_gamma`` per milestone of ``train.lr_milestones``
    passed. The rates are set here and nowhere else: when built, when :meth:`schedule` reaches a
    milestone, and after :meth:`load_state_dict` (from the config, not the file: a resumed run
    takes a changed ``train.lr``)."""

    def __init__(self, model, cfg: TrainConfig):
        groups = model.parameter_groups()
        super().__init__((g, make_optimizer(groups[g], cfg)) for g in stepped_groups(model.phases))
        self.cfg, self.factor = cfg, None
        self.schedule(0)

    def schedule(self, epoch: int) -> None:
        """Set the rates of ``epoch`` (counted from 0), where they differ from those set last."""
        factor = self.cfg.lr_gamma ** sum(epoch >= m for m in self.cfg.lr_milestones)
        if factor == self.factor:
            return
        for group, opt in self.items():
            for params in opt.param_groups:
                params["lr"] = self.cfg.lr[group] * factor
        self.factor = factor

    def state_dict(self) -> dict[str, dict]:
        """Each optimizer's state, by group."""
        return {group: opt.state_dict() for group, opt in self.items()}

    def load_state_dict(self, states: dict[str, dict], epoch: int) -> None:
        """Each optimizer's state from ``states``, by group (which kernel steps is this machine's
        choice, not the saved state's), then the rates of ``epoch`` from the config."""
        for group, opt in self.items():
            kernel = [{k: g.get(k) for k in ("fused", "foreach")} for g in opt.param_groups]
            opt.load_state_dict(states[group])
            for params, chosen in zip(opt.param_groups, kernel):
                params.update(chosen)
                for param in params["params"] if chosen.get("fused") else []:  # a fused step counts on the device
                    state = opt.state.get(param, {})
                    if torch.is_tensor(state.get("step")):
                        state["step"] = state["step"].to(param.device, torch.float32)
        self.factor = None
        self.schedule(epoch)


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
