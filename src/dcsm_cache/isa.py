"""Pin the CPU's code paths, so that a run gives the same floats on any x86-64 machine.

    pin_cpu_isa("avx2")   # before torch and numpy are imported: every library on one code path

PyTorch picks its CPU kernels by what the processor offers: ATen's vectorised loops (GELU, softmax,
reductions), oneDNN's convolutions and MKL's matrix products each have an AVX2 and an AVX-512
version, and they sum in different orders. So the embedded default pretrained on an AVX-512
machine is another model, to the last bits, than on an AVX2 one, and the results table differs by
a few points (the pretraining's trajectory). `cpu_isa: avx2` (config; `dcsm-cache --cpu-isa avx2`,
or `DCSM_CPU_ISA=avx2`) sets, before torch or numpy is imported, what each library documents:

- ATen: `ATEN_CPU_CAPABILITY=avx2`, its vectorised loops at AVX2;
- oneDNN: `ONEDNN_MAX_CPU_ISA=AVX2`, no AVX-512, VNNI or AMX kernels;
- MKL: `MKL_ENABLE_INSTRUCTIONS=AVX2` and `MKL_CBWR=COMPATIBLE`. MKL also picks its code by vendor:
  its conditional numerical reproducibility branches other than AUTO and COMPATIBLE exist on Intel
  processors only (`MKL_CBWR=AVX2` runs AVX2 code on an Intel Xeon and the AUTO branch on an AMD
  EPYC), and COMPATIBLE, one SSE2 code path without approximate reciprocals, is the one its
  documentation promises gives the same results on Intel and other processors;
- numpy: `NPY_DISABLE_CPU_FEATURES`, its AVX-512 dispatch targets off (numpy 2's names and 1.26's);
- torch's convolutions off oneDNN and NNPACK (`pin_torch_kernels`, once torch is imported): oneDNN picks
  kernels and blocking by the processor beyond its instruction set and documents its results as
  reproducible on one platform only, so under a pin a convolution is ATen's im2col and MKL's product.

The thread count is the other half (each library splits its sums by threads): the default's
config fixes it per stage. `native` (the default of the CLI) leaves every choice to the libraries.
The pin is for x86-64; elsewhere it is a no-op. What is checked: each variable reaches its library
(tests/test_isa.py reads ATen's level, oneDNN's and MKL's verbose lines and numpy's dispatch
table in a child process). docs/results.md compares the default's table computed on two machines.
"""

from __future__ import annotations

import os
import platform
import sys

from .errors import ConfigError

# numpy's dispatch targets above AVX2: numpy 2 names them X86_V4, AVX512_ICL, AVX512_SPR; 1.26 by feature
_NUMPY_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL"

#: instruction set -> the variables that put ATen, oneDNN, MKL and numpy on one code path (module doc)
CPU_ISAS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "MKL_CBWR": "COMPATIBLE",
        "NPY_DISABLE_CPU_FEATURES": _NUMPY_AVX512,
    },
}
_pinned = False  # whether pin_cpu_isa set a code path in this process (pin_torch_kernels reads it)
ENV_VAR = "DCSM_CPU_ISA"  # what the workflow sets from its config, and `dcsm-cache --cpu-isa` reads


def isa_environment(isa: str) -> dict[str, str]:
    """The environment variables that pin `isa` on this machine ({} for `native`, or off x86-64)."""
    if isa not in CPU_ISAS:
        raise ConfigError(f"cpu_isa={isa!r} (config, --cpu-isa or {ENV_VAR}): not one of {', '.join(CPU_ISAS)}")
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    return dict(CPU_ISAS[isa])


def pin_cpu_isa(isa: str) -> dict[str, str]:
    """Set `isa`'s variables in this process (and so its children); what was set.

    The libraries read them once, at their first call (numpy at its import), so this must run before
    torch and numpy are imported: once they are, asking for other values than they started with is an error."""
    env = isa_environment(isa)
    loaded = [m for m in ("torch", "numpy") if m in sys.modules]
    if loaded and any(os.environ.get(k) != v for k, v in env.items()):
        raise ConfigError(
            f"cpu_isa={isa!r} must be set before {' and '.join(loaded)} {'are' if len(loaded) > 1 else 'is'} "
            f"imported (here {'they' if len(loaded) > 1 else 'it'} already {'were' if len(loaded) > 1 else 'was'}): "
            f"set {ENV_VAR}={isa} in the environment instead"
        )
    os.environ.update(env)
    global _pinned
    _pinned = bool(env)
    return env


def pin_torch_kernels() -> None:
    """Under a pin, keep torch's convolutions off oneDNN and NNPACK (a no-op otherwise; idempotent).

    Both choose kernels and blocking by the processor beyond its instruction set (oneDNN documents its
    results as reproducible "on a given platform" only), so a convolution goes through ATen's own
    im2col and MKL's matrix product, on the code path MKL_CBWR names. Called where a stage picks its
    device (pipeline/device.py), after torch is imported."""
    if not _pinned:
        return
    import torch

    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
