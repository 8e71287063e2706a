"""Where a DCSM training step's time goes, on a store the embedded default's size (cProfile, torch.profiler).

    python benchmarks/profile_train.py --steps 200 --keep runs/profile_train   # reuses the store there

Builds the shapes world's training set at the embedded default's size (6,000 training and 600
validation items), extracts it with the shapes-clip architecture (random weights: the time of a
step does not depend on them), then trains with the embedded default's settings (batch 16, text_len
16, scorer without the global cosine) and prints the functions and torch operators that take the
time. Last line: one JSON object (steps/s, the share of the time in the scorer's forward and
backward, in the optimiser, in opening the store and in reading and assembling batches).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import time
from pathlib import Path

import torch

from dcsm_cache.errors import DcsmCacheError
from dcsm_cache.heap import keep_freed_memory
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.dcsm import ScorerConfig
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import write_manifest
from dcsm_cache.pipeline.train import TrainConfig, train
from dcsm_cache.pipeline.world import WorldConfig, generate_world
from dcsm_cache.stores import FeatureStore


def store_of_default_size(folder: Path, n_train: int, n_val: int) -> Path:
    store = folder / "shapes_train.zarr"
    try:
        return FeatureStore.open(store).path  # complete, this schema
    except DcsmCacheError:
        pass
    world = WorldConfig(seed=0, n_pretrain=8, n_train=n_train, n_val=n_val, n_test=4, n_heldout=2, n_heldout_val=0)
    generate_world(world, folder / "world")
    write_manifest(load_benchmark("shapes_train", str(folder / "world")), folder / "m.json")
    extract(folder / "m.json", "shapes-clip", store, ExtractConfig(device="cpu", progress=False, overwrite=True))
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--n-train", type=int, default=6000)
    ap.add_argument("--n-val", type=int, default=600)
    ap.add_argument("--keep", type=Path, help="folder to build the store in, and reuse on the next run")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    keep_freed_memory()  # the allocator settings `dcsm-cache train` runs with (heap.py)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        store = store_of_default_size(folder, args.n_train, args.n_val)
        cfg = TrainConfig(
            steps=args.steps,
            text_len=16,
            device="cpu",
            progress=False,
            eval_every=10**6,
            scorer=ScorerConfig(global_cosine=False, residual=False),
        )
        profiler = cProfile.Profile()
        t = time.perf_counter()
        profiler.enable()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            train(store, folder / "dcsm.pt", cfg)
        profiler.disable()
        seconds = time.perf_counter() - t
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(args.top)
    print(text.getvalue())
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    cum = {f"{Path(k[0]).name}:{k[2]}": v[3] for k, v in stats.stats.items()}  # cumulative seconds per function

    def share(*names: str) -> float:
        return round(sum(cum.get(n, 0.0) for n in names) / seconds, 3)

    summary = {
        "steps": args.steps,
        "seconds": round(seconds, 2),
        "steps_s": round(args.steps / seconds, 2),
        "forward": share("scorer.py:forward"),
        "backward": share("_tensor.py:backward"),
        "optimizer": share("optimizer.py:wrapper", "lr_scheduler.py:step"),
        "open_store": share("cache.py:open"),
        "batches": share("data.py:epoch", "data.py:__init__"),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
