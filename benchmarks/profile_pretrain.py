"""Where a pretraining step of the shapes-world CLIP goes, under one `cpu_isa`.

    python benchmarks/profile_pretrain.py --items manifests/shapes_pretrain.json --isa avx2 --steps 12
    python benchmarks/profile_pretrain.py --items manifests/shapes_pretrain.json --isa native --steps 12

Runs `pretrain` (the default's arch, batch 128, 2 threads) for `--steps` steps with torch's profiler
around the optimisation alone (the images are decoded before it), and prints ms a step and the
operators that take the most CPU time (self time, summed over the steps). Run it once per `--isa`, each
in a process of its own: the pin must be set before torch is imported, so the two cannot share one.
`avx2` sets `MKL_CBWR=COMPATIBLE` among the rest (src/dcsm_cache/isa.py), so its matrix products
(`aten::mm`, `aten::addmm`) show what that code path costs against MKL's own choice under `native`.
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--items", type=Path, required=True, help="the default's manifests/shapes_pretrain.json")
    ap.add_argument("--isa", default="avx2", help="cpu_isa: avx2 or native")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()

    from dcsm_cache.isa import pin_cpu_isa

    pin_cpu_isa(args.isa)
    import torch

    from dcsm_cache.pipeline.world import pretrain as module

    train, figures = module._train, {}

    def profiled(*a, **k):
        start = time.perf_counter()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            losses = train(*a, **k)
        figures["ms_per_step"] = round(1000 * (time.perf_counter() - start) / args.steps, 1)
        ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]
        figures["ops_ms_per_step"] = {e.key: round(e.self_cpu_time_total / 1000 / args.steps, 1) for e in ops}
        return losses

    module._train = profiled
    cfg = module.PretrainConfig(steps=args.steps, batch_size=128, threads=2, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        module.pretrain(args.items, Path(tmp) / "model.pt", cfg)
    print(f"cpu_isa {args.isa}: {figures['ms_per_step']} ms a step over {args.steps} steps")
    for name, ms in figures["ops_ms_per_step"].items():
        print(f"  {name:40s} {ms:8.1f} ms a step")
    print(json.dumps({"isa": args.isa, "steps": args.steps, **figures}))


if __name__ == "__main__":
    main()
