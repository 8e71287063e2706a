"""Pinning the CPU's instruction set: the variables, the CLI option, the workflow's jobs."""

import json
import os
import platform
import subprocess
import sys

import pytest

from dcsm_cache import isa
from dcsm_cache.errors import ConfigError
from snakemake_run import DEFAULT, snakemake

X86 = platform.machine().lower() in ("x86_64", "amd64")


def test_avx2_caps_aten_onednn_mkl_and_numpy(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    env = isa.isa_environment("avx2")
    assert {k: v for k, v in env.items() if k != "NPY_DISABLE_CPU_FEATURES"} == {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "MKL_CBWR": "COMPATIBLE",  # MKL's one branch documented as the same on Intel and other processors
    }
    assert {"X86_V4", "AVX512_ICL", "AVX512_SPR", "AVX512_SKX"} <= set(env["NPY_DISABLE_CPU_FEATURES"].split())
    assert isa.isa_environment("native") == {}
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert isa.isa_environment("avx2") == {}  # an x86 pin means nothing elsewhere


def test_an_unknown_isa_is_named_with_the_choices():
    with pytest.raises(ConfigError, match=r"cpu_isa='avx9'.*DCSM_CPU_ISA.*native, avx2"):
        isa.isa_environment("avx9")


@pytest.mark.skipif(not X86, reason="x86-64 only")
def test_pinning_after_torch_was_imported_is_an_error(monkeypatch):
    import torch  # noqa: F401  (imported in this process: the libraries may have read their variables)

    monkeypatch.setattr(isa, "_pinned", False)  # as it was after the test: later stages here keep oneDNN
    for key in isa.CPU_ISAS["avx2"]:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="before torch and numpy are imported.*DCSM_CPU_ISA=avx2"):
        isa.pin_cpu_isa("avx2")
    for key, value in isa.CPU_ISAS["avx2"].items():
        monkeypatch.setenv(key, value)
    assert isa.pin_cpu_isa("avx2")  # already what the process started with: nothing to change
    assert isa._pinned == X86  # and a stage's convolutions will leave oneDNN (pin_torch_kernels)


KERNELS = r"""
import os, sys
os.environ["MKL_VERBOSE"] = "1"  # MKL prints each call with its reproducibility branch (CNR:...)
from dcsm_cache.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)  # a subcommand's --help: the group's options are applied first
except BaseException:
    pass
import numpy as np
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
import torch, torch.nn.functional as F
x = torch.randn(2, 8, 8, 8).contiguous(memory_format=torch.channels_last)
with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
    F.conv2d(x, torch.randn(8, 8, 3, 3))
torch.randn(16, 16) @ torch.randn(16, 16)  # an MKL sgemm
print("aten", torch.backends.cpu.get_cpu_capability())
print("numpy", " ".join(t for t in __cpu_dispatch__ if __cpu_features__.get(t)) or "-")
from dcsm_cache.pipeline.device import resolve_device
resolve_device("cpu")  # where a stage picks its device: under a pin, convolutions leave oneDNN and NNPACK
print("stage", flush=True)
with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
    F.conv2d(x, torch.randn(8, 8, 3, 3))
print("nnpack", torch._C._get_nnpack_enabled())
"""


def kernels(args: list[str], env: dict) -> dict[str, str]:
    """What each library runs in a process that ran `dcsm-cache ARGS` first: ATen's capability, oneDNN's
    instruction set, MKL's reproducibility branch and numpy's dispatch targets in use."""
    env = {k: v for k, v in {**os.environ, **env}.items() if k not in isa.CPU_ISAS["avx2"]}
    out = subprocess.run([sys.executable, "-c", KERNELS, *args], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.splitlines()
    stage = lines[lines.index("stage") :]
    return {
        "stage_onednn": sum(",exec," in line for line in stage if line.startswith("onednn_verbose")),
        "stage_nnpack": next(line.split()[1] for line in stage if line.startswith("nnpack ")),
        "aten": next(line.split()[1] for line in lines if line.startswith("aten ")),
        "onednn": next(line.split("isa:", 1)[1] for line in lines if ",info,cpu,isa:" in line),
        "mkl": next(line.split("CNR:", 1)[1].split()[0] for line in lines if "SGEMM" in line and "CNR:" in line),
        "numpy": next(line.split(" ", 1)[1] for line in lines if line.startswith("numpy ")),
    }


@pytest.mark.skipif(not X86, reason="x86-64 only")
def test_the_cli_pins_every_library_before_the_command_imports_it():
    # (on an AVX2 machine ATen, oneDNN and numpy read AVX2 either way; on an AVX-512 one only pinned runs do)
    for args, env in ((["--cpu-isa", "avx2", "world", "--help"], {}), (["world", "--help"], {"DCSM_CPU_ISA": "avx2"})):
        got = kernels(args, env)
        assert got["aten"] in ("AVX2", "DEFAULT") and "AVX-512" not in got["onednn"], (args, env, got)
        assert got["mkl"] == "COMPATIBLE", (args, env, got)
        assert not {"X86_V4", "AVX512_ICL", "AVX512_SPR", "AVX512_SKX"} & set(got["numpy"].split()), got
        # a stage's convolutions: ATen's im2col and MKL's CNR product, not oneDNN or NNPACK
        assert got["stage_onednn"] == 0 and got["stage_nnpack"] == "False", got
    native = kernels(["world", "--help"], {})
    assert native["mkl"] == "OFF" and native["stage_onednn"] > 0 and native["stage_nnpack"] == "True"


def test_a_bad_value_from_the_environment_is_one_line_and_exit_2():
    env = {**os.environ, "DCSM_CPU_ISA": "avx9"}
    out = subprocess.run(["dcsm-cache", "world", "--help"], capture_output=True, text=True, env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "dcsm-cache: error: cpu_isa='avx9' (config, --cpu-isa or DCSM_CPU_ISA): not one of native, avx2"
    )


def test_every_workflow_job_gets_the_configs_isa(tmp_path):
    """The real Snakefile, its world job run through a `dcsm-cache` on PATH that notes DCSM_CPU_ISA first."""
    shim = tmp_path / "bin" / "dcsm-cache"
    shim.parent.mkdir()
    real = subprocess.run(["which", "dcsm-cache"], capture_output=True, text=True, check=True).stdout.strip()
    shim.write_text(f'#!/bin/sh\necho "$DCSM_CPU_ISA" >> {tmp_path}/seen\nexec {real} "$@"\n')
    shim.chmod(0o755)
    env = {"PATH": f"{shim.parent}:{os.environ['PATH']}"}
    for extra, want in (((), "avx2"), (("--config", "cpu_isa=native"), "native")):
        work = tmp_path / want
        snakemake(work, DEFAULT, "--until", "world", *extra, env=env)
        assert (tmp_path / "seen").read_text().split()[-1] == want
        assert (work / "logs" / "world.log").exists()


@pytest.mark.skipif(not X86, reason="x86-64 only")
def test_a_result_records_the_kernels_it_was_computed_with(stores, tmp_path):
    out = tmp_path / "r.json"
    args = ["eval", "--store", str(stores["shapes_spatial"]), "--scorer", "cosine", "--out", str(out)]
    subprocess.run(["dcsm-cache", "--quiet", "--cpu-isa", "avx2", *args], check=True, capture_output=True)
    hardware = json.loads(out.read_text())["provenance"]["hardware"]
    assert hardware["cpu_kernels"] in ("AVX2", "DEFAULT") and hardware["cpu_pin"] == isa.CPU_ISAS["avx2"]
