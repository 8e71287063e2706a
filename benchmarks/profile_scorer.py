"""The DCSM scorer's own training step, without the store: where the ≥ 100× training target meets the CPU.

    python benchmarks/profile_scorer.py --rows 197            # ViT-B/16's maps, the bench_train batch
    python benchmarks/profile_scorer.py --rows 64 --steps 40  # the embedded default's shapes-clip maps

One step of `train` scores B images against B positives and their own K-1 hard negatives: B × (B+K-1)
maps of (rows+1) × text_len (the pooled row added), through the scorer's forward and backward as
training runs them (deterministic kernels, 2 threads, the same random tokens every step). Timed side by
side, in one run:
- `eager`: the scorer as `train` runs it, on the machine's own kernels;
- `convolutions`: its two convolutions alone (forward and backward of the same tensors), the part no
  fusion of the elementwise passes around them can remove;
- `eager_avx2`: the eager step in a child process with the kernels capped at AVX2 (`cpu_isa: avx2`, what
  the embedded default runs); skipped off x86-64;
- `compiled` (with `--compile`): `torch.compile` (Inductor's C++ backend, needs a compiler), its
  compile time apart.
`benchmarks/bench_train.py` gives the other side of the ratio (the reference's recompute of the same
batch): with its rate R steps/s, a 100× ratio leaves 1 / (100 R) seconds a step for everything,
reading and the optimiser included. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
import torch.utils.deterministic

from dcsm_cache.heap import keep_freed_memory
from dcsm_cache.isa import isa_environment
from dcsm_cache.pipeline.dcsm import DCSMScorer, ScorerConfig


def inputs(b: int, k: int, rows: int, text_len: int, dim: int, n_functional: int):
    """Random unit tokens in the store's float16, lengths and functional columns as a batch has them."""
    g = torch.Generator().manual_seed(1)

    def unit(*shape):
        return F.normalize(torch.randn(*shape, generator=g), dim=-1).half()

    lengths = torch.randint(5, text_len + 1, (b, k), generator=g)
    columns = torch.full((b, k, text_len), -1)
    columns[:, :, 3] = torch.randint(0, n_functional, (b, k), generator=g)  # one functional word a caption
    return unit(b, rows, dim), unit(b, dim), unit(b, k, text_len, dim), unit(b, k, dim), lengths, columns


def ms_per_step(step, steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps * 1e3


def measure(args, compiled: bool = False) -> dict:
    torch.manual_seed(0)
    b, k = args.batch, args.batch + args.negatives
    scorer = DCSMScorer(ScorerConfig(), args.rows, args.text_len, 12)
    torch.nn.init.normal_(scorer.fc[-1].weight, std=0.1)  # (a zero-initialised last layer sends no gradient back)
    x = inputs(b, k, args.rows, args.text_len, args.dim, 12)
    model = torch.compile(scorer) if compiled else scorer

    def step():
        model(*x).logsumexp(dim=1).mean().backward()

    out = {}
    if compiled:
        t = time.perf_counter()
        step()
        out["compile_s"] = round(time.perf_counter() - t, 1)
    out["ms"] = ms_per_step(step, args.steps)
    if not compiled:  # the two convolutions alone, on the step's own shapes, forward and backward
        maps = torch.randn(b * k, 1, args.rows + 1, args.text_len).contiguous(memory_format=torch.channels_last)
        maps.requires_grad_(True)
        c1, c2 = [m for m in scorer.convs if isinstance(m, torch.nn.Conv2d)]
        mid = torch.randn(b * k, c1.out_channels, args.rows + 1, args.text_len)
        mid = mid.contiguous(memory_format=torch.channels_last).requires_grad_(True)

        def convs():
            c1(maps).sum().backward()
            c2(mid).sum().backward()

        out["convolutions_ms"] = ms_per_step(convs, args.steps)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=197, help="image tokens (ViT-B/16: 197; shapes-clip: 64)")
    ap.add_argument("--text-len", type=int, default=16)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--negatives", type=int, default=3, help="hard negatives an item (bench_train's world: 3)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (Inductor)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the AVX2 run, its JSON only
    args = ap.parse_args()
    keep_freed_memory()  # what `dcsm-cache train` runs with (heap.py)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)  # as `train` runs on the CPU (train/loop.py)
    torch.utils.deterministic.fill_uninitialized_memory = False
    eager = measure(args)
    if args.child:
        print(json.dumps(eager))
        return
    figures = {
        "rows": args.rows,
        "maps_per_step": args.batch * (args.batch + args.negatives),
        "kernels": torch.backends.cpu.get_cpu_capability(),
        "eager_ms": round(eager["ms"], 1),
        "convolutions_ms": round(eager["convolutions_ms"], 1),
        "convolutions_share": round(eager["convolutions_ms"] / eager["ms"], 2),
    }
    avx2 = isa_environment("avx2")
    if avx2:  # a fresh process: the libraries read the cap once, before their first call
        env = {**os.environ, **avx2}
        run = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child"], env=env, capture_output=True)
        child = json.loads(run.stdout.decode().strip().splitlines()[-1])
        figures |= {"eager_avx2_ms": round(child["ms"], 1), "convolutions_avx2_ms": round(child["convolutions_ms"], 1)}
        figures["avx2_over_native"] = round(eager["ms"] / child["ms"], 2)
    if args.compile:
        comp = measure(args, compiled=True)
        figures |= {"compiled_ms": round(comp["ms"], 1), "compile_s": comp["compile_s"]}
        figures["compiled_over_eager"] = round(eager["ms"] / comp["ms"], 2)
    print(f"{figures['maps_per_step']} maps of {args.rows + 1} x {args.text_len} a step, kernels {figures['kernels']}")
    print(f"eager (as train runs it): {figures['eager_ms']:7.1f} ms a step")
    print(f"  its two convolutions:   {figures['convolutions_ms']:7.1f} ms ({figures['convolutions_share']:.0%})")
    if avx2:
        conv = figures["convolutions_avx2_ms"]
        print(f"eager, AVX2 kernels:      {figures['eager_avx2_ms']:7.1f} ms (its convolutions {conv:.1f} ms)")
    if args.compile:
        print(f"torch.compile:            {figures['compiled_ms']:7.1f} ms (after {figures['compile_s']} s compiling)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
