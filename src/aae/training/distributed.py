"""Multi-process training on PyTorch's own distributed engine, as ``torchrun`` launches it.

    torchrun --standalone --nproc-per-node 2 -m aae.cli train mnist_semi_1000

Every process holds the whole model and the whole (in-memory) data set. Each epoch, all
processes draw the same permutation and process i takes every WORLD_SIZE-th minibatch from
offset i, so an epoch costs each process 1/WORLD_SIZE of the steps; before every optimizer step
the gradients of that optimizer's parameters are averaged across processes (one all-reduce of
one flat buffer, what ``DistributedDataParallel`` does for a model with a single forward; this
model has several phases, each stepping its own subset of parameters, so the averaging hooks the
optimizers instead of the forward). The weights therefore stay identical everywhere; process 0
alone evaluates, writes the logs, checkpoints and figures. ``train.batch_size`` is per process:
the effective batch is WORLD_SIZE times larger.

Backend: NCCL on CUDA (each process takes the GPU ``LOCAL_RANK``), gloo on the CPU.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (WORLD_SIZE > 1 in the environment), once; return
    this process's device: ``cuda:LOCAL_RANK`` where the run is on CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def average_gradients_before_step(optimizer: torch.optim.Optimizer) -> None:
    """Make ``optimizer.step()`` first replace each gradient by its mean over the processes."""

    def hook(opt, args, kwargs) -> None:
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    optimizer.register_step_pre_hook(hook)


def broadcast_from_main(module: torch.nn.Module) -> None:
    """Every process starts from process 0's parameters and buffers."""
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def share(module: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> None:
    """Under several processes: every process starts from process 0's weights, and each optimizer
    steps on the gradients' mean over the processes. Nothing with one process."""
    if world_size() > 1:
        broadcast_from_main(module)
        for opt in optimizers.values():
            average_gradients_before_step(opt)


def mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over the processes (itself when there is one)."""
    if world_size() == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / world_size()


def shard(perm: torch.Tensor, steps: int, batch_size: int) -> torch.Tensor:
    """This process's minibatches of an epoch's permutation, shape (steps // WORLD_SIZE, batch_size):
    minibatch i of the single-process epoch goes to process i % WORLD_SIZE."""
    w = world_size()
    batches = perm[: steps * batch_size].view(steps, batch_size)
    return batches[rank() : (steps // w) * w : w]


def finish(code: int = 0) -> None:
    """End a process of a multi-process run: wait for the others, then exit at once with ``code``.
    Tearing gloo down in the interpreter's own exit sometimes aborts a process ("terminate called
    without an active exception") after everything is written, which torchrun reports as a
    failed run; every file has been written atomically by then, so nothing is left to clean up."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
