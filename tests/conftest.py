"""Shared fixtures: a tiny shapes world, its manifests and stores extracted with a tiny random model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import write_manifest
from dcsm_cache.pipeline.world import WorldConfig, generate_world

TINY_BACKBONE = "shapes-clip-tiny"  # registered open_clip config, 32 px, random weights
TINY_WORLD = WorldConfig(seed=0, n_pretrain=40, n_train=48, n_val=12, n_test=12, n_heldout=6, n_heldout_val=12)


def pytest_configure(config):
    """In a pytest-xdist worker, torch's threads share the cores with the other workers: N workers on N cores
    run one thread each, not N each (OpenMP teams that wait for a core another worker holds stall)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(autouse=True, scope="session")
def _glibc_malloc_defaults_in_this_process():
    """`dcsm-cache train` run in this process (CliRunner) would keep freed memory for the rest of the pytest run
    (heap.py); marked done, so it does not. test_heap.py checks the setting in processes of its own."""
    from dcsm_cache import heap

    heap._done = True


@pytest.fixture(autouse=True)
def _torch_threads_as_they_were():
    """A test whose stage sets torch's thread count (pretrain, train: as their commands do, for the process)
    or its kernels (a `cpu_isa` pin turns oneDNN off, isa.pin_torch_kernels) leaves them as it found them:
    one thread makes some kernels' last bits depend on the batch, and oneDNN's GELU is not ATen's."""
    import torch

    threads, onednn, nnpack = torch.get_num_threads(), torch.backends.mkldnn.enabled, torch._C._get_nnpack_enabled()
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = onednn
    torch.backends.nnpack.set_flags(nnpack)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    generate_world(TINY_WORLD, root)
    return root


@pytest.fixture(scope="session")
def manifests(world, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("manifests")
    paths = {}
    for name in ("shapes_train", "shapes_spatial"):
        paths[name] = out / f"{name}.json"
        write_manifest(load_benchmark(name, str(world)), paths[name])
    return paths


@pytest.fixture(scope="session")
def stores(manifests, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("stores")
    paths = {}
    for name, manifest in manifests.items():
        paths[name] = out / f"{name}.zarr"
        extract(manifest, TINY_BACKBONE, paths[name], ExtractConfig(batch_size=16, device="cpu", progress=False))
    return paths


@pytest.fixture(scope="session")
def tiny_scorer(stores, tmp_path_factory) -> Path:
    """A DCSM scorer trained for two steps on the tiny training store (for report, show, score and gallery)."""
    from dcsm_cache.pipeline.train import TrainConfig, train

    out = tmp_path_factory.mktemp("scorer") / "dcsm.pt"
    train(stores["shapes_train"], out, TrainConfig(steps=2, batch_size=8, device="cpu", progress=False, text_len=16))
    return out


@pytest.fixture(scope="session")
def default_run(tmp_path_factory, worker_id) -> Path:
    """A folder where the embedded default ran at tiny size through the real snakemake (tests/snakemake_run.py).
    Shared by every test that reads it, in every pytest-xdist worker (built once, under a file lock, in the
    run's shared temporary folder): a test that changes files works in a copy."""
    from filelock import FileLock
    from snakemake_run import DEFAULT, SNAKEMAKE, snakemake

    if SNAKEMAKE is None:
        pytest.skip("snakemake binary not on PATH")
    if worker_id == "master":  # no xdist: this process is the whole run
        folder = tmp_path_factory.mktemp("default")
        snakemake(folder, DEFAULT)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / "default"
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").exists():
            folder.mkdir(exist_ok=True)
            snakemake(folder, DEFAULT)
            (folder / ".built").touch()
    return folder
