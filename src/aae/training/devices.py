"""Where and at what precision a run computes: the device (``--device``), the autocast dtype
(``train.precision``) and the CPU feature flags ``train.precision = auto`` decides by; and the
random streams of the devices, which a checkpoint keeps.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ..errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if there is a GPU, else Apple's MPS, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} but this machine has no CUDA GPU; use auto or cpu")
    return device


def pick_precision(name: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """The autocast dtype for ``train.precision`` on ``device`` (None: float32) and why. ``auto``
    takes bf16 only where matrix units run it natively: on CPUs without them bf16 is many times slower."""
    if name == "fp32":
        return None, "fp32 (train.precision = fp32)"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        native = major >= 8
        why = f"CUDA compute capability {major}.{minor}"
    elif device.type == "cpu":
        flags = cpu_flags()
        native = bool(flags & {"amx_bf16", "avx512_bf16"})
        why = (
            f"CPU has {' and '.join(sorted(flags & {'amx_bf16', 'avx512_bf16'}))}"
            if native
            else "CPU has neither amx_bf16 nor avx512_bf16"
        )
    else:
        native, why = False, f"{device.type} device"
    if name == "bf16":
        return torch.bfloat16, f"bf16 (train.precision = bf16; {why}{'' if native else ': expect it to be slow'})"
    return (torch.bfloat16, f"bf16 (auto: {why})") if native else (None, f"fp32 (auto: {why})")


def step_autocast(device: torch.device, dtype: torch.dtype | None):
    """The autocast around one training step: bf16 forward passes where ``dtype`` is set, a no-op
    otherwise. Its cache of weights cast to bf16 is off: a step runs several phases, each stepping
    its optimizer, and with the cache the later phases would compute with the bf16 copies of the
    weights from before the earlier phases' updates (in the semi-supervised AAE that cost 18 nats of
    reconstruction and 1.5 points of test error by the third epoch)."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=False)


def flushing_denormals() -> bool:
    """Whether this thread's CPU arithmetic flushes subnormal floats to zero
    (``torch.set_flush_denormal``)."""
    return float(torch.tensor([1e-39]) * 2.0) == 0.0


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Subnormal floats (below 1.2e-38) read and computed as zero on the CPU while training, as
    they are on GPUs, and the setting before restored after. Late in a long run some optimizer
    moments and weights decay into that range, where x86 arithmetic is many times slower: an epoch
    of the likelihood recipe at epoch 171 took 86 s without and 50 s with (bf16, AMX Xeon).

    The setting is per thread, and torch's worker threads keep the one they started with: this sets
    the calling thread, which with one thread is all of training. The command line sets it for the
    whole process before any worker starts (``aae.cli.main``)."""
    before = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def _first_cpu() -> dict[str, str]:
    """The fields of the first CPU's block of /proc/cpuinfo (Linux); else none."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags() -> set[str]:
    """The CPU's feature flags, where the system tells them (Linux); else none."""
    return set(_first_cpu().get("flags", "").split())


def cpu_model() -> str:
    """The CPU's model name with its family and model numbers (Linux: one name such as "AMD EPYC"
    covers CPUs of very different speeds), else what the platform says."""
    fields = _first_cpu()
    name = fields.get("model name", "")
    if name and "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name or platform.processor() or platform.machine()


SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
"""the CPU features that decide how fast the training step runs (and whether auto takes bf16)"""


def machine(device: torch.device, precision: str) -> dict:
    """Where a run trains, as its record keeps it: the CPU (model and the flags that matter for
    speed), threads, GPU, torch and the precision chosen, and why."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cpu_flags": [f for f in SPEED_FLAGS if f in flags],
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "torch": torch.__version__,
        "precision": precision,
    }


def rng_state() -> dict:
    """The random streams training draws from: torch's, and each CUDA device's."""
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def load_rng_state(rng: dict | None) -> None:
    """Set the random streams of :func:`rng_state` (the CUDA ones where this machine has as many devices)."""
    if rng is None:
        return
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
