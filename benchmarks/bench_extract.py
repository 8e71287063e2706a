"""Extraction at the model's limit in flat memory: the pipeline's img/s against the model's forward alone.

    python benchmarks/bench_extract.py --arch ViT-B-16 --images 32
    python benchmarks/bench_extract.py --null-model --arch ViT-B-16 --images 2048

For each architecture (random weights; nothing is downloaded): N and 4N JPEG images of the given size
are written to a folder, two captions each. Forward-only: the same model, batch and device on inputs
already in memory, both towers (the images and their captions: the work extraction has to do), and
the image tower alone beside it.
Pipeline: `dcsm-cache extract` in a child process (decode in DataLoader workers, model, writes behind
it); its per-image rate is 3N / (t(4N) - t(N)), which leaves out the fixed start-up (imports, model
load, text). Peak RSS of the child (ru_maxrss) for N and 4N images shows whether memory grows with
the dataset. Last line: one JSON object of the figures.

With --null-model, the pipeline around a model that costs nothing, so each stage meets its own limit: the
architecture's backbone is loaded (its preprocessing, tokenizer and store attributes are the real ones)
but its encoder returns the same preallocated float32 tokens and pooled vectors of its output shapes for
every batch. `extract()` runs in this process, timed from its part's first row to the last chunk file
synced to the disk (os.sync), on N images and 2N captions:
- `plain_write_img_s`: a plain sequential write of the same bytes (every array of the store: the
  images' tokens and pooled rows, the captions' rows, validity; in batches of images) to one file on
  the same disk, + os.sync: the disk's limit;
- `null_img_s`: extraction from already-decoded images (one batch of pixels fed again and again), so
  what is timed is the per-token work on the device (normalise, round to float16), the copies and the
  store's writes; `null_over_plain_write` = null_img_s / plain_write_img_s;
- `decode_img_s`: the decoding workers alone (`image_batches` over the JPEGs with the architecture's
  preprocessing, the same workers), batches dropped;
- `null_decode_img_s`: the whole pipeline from the JPEG files with the free model;
  `null_decode_over_decode` = null_decode_img_s / decode_img_s.
The three timed runs and the plain write alternate over `--rounds` rounds; medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def run_extract(
    manifest: Path, arch: str, out: Path, batch: int, workers: int, device: str, decode: str = "workers"
) -> tuple[float, float]:
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
        f"decode={decode}",
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


class NullEncoder:
    """`enc`'s output shapes at no cost: the same preallocated float32 tokens and pooled rows for every batch."""

    def __init__(self, enc, batch: int, text_batch: int, context: int):
        self.model, self.real = enc.model, enc
        (_, p, d), dev = enc.image(torch.zeros(1, 3, *_image_size(enc.model), device=enc.device))[0].shape, enc.device
        g = torch.Generator(device=dev).manual_seed(0)
        self.tokens = torch.randn(batch, p, d, device=dev, generator=g)
        self.pooled = torch.randn(batch, d, device=dev, generator=g)
        self.text_tokens = torch.randn(text_batch, context, d, device=dev, generator=g)
        self.text_pooled = torch.randn(text_batch, d, device=dev, generator=g)

    def image(self, pixels):
        return self.tokens[: len(pixels)], self.pooled[: len(pixels)]

    def text(self, ids):
        return self.text_tokens[: len(ids), : ids.shape[1]], self.text_pooled[: len(ids)]

    def describe(self) -> dict:
        return self.real.describe()


def _image_size(model) -> tuple[int, int]:
    size = getattr(model.visual, "image_size", 224)
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def null_model(manifest: Path, arch: str, tmp: Path, batch: int, workers: int, device: str, rounds: int) -> dict:
    """The --null-model figures (module doc) for one architecture."""
    from dcsm_cache.pipeline.extract import ExtractConfig, extract, image_batches
    from dcsm_cache.pipeline.extract import run

    ds = read_manifest(manifest)
    n = len(ds.images)
    cfg = ExtractConfig(batch_size=batch, workers=workers, device=device, progress=False, overwrite=True)
    real = {"token_encoder": run.token_encoder, "image_batches": run.image_batches, "part": run._extract_part}
    seconds: list[float] = []

    def null_encoder(model, precision="fp32"):
        return NullEncoder(real["token_encoder"](model, precision), batch, cfg.text_batch_size, 77)

    bb = load_backbone(arch, device=device)
    pixels = torch.stack([bb.preprocess(open_image(ds, r % n)) for r in range(batch)])  # decoded once, before
    pixels = pixels.pin_memory() if bb.device.type == "cuda" else pixels

    def decoded(ds, preprocess, span, batch_size, workers, pixel_shape, pin_memory=False, augment=None, decode=None):
        for s in range(span[0], span[1], batch_size):
            b = min(batch_size, span[1] - s)
            yield s, pixels[:b], np.ones(b, bool), []

    def timed_part(*a, **k):
        t = time.perf_counter()
        real["part"](*a, **k)
        os.sync()
        seconds.append(time.perf_counter() - t)

    run.token_encoder, run._extract_part = null_encoder, timed_part
    nbytes = 0
    times: dict[str, list[float]] = {"plain": [], "null": [], "decode": [], "null_decode": []}
    try:
        for r in range(rounds):
            for key, batches in (("null", decoded), ("null_decode", real["image_batches"])):
                run.image_batches = batches
                extract(manifest, arch, tmp / f"{key}.zarr", cfg)
                times[key].append(seconds.pop())
                nbytes = nbytes or store_bytes(tmp / f"{key}.zarr")
                shutil.rmtree(tmp / f"{key}.zarr")
            times["plain"].append(plain_write(tmp / "plain.bin", n, batch, nbytes))
            t = time.perf_counter()
            for _ in image_batches(ds, bb.preprocess, (0, n), batch, workers, tuple(pixels.shape[1:])):
                pass
            times["decode"].append(time.perf_counter() - t)
    finally:
        run.token_encoder, run.image_batches, run._extract_part = (
            real["token_encoder"],
            real["image_batches"],
            real["part"],
        )
    rate = {k: n / sorted(v)[len(v) // 2] for k, v in times.items()}
    return {
        "plain_write_img_s": round(rate["plain"], 1),
        "null_img_s": round(rate["null"], 1),
        "null_over_plain_write": round(rate["null"] / rate["plain"], 3),
        "decode_img_s": round(rate["decode"], 1),
        "null_decode_img_s": round(rate["null_decode"], 1),
        "null_decode_over_decode": round(rate["null_decode"] / rate["decode"], 3),
        "bytes_per_image": nbytes // n,
    }


def store_bytes(path: Path) -> int:
    """Bytes of every array in the store at `path` (image and text rows, validity): what extraction wrote."""
    import zarr

    group = zarr.open_group(path, mode="r")
    return int(sum(a.nbytes for _, a in group.members(max_depth=None) if isinstance(a, zarr.Array)))


def plain_write(path: Path, n: int, batch: int, nbytes: int) -> float:
    """Seconds to write `nbytes` (n images' worth) to one file in batches of `batch` images, + os.sync."""
    slab = np.random.default_rng(0).integers(0, 256, -(-nbytes * batch // n), dtype=np.uint8)
    os.sync()
    t = time.perf_counter()
    with open(path, "wb") as f:
        for s in range(0, nbytes, len(slab)):
            f.write(slab[: nbytes - s])
    os.sync()
    seconds = time.perf_counter() - t
    path.unlink()
    return seconds


def decode_difference(manifest: Path, arch: str, device: str, n: int = 64) -> dict:
    """How far the device's pixels (`extract --set decode=device`) are from the workers', in the model's
    normalised units, over the first n images: mean and max absolute difference."""
    from dcsm_cache.pipeline.extract.device_decode import DeviceDecode
    from dcsm_cache.pipeline.items import jpeg_bytes

    bb = load_backbone(arch, device=device)
    ds = read_manifest(manifest)
    rows = range(min(n, len(ds.images)))
    want = torch.stack([bb.preprocess(open_image(ds, r)) for r in rows])
    raw = [torch.frombuffer(bytearray(jpeg_bytes(ds, r)), dtype=torch.uint8) for r in rows]
    got, _, _ = DeviceDecode(bb.preprocess, bb.device)(raw, tuple(want.shape[1:]))
    diff = (got.float().cpu() - want).abs()
    return {"decode_mean_abs_diff": round(float(diff.mean()), 5), "decode_max_abs_diff": round(float(diff.max()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", action="append", help="architectures (default: ViT-B-16 and shapes-clip)")
    ap.add_argument("--images", type=int, default=32, help="N (the pipeline also runs 4N)")
    ap.add_argument("--size", type=int, default=256, help="JPEG side in pixels")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda on a GPU machine")
    ap.add_argument("--null-model", action="store_true", help="the pipeline around a model that costs nothing")
    ap.add_argument("--decode", default="workers", help="workers, or device: JPEGs decoded on the GPU (CUDA)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the --null-model runs")
    args = ap.parse_args()
    if args.null_model:
        figures = {"images": args.images, "batch": args.batch, "workers": args.workers, "device": _device(args)}
        with tempfile.TemporaryDirectory(dir=".") as tmp:  # the disk a store is written to, not a tmpfs
            manifest = write_images(Path(tmp), args.images, args.size)
            for arch in args.arch or ["ViT-B-16"]:
                f = null_model(manifest, arch, Path(tmp), args.batch, args.workers, args.device, args.rounds)
                print(
                    f"{arch}, null model, {args.images} images of {f['bytes_per_image'] / 1e3:.0f} KB: plain write "
                    f"{f['plain_write_img_s']:.0f} img/s | pipeline from decoded images {f['null_img_s']:.0f} img/s "
                    f"({f['null_over_plain_write']:.2f} of the plain write) | decoding alone {f['decode_img_s']:.0f} "
                    f"img/s | pipeline from JPEGs {f['null_decode_img_s']:.0f} img/s "
                    f"({f['null_decode_over_decode']:.2f} of decoding alone)"
                )
                figures |= {f"{arch.replace('-', '_').lower()}_{k}": v for k, v in f.items()}
                if len(args.arch or ["ViT-B-16"]) == 1:
                    figures |= f
        print(json.dumps(figures))
        return
    archs = args.arch or ["ViT-B-16", "shapes-clip"]
    figures: dict = {
        "threads": torch.get_num_threads(),
        "images": args.images,
        "batch": args.batch,
        "workers": args.workers,
        "decode": args.decode,
        "device": _device(args),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n, m = write_images(tmp, args.images, args.size), write_images(tmp, 4 * args.images, args.size)
        for arch in archs:
            image_only, fwd = forward_only(m, arch, args.batch, args.device)
            t_n, rss_n = run_extract(n, arch, tmp / "n.zarr", args.batch, args.workers, args.device, args.decode)
            t_4n, rss_4n = run_extract(m, arch, tmp / "m.zarr", args.batch, args.workers, args.device, args.decode)
            pipe = 3 * args.images / max(t_4n - t_n, 1e-9)
            print(
                f"{arch}: forward-only {fwd:8.1f} img/s (image tower alone {image_only:.1f}) | pipeline {pipe:8.1f} "
                f"img/s | ratio {pipe / fwd:.2f} ({pipe / image_only:.2f} of the image tower alone) | "
                f"extract N={args.images}: {t_n:.1f} s, {rss_n:.0f} MB peak; 4N: {t_4n:.1f} s, {rss_4n:.0f} MB "
                f"peak ({100 * (rss_4n / rss_n - 1):+.1f}%)"
            )
            key = arch.replace("-", "_").lower()
            if args.decode == "device":
                figures |= {f"{key}_{k}": v for k, v in decode_difference(m, arch, args.device).items()}
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


def _device(args) -> str:
    return torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"


if __name__ == "__main__":
    main()
