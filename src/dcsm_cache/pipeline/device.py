"""Device and precision: which torch device a stage runs on, and mixed precision around a forward pass.

    dev = resolve_device("auto")                 # cuda where there is one, else cpu
    with autocast(dev, "bf16"): tokens = model(x)

Only torch is imported here, so training and evaluation from the cache never load open_clip.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError, DeviceError
from ..isa import pin_torch_kernels

__all__ = ["PRECISIONS", "autocast", "resolve_device", "resolve_precision"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA where there is none is an error, never a fallback.
    Under a `cpu_isa` pin, torch's CPU convolutions leave oneDNN here (isa.pin_torch_kernels)."""
    pin_torch_kernels()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise DeviceError(f"device {device!r} is not a device name: use auto, cpu, cuda or cuda:N") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but this machine has no CUDA device: use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto`: bf16 on CUDA, fp32 elsewhere; anything else must be a known precision."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of auto, {', '.join(PRECISIONS)}")
    return precision


def autocast(device: torch.device | str, precision: str = "fp32"):
    """A context for mixed precision: nothing for fp32, torch.autocast for bf16/fp16.

    Weights stay fp32; the token adapters run their final projections in fp32 inside it (see
    `tokens.adapters.project`). Meant for CUDA; on CPU it works too (slowly), which is what tests use.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
