"""Training at cache speed: DCSM training steps/s from the store against the reference's way, same batch.

    python benchmarks/bench_train.py --arch ViT-B-16 --steps 30

The reference DCSM trainer encodes every image and caption with the frozen CLIP at every step. Here
both paths take the same batches (B images, each with its positive and hard-negative captions, the
embedded default's loss) and the same scorer; path A reads the tokens from the Zarr store
(`dcsm-cache train`'s own loop), path B runs the frozen backbone's towers on the decoded images and
the captions first (and, for items with an opposite image, the opposite images too: the reference
puts them in its batch), then computes `train`'s own loss on them. Steps per second of each, and the
ratio. `DCSM_CPU_ISA=avx2` runs both on the kernels the embedded default pins (`cpu_isa`). Last line:
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from dcsm_cache.isa import ENV_VAR, pin_cpu_isa

pin_cpu_isa(os.environ.get(ENV_VAR, "native"))  # DCSM_CPU_ISA=avx2: both paths on the embedded default's kernels

import numpy as np
import torch
import torch.nn.functional as F

from dcsm_cache.heap import keep_freed_memory
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.dcsm import CachedDataset, DCSMScorer
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import open_image, write_manifest
from dcsm_cache.pipeline.tokens import load_backbone, token_encoder
from dcsm_cache.pipeline.train import Batch, TrainConfig, batch_loss, on_device, train
from dcsm_cache.pipeline.train.loop import VAL_SUBSETS
from dcsm_cache.pipeline.world import WorldConfig, generate_world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="ViT-B-16")
    ap.add_argument("--images", type=int, default=64, help="training images in the store")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=30, help="steps from the store (the reference's way runs 3)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine (both paths on it)")
    args = ap.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    keep_freed_memory()  # the allocator settings `dcsm-cache train` runs with (heap.py)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        world = WorldConfig(n_pretrain=8, n_train=args.images, n_val=4, n_test=4, n_heldout=2, n_heldout_val=0)
        generate_world(world, tmp / "w")
        write_manifest(load_benchmark("shapes_train", str(tmp / "w")), tmp / "m.json")
        t = time.perf_counter()
        extract(tmp / "m.json", args.arch, tmp / "s.zarr", ExtractConfig(device=args.device, progress=False, workers=0))
        t_extract = time.perf_counter() - t
        cfg = TrainConfig(
            steps=args.steps, batch_size=args.batch, text_len=16, device=args.device, progress=False, eval_every=10**6
        )
        t = time.perf_counter()
        train(tmp / "s.zarr", tmp / "dcsm.pt", cfg)
        sync()
        a = args.steps / (time.perf_counter() - t)  # includes opening the store, as a user's run does

        data = CachedDataset.open(tmp / "s.zarr", text_len=16)
        bb = load_backbone(args.arch, args.device)
        enc = token_encoder(bb.model, "bf16" if device.type == "cuda" else "fp32")  # (extraction's precision there)
        scorer = DCSMScorer(cfg.scorer, data.n_tokens, 16, len(data.fr_words)).to(device)
        opt = torch.optim.AdamW(scorer.parameters(), lr=cfg.lr)
        items = [it for it in data.dataset.items if it.subset not in VAL_SUBSETS]
        rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)

        def encode(rows):
            tok, pooled = enc.image(torch.stack([bb.preprocess(open_image(data.dataset, r)) for r in rows]))
            return F.normalize(tok.float(), dim=-1), pooled.float()

        def reference_step():
            chosen = [items[i] for i in rng.choice(len(items), args.batch, replace=False)]
            with torch.no_grad():  # the frozen backbone, every step: images, their opposite images, captions
                tok, pooled = encode([it.image for it in chosen])
                opp = encode([it.opposite for it in chosen]) if chosen[0].opposite is not None else (None, None)
                enc.text(bb.tokenizer([data.dataset.captions[c] for it in chosen for c in it.candidates]))
            pos = torch.tensor([it.candidates[it.correct] for it in chosen])
            negs = torch.tensor([[c for j, c in enumerate(it.candidates) if j != it.correct] for it in chosen])
            batch = Batch(tok, pooled, pos, negs, *opp)  # then the same loss as `train`'s step
            loss = batch_loss(scorer, on_device(data, device), batch, cfg, device, gen, "recomputed")
            opt.zero_grad()
            loss.backward()
            opt.step()

        reference_step()  # warm-up
        sync()
        t = time.perf_counter()
        for _ in range(3):
            reference_step()
        sync()
        b = 3 / (time.perf_counter() - t)
    print(
        f"{args.arch}: batch {args.batch} images x {len(items[0].candidates)} captions, "
        f"torch threads {torch.get_num_threads()}, kernels {torch.backends.cpu.get_cpu_capability()}, "
        f"one-off extraction {t_extract:.1f} s"
    )
    print(f"A. from the store:            {a:8.2f} steps/s")
    print(f"B. the reference's recompute: {b:8.3f} steps/s")
    print(f"ratio A/B: {a / b:.0f}x")
    print(
        json.dumps(
            {
                "arch": args.arch,
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                "batch": args.batch,
                "kernels": torch.backends.cpu.get_cpu_capability(),
                "store_steps_s": round(a, 3),
                "recompute_steps_s": round(b, 4),
                "store_over_recompute": round(a / b, 1),
                "extract_s": round(t_extract, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
