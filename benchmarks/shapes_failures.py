"""Where the scorers fail on the shapes world: accuracy per pair of shapes in the scene, and on negation
per kind of distractor, from a run folder's stores, manifests and world.

    python benchmarks/shapes_failures.py --workdir . --checkpoint models/shapes-clip/dcsm.pt

Scores every binding and negation probe with MaxSim and the DCSM (as `dcsm-cache eval` does), joins
each item with its scene in the world, and prints accuracy (%) per test / held-out split for each
group: binding by the two shapes of the scene; negation's "with" items, and its "without" items by how
the absent object the caption names differs from the one the scene shows (its colour, or only its
shape: then by the two shapes). A group where every scorer is near chance while the others are near
100% points at what the image tokens do not carry (`dcsm-cache probe` measures that directly).
Last line: one JSON object of the groups' accuracies.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from dcsm_cache.pipeline.dcsm import FUNCTIONAL_WORDS, CachedDataset
from dcsm_cache.pipeline.scorers import get_scorer
from dcsm_cache.pipeline.tasks.choice import is_correct
from dcsm_cache.pipeline.world.files import world_images

NEGATION = re.compile(r"an? (\w+) (\w+) (with|without) an? (\w+) (\w+)")


def item_flags(store: Path, scorer: str, checkpoint: str | None) -> tuple[CachedDataset, list[bool]]:
    impl = get_scorer(scorer)
    model, meta = impl.load(checkpoint, torch.device("cpu"))
    fr_words = tuple(meta.get("fr_words", FUNCTIONAL_WORDS))
    data = CachedDataset.open(store, text_len=meta.get("text_len"), fr_words=fr_words)
    scores = impl.score(data, data.dataset.items, model, torch.device("cpu"), 256)
    return data, [is_correct(s, it.correct, data.dataset.metric) for s, it in zip(scores, data.dataset.items)]


def group_of(family: str, objects: list[dict], positive: str) -> str:
    if family == "binding":
        return "shapes " + "-".join(sorted(o["shape"] for o in objects))
    m = NEGATION.match(positive)
    if m is None or m.group(3) == "with":
        return "with"
    colour, shape, other = m.group(4), m.group(5), objects[1]
    if other["colour"] != colour:
        return "without, other colour"
    return "without, same colour " + "-".join(sorted([shape, other["shape"]]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("."))
    ap.add_argument("--checkpoint", required=True, help="the DCSM scorer (relative to --workdir)")
    ap.add_argument("--stores", default="stores/shapes-clip", help="folder of the probe stores (relative)")
    ap.add_argument("--world", default="data/world")
    args = ap.parse_args()
    wd = args.workdir
    _, scenes = world_images(wd / args.world)
    table: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for bench in ("shapes_binding", "shapes_negation"):
        for scorer in ("maxsim", "dcsm"):
            data, flags = item_flags(wd / args.stores / f"{bench}.zarr", scorer, str(wd / args.checkpoint))
            for it, ok in zip(data.dataset.items, flags):
                path = data.dataset.images[it.image].path
                _, scene, objects = scenes[path]
                group = f"{scene['family']}: {group_of(scene['family'], objects, scene['positive'])}"
                table[group][f"{scorer} {it.subset}"].append(ok)
    figures = {}
    cols = ("maxsim test", "maxsim heldout", "dcsm test", "dcsm heldout")
    print(f"{'group':52s} {'n':>5s}  " + "  ".join(f"{c:>14s}" for c in cols))
    for group in sorted(table):
        row = table[group]
        acc = {c: 100 * float(np.mean(row[c])) if row[c] else float("nan") for c in cols}
        n = len(row["dcsm test"]) + len(row["dcsm heldout"])
        print(f"{group:52s} {n:5d}  " + "  ".join(f"{acc[c]:14.1f}" for c in cols))
        figures[group] = {"n": n, **{c.replace(" ", "_"): round(v, 1) for c, v in acc.items()}}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
