"""What the cache buys: scoring DCSM batches from the Zarr store vs re-running the backbone each time.

    python benchmarks/bench_cache.py --arch shapes-clip --images 512 --repeats 3

Both paths score the same items with the same scorer; the only difference is where the tokens come
from. Path A (the cache) reads image and text tokens from the store; path B opens, decodes and
preprocesses the images and runs both towers, as a pipeline without a cache must do every epoch.
Prints seconds per pass for each and the ratio, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.dcsm import CachedDataset, DCSMScorer, ScorerConfig
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import open_image, write_manifest
from dcsm_cache.pipeline.tokens.backbones import load_backbone
from dcsm_cache.pipeline.tokens.encoder import token_encoder
from dcsm_cache.pipeline.world import WorldConfig, generate_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="shapes-clip")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = WorldConfig(n_pretrain=8, n_train=args.images, n_val=8, n_test=8, n_heldout=4, n_heldout_val=0)
        generate_world(world, tmp / "w")
        write_manifest(load_benchmark("shapes_train", str(tmp / "w")), tmp / "m.json")
        t0 = time.perf_counter()
        extract(tmp / "m.json", args.arch, tmp / "s.zarr", ExtractConfig(device="cpu", progress=False, batch_size=128))
        t_extract = time.perf_counter() - t0
        data = CachedDataset.open(tmp / "s.zarr", text_len=24)
        items = [it for it in data.dataset.items if it.subset == "train"][: args.images]
        scorer = DCSMScorer(ScorerConfig(), data.n_tokens, 24, len(data.fr_words)).eval()
        bb = load_backbone(args.arch, "cpu")
        enc = token_encoder(bb.model)
        ds = data.dataset

        @torch.no_grad()
        def from_cache():
            for s in range(0, len(items), args.batch):
                chunk = items[s : s + args.batch]
                tok, pooled = data.image_rows(np.array([it.image for it in chunk]))
                rows = torch.tensor([list(it.candidates) for it in chunk])
                scorer(
                    tok,
                    pooled,
                    data.text_tokens[rows],
                    data.text_pooled[rows],
                    data.lengths[rows],
                    data.fr_columns[rows],
                )

        @torch.no_grad()
        def from_backbone():
            for s in range(0, len(items), args.batch):
                chunk = items[s : s + args.batch]
                pixels = torch.stack([bb.preprocess(open_image(ds, it.image)) for it in chunk])
                tok, pooled = enc.image(pixels)
                tok = F.normalize(tok, dim=-1)
                rows = [c for it in chunk for c in it.candidates]
                ttok, tpooled = enc.text(bb.tokenizer([ds.captions[c] for c in rows]))
                ttok = F.normalize(ttok[:, :24], dim=-1).view(len(chunk), -1, 24, ttok.shape[-1])
                scorer(
                    tok,
                    pooled,
                    ttok,
                    tpooled.view(len(chunk), -1, tpooled.shape[-1]),
                    data.lengths[torch.tensor(rows)].view(len(chunk), -1),
                    data.fr_columns[torch.tensor(rows)].view(len(chunk), -1, 24),
                )

        def best(fn):
            fn()  # warm-up
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return min(times)

        a, b = best(from_cache), best(from_backbone)
        print(
            f"arch {args.arch}, {len(items)} items x {len(items[0].candidates)} candidates, "
            f"torch threads {torch.get_num_threads()}"
        )
        print(f"one-off extraction of the store:  {t_extract:7.2f} s")
        print(f"A. DCSM scoring from the cache:   {a:7.3f} s per pass")
        print(f"B. re-running the backbone:       {b:7.3f} s per pass")
        print(
            f"ratio B/A: {b / a:.1f}x faster from the cache; extraction pays for itself after "
            f"{t_extract / max(b - a, 1e-9):.1f} passes"
        )
        print(
            json.dumps(
                {
                    "arch": args.arch,
                    "items": len(items),
                    "cache_s": round(a, 4),
                    "backbone_s": round(b, 4),
                    "cache_speedup": round(b / a, 2),
                    "extract_s": round(t_extract, 3),
                    "passes_to_pay_off": round(t_extract / max(b - a, 1e-9), 2),
                }
            )
        )


if __name__ == "__main__":
    main()
