"""Extraction at the model's limit in flat memory: the pipeline's img/s against the model's forward alone.

    python benchmarks/bench_extract.py --arch ViT-B-16 --images 32

For each architecture (random weights; nothing is downloaded): N and 4N JPEG images of the given size
are written to a folder, two captions each. Forward-only: the same model, batch and device on inputs
already in memory, both towers (the images and their captions: the work extraction has to do), and
the image tower alone beside it.
Pipeline: `dcsm-cache extract` in a child process (decode in DataLoader workers, model, writes behind
it); its per-image rate is 3N / (t(4N) - t(N)), which leaves out the fixed start-up (imports, model
load, text). Peak RSS of the child (ru_maxrss) for N and 4N images shows whether memory grows with
the dataset. Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dcsm_cache.pipeline.items import DatasetBuilder, open_image, read_manifest, write_manifest
from dcsm_cache.pipeline.tokens import load_backbone, token_encoder


def write_images(root: Path, n: int, size: int) -> Path:
    """n JPEGs of smooth random colour fields (they decode like photos, not like noise) and a manifest."""
    rng = np.random.default_rng(0)
    b = DatasetBuilder(f"bench{n}", root)
    for i in range(n):
        low = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(low).resize((size, size), Image.BICUBIC).save(root / f"{i:06d}.jpg", quality=90)
        b.add(f"{i:06d}.jpg", [f"a photo number {i}", "a photo of something else"])
    write_manifest(b.build(), root / f"m{n}.json")
    return root / f"m{n}.json"


def run_extract(manifest: Path, arch: str, out: Path, batch: int, workers: int, device: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of `dcsm-cache extract` in a child process."""
    cmd = [
        sys.executable,
        "-c",
        "from dcsm_cache.cli import main; main()",
        "extract",
        "--items",
        str(manifest),
        "--backbone",
        arch,
        "--out",
        str(out),
        "--device",
        device,
        "--workers",
        str(workers),
        "--overwrite",
        "--set",
        f"batch_size={batch}",
        "--set",
        "progress=false",
    ]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"extract failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def forward_only(manifest: Path, arch: str, batch: int, device: str) -> tuple[float, float]:
    """img/s of the model's forward alone on inputs already on the device, at extraction's precision
    there (bf16 autocast on CUDA, fp32 on the CPU; best of 2 passes): (the image tower on preprocessed
    pixels, both towers: the images and their captions, tokenized, as extraction encodes them with
    its default text batch). Extraction must run both towers, so the second is what the pipeline can reach."""
    from dcsm_cache.pipeline.extract import ExtractConfig

    bb = load_backbone(arch, device=device)
    enc = token_encoder(bb.model, "bf16" if bb.device.type == "cuda" else "fp32")
    ds = read_manifest(manifest)
    pixels = torch.stack([bb.preprocess(open_image(ds, r)) for r in range(len(ds.images))]).to(bb.device)
    ids = bb.tokenizer(list(ds.captions)).to(bb.device)
    text_batch = ExtractConfig().text_batch_size
    sync = torch.cuda.synchronize if bb.device.type == "cuda" else (lambda: None)

    def timed(fn, x, step) -> float:
        fn(x[:step])  # warm-up
        sync()
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            for s in range(0, len(x), step):
                fn(x[s : s + step])
            sync()
            best = min(best, time.perf_counter() - t)
        return best

    t_image = timed(enc.image, pixels, batch)
    t_text = timed(enc.text, ids, text_batch)
    return len(pixels) / t_image, len(pixels) / (t_image + t_text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", help="architectures (default: ViT-B-16 and shapes-clip)")
    ap.add_argument("--images", type=int, default=32, help="N (the pipeline also runs 4N)")
    ap.add_argument("--size", type=int, default=256, help="JPEG side in pixels")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    args = ap.parse_args()
    archs = args.arch or ["ViT-B-16", "shapes-clip"]
    figures: dict = {
        "threads": torch.get_num_threads(),
        "images": args.images,
        "batch": args.batch,
        "workers": args.workers,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n, m = write_images(tmp, args.images, args.size), write_images(tmp, 4 * args.images, args.size)
        for arch in archs:
            image_only, fwd = forward_only(m, arch, args.batch, args.device)
            t_n, rss_n = run_extract(n, arch, tmp / "n.zarr", args.batch, args.workers, args.device)
            t_4n, rss_4n = run_extract(m, arch, tmp / "m.zarr", args.batch, args.workers, args.device)
            pipe = 3 * args.images / max(t_4n - t_n, 1e-9)
            print(
                f"{arch}: forward-only {fwd:8.1f} img/s (image tower alone {image_only:.1f}) | pipeline {pipe:8.1f} "
                f"img/s | ratio {pipe / fwd:.2f} ({pipe / image_only:.2f} of the image tower alone) | "
                f"extract N={args.images}: {t_n:.1f} s, {rss_n:.0f} MB peak; 4N: {t_4n:.1f} s, {rss_4n:.0f} MB "
                f"peak ({100 * (rss_4n / rss_n - 1):+.1f}%)"
            )
            key = arch.replace("-", "_").lower()
            figures |= {
                f"{key}_forward_img_s": round(fwd, 2),
                f"{key}_image_tower_img_s": round(image_only, 2),
                f"{key}_pipeline_img_s": round(pipe, 2),
                f"{key}_pipeline_over_forward": round(pipe / fwd, 3),
                f"{key}_pipeline_over_image_tower": round(pipe / image_only, 3),
                f"{key}_peak_rss_mb_n": round(rss_n),
                f"{key}_peak_rss_mb_4n": round(rss_4n),
                f"{key}_rss_4n_over_n": round(rss_4n / rss_n, 3),
            }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
