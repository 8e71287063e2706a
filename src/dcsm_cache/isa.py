"""Pin the CPU's vector instructions, so that a run gives the same floats on any x86-64 machine.

    pin_cpu_isa("avx2")   # before torch is imported: ATen, oneDNN and MKL run their AVX2 code

PyTorch picks its CPU kernels by what the processor offers: ATen's vectorised loops (GELU, softmax,
reductions), oneDNN's convolutions and MKL's matrix products each have an AVX2 and an AVX-512
version, and they sum in different orders. So the embedded default pretrained on an AVX-512
machine is another model, to the last bits, than on an AVX2 one, and the results table differs by
a few points (the pretraining's trajectory; README "Results"). Each library reads one environment
variable for the highest instruction set it may use, at its first call, so `cpu_isa: avx2`
(config; `dcsm-cache --cpu-isa avx2`, or `DCSM_CPU_ISA=avx2`) sets all three before torch is
imported. On an AVX-512 machine it then computes what an AVX2 machine does: the default's results
table, all eighteen numbers, came out identical on both (benchmarks/RESULTS.md, seventh session),
about 5% slower than its own kernels. `native` (the default) leaves the choice to the
libraries. The pin is for x86-64; elsewhere it is a no-op.
"""

from __future__ import annotations

import os
import platform
import sys

from .errors import ConfigError

#: instruction set -> the variables that cap ATen, oneDNN and MKL at it
CPU_ISAS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}
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

    The libraries read them once, at their first call, so this must run before torch is imported:
    once it is, asking for other values than it was started with is an error."""
    env = isa_environment(isa)
    if "torch" in sys.modules and any(os.environ.get(k) != v for k, v in env.items()):
        raise ConfigError(
            f"cpu_isa={isa!r} must be set before torch is imported (here it already was): "
            f"set {ENV_VAR}={isa} in the environment instead"
        )
    os.environ.update(env)
    return env
