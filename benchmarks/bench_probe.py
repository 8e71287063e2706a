"""Linear probes: the probe fit from two feature stores against the same probe fit from the same arrays in memory.

    python benchmarks/bench_probe.py --rows 50000 --dim 512 --classes 10 --rounds 3

Train and test features (`rows` and `test_rows` of `dim` float16 values, `classes` Gaussian classes
whose centres lie `spread` from the origin, so that the probe is neither trivial nor hopeless) are
written as two complete stores with their manifests, the layout extraction makes. The noise's
variance decays along the dimensions (as 1/k: image embeddings are far from isotropic), which
L-BFGS needs 100-150 iterations a fit for; `--spectrum flat` (isotropic noise) converges in 10-30,
so reading weighs more there. Path A is
`linear_probe(train_store, test_store)`: it opens both stores, checks their manifests, reads
`image/pooled` through the store's reader and fits. Path B is `fit_probe` on the same float16 arrays
already in memory: the same fits, without opening or reading anything. Both run the same protocol,
the probe's defaults (C searched on a held-out fifth of train in at most 15 fits, then one fit on all
of train, one BLAS thread; `--steps-per-decade 1` searches in at most 9, for a quicker run). The two
paths alternate for `rounds` rounds, each going first in every other round, so that load from other
processes and the order hit both alike. Reported: the median round's ratio of rates (memory time /
store time; 1.0: reading costs nothing), the store path's extra seconds, and the time to read both
stores alone (their manifests parsed, their features read). The headline `store_over_memory` is in
this process's CPU time: every fit runs on one thread, so on an idle machine it is the wall-clock
ratio, and on a shared one it leaves out the waits for other processes, which move the wall-clock
ratio (`store_over_memory_wall`) by tens of percent either way. A small fit first imports
scikit-learn, so neither path pays for that. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from dcsm_cache.pipeline.items import Dataset, ImageRef, Item, write_manifest
from dcsm_cache.pipeline.tasks.linear_probe import LinearProbeConfig, fit_probe, linear_probe, read_probe_set
from dcsm_cache.stores import FeatureStore, StoreShape


def write_store(folder: Path, x: np.ndarray, y: np.ndarray, classes: list[str]) -> Path:
    """A complete store of a prompt-table dataset whose image/pooled is `x` (float16) and classes `y`."""
    folder.mkdir(parents=True)
    ds = Dataset(
        folder.name,
        str(folder),
        tuple(ImageRef(f"{classes[c]}/{i}.jpg") for i, c in enumerate(y)),
        tuple(classes),
        tuple(Item(i, tuple(range(len(classes))), int(c)) for i, c in enumerate(y)),
    )
    fp = write_manifest(ds, folder / "manifest.json")
    attrs = {"backbone": "bench", "backbone_id": "bench", "dataset": ds.name, "fingerprint": fp}
    shape = StoreShape(len(y), 1, len(classes), 2, x.shape[1])
    store = FeatureStore.create(folder / "s.zarr", shape, {**attrs, "manifest": str(folder / "manifest.json")})
    step = store.image_pooled.chunks[0]
    for a in range(0, len(y), step):
        store.write("image/pooled", a, x[a : a + step])
    store.write("image/valid", 0, np.ones(len(y), dtype=bool))
    store.mark_done(0)
    return folder / "s.zarr"


def features(rng, centres: np.ndarray, n: int, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`n` rows: a class centre each, plus Gaussian noise of standard deviation `scale` per dimension."""
    y = rng.integers(0, len(centres), n)
    noise = rng.standard_normal((n, centres.shape[1]), dtype=np.float32) * scale
    return (centres[y] + noise).astype(np.float16), y


def noise_scale(dim: int, spectrum: str) -> np.ndarray:
    """Per-dimension noise widths, total variance `dim`: flat, or decaying (variance of dimension k as 1/k)."""
    var = np.ones(dim) if spectrum == "flat" else 1 / np.arange(1, dim + 1)
    return np.sqrt(var * dim / var.sum()).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--test-rows", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--spread", type=float, default=1.5, help="distance of the class centres, in noise widths")
    ap.add_argument("--spectrum", choices=("decaying", "flat"), default="decaying", help="the noise's covariance")
    ap.add_argument("--steps-per-decade", type=int, default=LinearProbeConfig().steps_per_decade)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.classes, args.dim), dtype=np.float32)
    centres *= args.spread / np.linalg.norm(centres, axis=1, keepdims=True)
    scale = noise_scale(args.dim, args.spectrum)
    (x, y), (xt, yt) = features(rng, centres, args.rows, scale), features(rng, centres, args.test_rows, scale)
    classes = [f"class {c}" for c in range(args.classes)]
    cfg = LinearProbeConfig(steps_per_decade=args.steps_per_decade)
    with tempfile.TemporaryDirectory() as tmp:
        train = write_store(Path(tmp) / "train", x, y, classes)
        test = write_store(Path(tmp) / "test", xt, yt, classes)
        fit_probe(x[:200], y[:200], xt[:50], yt[:50], cfg)  # imports scikit-learn: neither path pays for it
        rounds = []  # per round: {path: (wall s, CPU s)}
        for i in range(args.rounds):  # the two paths alternate, and so does which one goes first
            times = {}
            for path in ("store", "memory") if i % 2 == 0 else ("memory", "store"):
                t, c = time.perf_counter(), time.process_time()
                if path == "store":
                    from_store = linear_probe(train, test, cfg)
                else:
                    in_memory = fit_probe(x, y, xt, yt, cfg)
                times[path] = (time.perf_counter() - t, time.process_time() - c)
            rounds.append(times)
        t, c = time.perf_counter(), time.process_time()
        read_probe_set(train), read_probe_set(test)
        read = (time.perf_counter() - t, time.process_time() - c)

    def median(clock: int) -> tuple[float, dict]:
        """The median round's ratio (memory time / store time) on one clock (0: wall, 1: CPU), and that round."""
        ratio, i = sorted((r["memory"][clock] / r["store"][clock], i) for i, r in enumerate(rounds))[len(rounds) // 2]
        return ratio, rounds[i]

    (cpu_ratio, cpu_round), (wall_ratio, wall_round) = median(1), median(0)
    same = all(from_store[k] == in_memory[k] for k in ("accuracy", "mean_per_class", "C", "runs"))
    run = from_store["runs"][0]
    print(
        f"{args.rows} x {args.dim} float16 train, {args.test_rows} test, {args.classes} classes ({args.spectrum} "
        f"noise); C searched in {len(run['search'])} fits ({args.steps_per_decade} a decade), then one on all of "
        f"train; top-1 {100 * from_store['accuracy']:.1f}%, C {from_store['C']:.3g}; same results: {same}"
    )
    for name, clock, ratio, r in (("CPU time", 1, cpu_ratio, cpu_round), ("wall clock", 0, wall_ratio, wall_round)):
        print(
            f"{name:10s}: from the stores {r['store'][clock]:.2f} s, from memory {r['memory'][clock]:.2f} s, "
            f"extra {r['store'][clock] - r['memory'][clock]:+.2f} s against {read[clock]:.2f} s to read both "
            f"stores alone; store/memory {ratio:.3f} (median of "
            + ", ".join(f"{x['memory'][clock] / x['store'][clock]:.3f}" for x in rounds)
            + ")"
        )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "dim": args.dim,
                "classes": args.classes,
                "spectrum": args.spectrum,
                "fits": len(run["search"]) + 1,
                "store_over_memory": round(cpu_ratio, 3),
                "store_cpu_s": round(cpu_round["store"][1], 3),
                "memory_cpu_s": round(cpu_round["memory"][1], 3),
                "read_cpu_s": round(read[1], 3),
                "store_over_memory_wall": round(wall_ratio, 3),
                "store_wall_s": round(wall_round["store"][0], 3),
                "memory_wall_s": round(wall_round["memory"][0], 3),
                "read_wall_s": round(read[0], 3),
                "rounds_cpu": [round(x["memory"][1] / x["store"][1], 3) for x in rounds],
                "rounds_wall": [round(x["memory"][0] / x["store"][0], 3) for x in rounds],
                "accuracy": round(from_store["accuracy"], 4),
                "same_results": same,
            }
        )
    )


if __name__ == "__main__":
    main()
