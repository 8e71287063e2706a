"""The work after the model, on the model's device: unit-norm float16 rows, copied to the host without waiting.

    tokens = unit_fp16(tok)                                   # [B, P, D] float16, on tok's device
    host, ready = to_host({"image/tokens": tokens, "image/pooled": pooled.float().half()})
    ready()                                                   # (another thread) before reading `host`

A store keeps tokens as float16 unit vectors. Normalising in float32 and rounding to float16 where
the model ran means the host receives half the bytes a float32 copy would, and the rounding is the
same either way (IEEE round-to-nearest-even of the same float32 values), so the store's bytes do not
depend on where it happened. On CUDA the rows go to pinned host memory by asynchronous copies on
the current stream (torch's caching host allocator keeps and reuses the pinned blocks), and `ready`
waits for the copy's event, so the thread that launches the model never waits for the bytes; on the
CPU the rows already are in host memory and `ready` does nothing.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

__all__ = ["to_host", "unit_fp16"]

_EPS = 1e-12  # F.normalize's


def unit_fp16(x: torch.Tensor) -> torch.Tensor:
    """`F.normalize(x.float(), dim=-1).half()` bit for bit, in one pass less: the float32 quotients
    are rounded to float16 as they are stored, never held as a float32 tensor first.

    On the CPU this runs on one thread. Extraction's writer threads keep the cores busy meanwhile,
    and a parallel region waits at its end for every thread of its team: one whose core a writer
    holds stalls all of them, for longer than the work takes on one thread. The sums are per row, so
    the thread count does not change the values."""
    x = x.float()
    out = torch.empty(x.shape, dtype=torch.float16, device=x.device)
    threads = torch.get_num_threads() if x.device.type == "cpu" else 1
    if threads > 1:
        torch.set_num_threads(1)
    try:
        return torch.div(x, x.norm(2, -1, keepdim=True).clamp_min(_EPS), out=out)
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def to_host(tensors: dict[str, torch.Tensor | np.ndarray]) -> tuple[dict[str, np.ndarray], Callable[[], None]]:
    """Host copies of `tensors` (numpy arrays pass through), and a function that waits until they are there."""
    out, cuda = {}, False
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.device.type == "cuda":
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            out[name], cuda = host.copy_(t, non_blocking=True), True
        else:
            out[name] = t
    if not cuda:
        return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in out.items()}, _nothing
    event = torch.cuda.Event()
    event.record()
    views = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in out.items()}  # (no bytes read yet)
    return views, event.synchronize


def _nothing() -> None:
    pass
