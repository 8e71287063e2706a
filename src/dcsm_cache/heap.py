"""Keep freed memory in the process's heap, so that a training step's tensors reuse it.

    keep_freed_memory()  # once, before the first tensor: `dcsm-cache train` does

PyTorch's CPU tensors come straight from `malloc`. With glibc's defaults, a block over the mmap
threshold (128 KiB, rising to at most 32 MiB as such blocks are freed) is mapped fresh and unmapped
on free, and a heap top over the trim threshold is handed back to the kernel: so every step of a
training loop that makes a few dozen 10 MB tensors page-faults all of them in again. Measured on
the embedded default's DCSM training (200 steps, 2 cores): 1.99 million minor page faults and 22.0 s,
against 151,000 and 17.7 s with the three settings below, the same peak memory and the same weights,
bit for bit (they change where memory comes from, never what is computed).

Only training sets them. Extraction of the ViT-B-16 architecture on the CPU ran 6% faster with them
but peaked 19% higher (1.71 against 1.43 GB), and pretraining ran no faster: both keep glibc's
defaults.

This is glibc's own knob (`mallopt`, the same settings as its MALLOC_*_ environment variables),
what PyTorch's CPU tuning guide gets from swapping in jemalloc or tcmalloc. Elsewhere (macOS,
musl), or where the user set those variables or preloaded another allocator, it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
_SETTINGS = (
    (_M_MMAP_THRESHOLD, 1 << 30),  # blocks up to 1 GiB come from the heap, and are reused when freed
    (_M_TRIM_THRESHOLD, 1 << 30),  # a free heap top up to 1 GiB stays mapped
    (_M_TOP_PAD, 64 << 20),  # grow the heap 64 MiB at a time (address space; pages are touched on use)
)
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "LD_PRELOAD")
_done = False


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or no such name
        return False


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory; whether it did (once per process)."""
    global _done
    if _done or not _glibc() or any(os.environ.get(k) for k in _ENV):
        return _done
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    _done = all(libc.mallopt(option, value) == 1 for option, value in _SETTINGS)
    return _done
