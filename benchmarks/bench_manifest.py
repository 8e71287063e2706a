"""How fast a large table of the user's own becomes a manifest: build + write, then read back, with peak memory.

    python benchmarks/bench_manifest.py --rows 1000000 [--images none]

Writes a synthetic captioned CSV (img2dataset-style paths `00000/000000001.jpg`, one caption a row)
in a temp dir, and by default the images as hard links to one small file per folder, so that the
table loader's image check stats real files and the fingerprint reads them. Then, each in a fresh process so
that one phase's memory peak cannot hide the next's: the `table` loader plus `write_manifest` (what
`dcsm-cache items table` runs), and `read_manifest` plus `manifest_fingerprint` (what extraction
and evaluation run). Memory is the ru_maxrss peak of the phase minus the process's size before it;
`read_retained_mb` is what the Dataset itself holds once read. The last line printed is one JSON
object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PER_FOLDER = 10_000  # img2dataset's default shard size; also under ext4's 65,000 links per file
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
THINGS = ["dog", "cat", "bicycle", "car", "tree", "house", "boat", "chair", "cup", "kite", "horse", "bench"]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_data(root: Path, rows: int, images: bool) -> float:
    t0 = time.perf_counter()
    with open(root / "data.csv", "w", newline="") as f:
        f.write("image,caption\n")
        f.writelines(
            f'{i // PER_FOLDER:05d}/{i:09d}.jpg,"a photo of a {COLOURS[i % 8]} {THINGS[i // 8 % 12]} '
            f'seen from the {"left" if i % 3 else "right"}, number {i}"\n'
            for i in range(rows)
        )
    if images:
        for start in range(0, rows, PER_FOLDER):
            folder = root / f"{start // PER_FOLDER:05d}"
            folder.mkdir()
            src = folder / "src.bin"
            src.write_bytes(b"\xff\xd8" + bytes(700))
            for i in range(start, min(rows, start + PER_FOLDER)):
                os.link(src, folder / f"{i:09d}.jpg")
    return time.perf_counter() - t0


def phase_write(root: Path, check: bool) -> dict:
    from dcsm_cache.pipeline.benchmarks import load_benchmark
    from dcsm_cache.pipeline.items import write_manifest

    base = current_mb()
    t0 = time.perf_counter()
    ds = load_benchmark("table", str(root), file="data.csv", check_images=check)
    t1 = time.perf_counter()
    write_manifest(ds, root / "manifest.json")
    t2 = time.perf_counter()
    return {"items": len(ds.items), "build_s": t1 - t0, "write_s": t2 - t1, "build_write_peak_mb": peak_mb() - base}


def phase_read(root: Path) -> dict:
    from dcsm_cache.pipeline.items import manifest_fingerprint, read_manifest

    base = current_mb()
    t0 = time.perf_counter()
    fp = manifest_fingerprint(root / "manifest.json")
    t1 = time.perf_counter()
    ds = read_manifest(root / "manifest.json")
    t2 = time.perf_counter()
    assert len(ds.items) > 0 and len(fp) == 16
    return {
        "fingerprint_read_s": t1 - t0,
        "read_s": t2 - t1,
        "read_peak_mb": peak_mb() - base,
        "read_retained_mb": current_mb() - base,
    }


def child(phase: str, root: Path, check: bool) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--dir", str(root)] + ([] if check else ["--images", "none"])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"{phase} phase failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument(
        "--images",
        choices=["link", "none"],
        default="link",
        help="link: write the images (hard links) and check them; none: no files, check_images=false",
    )
    ap.add_argument("--phase", choices=["write", "read"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    check = args.images == "link"
    if args.phase:
        print(json.dumps(phase_write(Path(args.dir), check) if args.phase == "write" else phase_read(Path(args.dir))))
        return
    root = Path(tempfile.mkdtemp(prefix="bench_manifest_"))
    try:
        make_s = make_data(root, args.rows, check)
        csv_mb = (root / "data.csv").stat().st_size / 2**20
        print(
            f"{args.rows:,} rows: data.csv {csv_mb:.0f} MB"
            + (", images as hard links" if check else ", no images")
            + f" (made in {make_s:.1f} s)",
            flush=True,
        )
        w = child("write", root, check)
        print(
            f"table loader + write_manifest: build {w['build_s']:.1f} s, write {w['write_s']:.1f} s, "
            f"peak +{w['build_write_peak_mb']:.0f} MB",
            flush=True,
        )
        manifest_mb = (root / "manifest.json").stat().st_size / 2**20
        r = child("read", root, check)
        print(
            f"manifest {manifest_mb:.0f} MB: fingerprint read in {r['fingerprint_read_s'] * 1000:.1f} ms, "
            f"read_manifest {r['read_s']:.1f} s, peak +{r['read_peak_mb']:.0f} MB, "
            f"the Dataset holds {r['read_retained_mb']:.0f} MB"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures = {
        "rows": args.rows,
        "images": args.images,
        "csv_mb": round(csv_mb, 1),
        "manifest_mb": round(manifest_mb, 1),
        **{k: round(v, 3) for k, v in {**w, **r}.items()},
    }
    figures["peak_rss_mb"] = round(max(w["build_write_peak_mb"], r["read_peak_mb"]), 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
