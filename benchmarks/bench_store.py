"""Store reads: random minibatches from the Zarr store against a raw memory-mapped .npy of the same bytes,
and against the HDF5 export; bytes on disk per stored value. With --write, store writes instead.

    python benchmarks/bench_store.py --rows 1024 --batches 200
    python benchmarks/bench_store.py --write --rows 2048

Writes (--write): the rows extraction writes for `rows` images of ViT-B/16 shape (image/tokens 197 x 512
and image/pooled 512, float16), in batches of 64, three ways to the same disk, each followed by
os.sync() so that the disk, not the page cache, is measured: a plain sequential write of the same bytes
to one file (the disk's limit), the store's own writer (`ChunkWriter`: whole chunk files and their
checksums from a thread pool, what `extract` writes through) and zarr-python's slice assignment
(`FeatureStore.write`). Three rounds, the order rotating each round, the median of each. The same again
without the sync (`*_cached`: into the page cache, where the writers' own CPU cost shows, not the disk's).

A store of `rows` images of ViT-B/16 shape (197 tokens x 512, float16) with random unit rows is
written through FeatureStore (the layout extraction makes). Reads take `batch` random rows, sorted:
through zarr-python (`get_orthogonal_selection`), and through the store's own reader
(`FeatureStore.read_rows`, which maps the raw chunk files; what `CachedDataset.image_rows`, i.e.
evaluation, reads). The files are fresh, so reads are
mostly from the page cache: this measures the format's overhead, not the disk. The store reader and the
memory map are timed twice over the same batches: the first pass includes checking each chunk file's
crc32c when it is first mapped (a full read of the store, which the bare .npy has no counterpart of), the
second (three rounds, alternating, the median round's ratio) is the steady state of training's later
epochs and of repeated reads. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from dcsm_cache.stores import FeatureStore, StoreShape, export_hdf5


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def timed(fn, batches: list[np.ndarray]) -> float:
    fn(batches[0])
    t = time.perf_counter()
    for rows in batches:
        fn(rows)
    return len(batches) / (time.perf_counter() - t)


def writes(rows: int, rounds: int = 3, batch: int = 64) -> dict:
    """MB/s of the three writers (module doc), medians of `rounds` rounds."""
    import os
    import shutil

    from dcsm_cache.pipeline.extract.feeding import auto_write_threads
    from dcsm_cache.stores.chunk_writer import ChunkWriter

    p, d = 197, 512
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((batch, p, d)).astype(np.float16)  # one batch, written again and again
    pooled = rng.standard_normal((batch, d)).astype(np.float16)
    mb = rows * (p * d + d) * 2 / 1e6
    threads = auto_write_threads()

    def plain(folder: Path) -> None:
        with open(folder / "plain.bin", "wb") as f:
            for _ in range(0, rows, batch):
                f.write(tokens)
                f.write(pooled)

    def store(folder: Path) -> None:
        s = FeatureStore.create(folder / "s.zarr", StoreShape(rows, p, 4, 8, d), {"backbone": "bench"})
        with ChunkWriter(s.path, s.group, threads) as chunks:
            for a in range(0, rows, batch):
                chunks.write("image/tokens", a, tokens[: rows - a])
                chunks.write("image/pooled", a, pooled[: rows - a])

    def zarr_python(folder: Path) -> None:
        s = FeatureStore.create(folder / "z.zarr", StoreShape(rows, p, 4, 8, d), {"backbone": "bench"})
        for a in range(0, rows, batch):
            s.write("image/tokens", a, tokens[: rows - a])
            s.write("image/pooled", a, pooled[: rows - a])

    ways = {"plain": plain, "store": store, "zarr": zarr_python}
    out = {"rows": rows, "mb": round(mb, 1), "write_threads": threads}
    for synced in (True, False):
        times: dict[str, list[float]] = {k: [] for k in ways}
        with tempfile.TemporaryDirectory(dir=".") as tmp:  # the disk the store would be on, not a tmpfs
            for r in range(rounds):
                for name in list(ways)[r % 3 :] + list(ways)[: r % 3]:
                    folder = Path(tmp) / name
                    folder.mkdir()
                    os.sync()
                    t = time.perf_counter()
                    ways[name](folder)
                    if synced:
                        os.sync()
                    times[name].append(time.perf_counter() - t)
                    shutil.rmtree(folder)
                    os.sync()
        rate = {k: mb / sorted(v)[len(v) // 2] for k, v in times.items()}
        tail = "" if synced else "_cached"
        out |= {
            f"plain_write_mb_s{tail}": round(rate["plain"], 1),
            f"store_write_mb_s{tail}": round(rate["store"], 1),
            f"zarr_write_mb_s{tail}": round(rate["zarr"], 1),
            f"store_write_over_plain_write{tail}": round(rate["store"] / rate["plain"], 3),
            f"store_write_over_zarr_write{tail}": round(rate["store"] / rate["zarr"], 3),
            f"zarr_write_over_plain_write{tail}": round(rate["zarr"] / rate["plain"], 3),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--write", action="store_true", help="measure writes instead of reads")
    ap.add_argument("--rounds", type=int, default=3, help="write rounds (--write)")
    args = ap.parse_args()
    if args.write:
        w = writes(args.rows, args.rounds)
        print(
            f"{w['rows']} images of ViT-B/16 rows ({w['mb']:.0f} MB), + sync: plain write {w['plain_write_mb_s']:.0f} "
            f"MB/s | store ({w['write_threads']} threads) {w['store_write_mb_s']:.0f} MB/s | zarr-python "
            f"{w['zarr_write_mb_s']:.0f} MB/s\nstore/plain {w['store_write_over_plain_write']:.2f} | store/zarr-python "
            f"{w['store_write_over_zarr_write']:.2f} | zarr-python/plain {w['zarr_write_over_plain_write']:.2f}\n"
            f"into the page cache (no sync): plain {w['plain_write_mb_s_cached']:.0f} MB/s | store "
            f"{w['store_write_mb_s_cached']:.0f} | zarr-python {w['zarr_write_mb_s_cached']:.0f} | store/plain "
            f"{w['store_write_over_plain_write_cached']:.2f} | "
            f"zarr-python/plain {w['zarr_write_over_plain_write_cached']:.2f}"
        )
        print(json.dumps(w))
        return
    rng = np.random.default_rng(0)
    p, d = 197, 512
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = FeatureStore.create(tmp / "s.zarr", StoreShape(args.rows, p, 4, 8, d), {"backbone": "bench"})
        raw = np.lib.format.open_memmap(tmp / "tokens.npy", mode="w+", dtype=np.float16, shape=(args.rows, p, d))
        step = store.image_tokens.chunks[0]
        for a in range(0, args.rows, step):
            x = rng.standard_normal((min(step, args.rows - a), p, d)).astype(np.float32)
            x = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float16)
            store.write("image/tokens", a, x)
            raw[a : a + len(x)] = x
        raw.flush()
        for part in range(store.attrs["nparts"]):
            store.mark_done(part)
        store = FeatureStore.open(tmp / "s.zarr")
        h5 = export_hdf5(store.path, tmp / "s.h5")
        batches = [np.sort(rng.choice(args.rows, args.batch, replace=False)) for _ in range(args.batches)]
        mm = np.load(tmp / "tokens.npy", mmap_mode="r")
        arr = store.image_tokens
        with h5py.File(h5, "r") as f:
            hd = f["image/tokens"]
            zarr_rate = timed(lambda r: arr.get_orthogonal_selection((r, slice(None), slice(None))), batches)
            store_rate = timed(lambda r: store.read_rows("image/tokens", r), batches)  # what evaluation reads
            mmap_rate = timed(lambda r: np.ascontiguousarray(mm[r]), batches)
            # Again, now that every chunk is mapped and its checksum checked (the first read of a chunk file
            # verifies its crc32c, which the .npy has no counterpart of), and every page of both is mapped:
            # what training's later epochs and repeated evaluations read at.
            # Three rounds, the two readers alternating, so that a burst of load hits both; the median round.
            rounds = sorted(
                (
                    timed(lambda r: store.read_rows("image/tokens", r), batches),
                    timed(lambda r: np.ascontiguousarray(mm[r]), batches),
                )
                for _ in range(3)
            )
            store_warm, mmap_warm = sorted(rounds, key=lambda sm: sm[0] / sm[1])[1]
            h5_rate = timed(lambda r: hd[r], batches)
        same = all(
            np.array_equal(arr.get_orthogonal_selection((r, slice(None), slice(None))), mm[r])
            and np.array_equal(store.read_rows("image/tokens", r), mm[r])
            for r in batches[:5]
        )
        values = args.rows * p * d
        zarr_bpv = disk_bytes(tmp / "s.zarr" / "image" / "tokens") / values
    print(f"{args.rows} rows of {p}x{d} float16 ({values * 2 / 2**20:.0f} MiB), random batches of {args.batch}")
    print(
        f"store reader {store_rate:8.1f} batches/s | zarr-python {zarr_rate:8.1f} | memmap .npy {mmap_rate:8.1f} | "
        f"hdf5 {h5_rate:8.1f}\nstore/memmap {store_rate / mmap_rate:.2f} first pass (checksums checked), "
        f"{store_warm / mmap_warm:.2f} second pass ({store_warm:.1f} / {mmap_warm:.1f})\n"
        f"zarr/memmap {zarr_rate / mmap_rate:.3f} | "
        f"zarr/hdf5 {zarr_rate / h5_rate:.2f} | "
        f"{zarr_bpv:.4f} bytes per stored value | same bytes: {same}"
    )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "batch": args.batch,
                "store_batches_s": round(store_rate, 1),
                "store_over_memmap": round(store_rate / mmap_rate, 3),
                "store_over_memmap_second_pass": round(store_warm / mmap_warm, 3),
                "zarr_batches_s": round(zarr_rate, 1),
                "memmap_batches_s": round(mmap_rate, 1),
                "hdf5_batches_s": round(h5_rate, 1),
                "zarr_over_memmap": round(zarr_rate / mmap_rate, 3),
                "zarr_over_hdf5": round(zarr_rate / h5_rate, 3),
                "bytes_per_value": round(zarr_bpv, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
