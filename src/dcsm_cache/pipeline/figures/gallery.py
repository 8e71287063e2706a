"""The report's gallery: items the cosine gets wrong and the DCSM right, and the reverse, as heatmaps.

    index = gallery(["stores/shapes-clip/shapes_spatial.zarr"], "models/shapes-clip/dcsm.pt", "results/gallery")
    index["stores"][0]["dcsm_right"]     # how many items the DCSM gets right and the cosine wrong

Every valid item of each store is scored by the pooled cosine and by the trained scorer (as `dcsm-cache
eval` scores them); of the items where exactly one is right, the `per_kind` with the largest margin
(the winner's score for the true caption over the best wrong one, in the winner's units) are drawn
with `heatmap.show_item` as `<dataset>_<kind>_<item>.png`: kind `dcsm-right` (the cosine is wrong) or
`cosine-right` (the DCSM is wrong). `index.json` lists them with the counts. The workflow writes a
backbone's gallery to results/<name>/gallery-<backbone>/, a level above the result files, so that
`results/<name>/*/*/*.json` still globs results only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...atomic import write_json
from ...progress import tqdm
from ..dcsm import CachedDataset, load_scorer
from ..device import resolve_device
from ..tasks.choice import _check_trained_on, is_correct
from ..tasks.scoring import cosine_scores, dcsm_scores, score_items
from ..tasks.grounding import store_tokenizer
from ..tokens import shapes_clip  # noqa: F401  (registers the shapes-world configs tokenizers are named by)
from .heatmap import show_item

__all__ = ["KINDS", "gallery"]

KINDS = ("dcsm-right", "cosine-right")


def _margin(scores: np.ndarray, correct: int) -> float:
    return float(scores[correct] - np.delete(scores, correct).max())


def _pick(cos: list, dcsm: list, items: list, metric: str, per_kind: int) -> dict[str, list[int]]:
    """Positions in `items` of each kind, largest winning margin first."""
    out: dict[str, list[tuple[float, int]]] = {k: [] for k in KINDS}
    for pos, (c, d, it) in enumerate(zip(cos, dcsm, items)):
        c_ok, d_ok = is_correct(c, it.correct, metric), is_correct(d, it.correct, metric)
        if d_ok and not c_ok:
            out["dcsm-right"].append((_margin(d, it.correct), pos))
        elif c_ok and not d_ok:
            out["cosine-right"].append((_margin(c, it.correct), pos))
    return {k: [p for _, p in sorted(v, key=lambda t: (-t[0], t[1]))] for k, v in out.items()}


def gallery(
    stores, checkpoint: str | os.PathLike, out: str | os.PathLike, per_kind: int = 2, device: str = "auto"
) -> dict:
    """Draw the gallery of each store into folder `out` (module doc); returns what index.json holds."""
    dev = resolve_device(device)
    model, meta = load_scorer(checkpoint, dev)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index: dict = {"checkpoint": str(checkpoint), "stores": []}
    for store in stores:
        data = CachedDataset.open(store, text_len=meta["text_len"], fr_words=tuple(meta["fr_words"]))
        _check_trained_on(data, meta, store, checkpoint)
        valid = data.valid
        pos = [i for i, it in enumerate(data.dataset.items) if valid[it.image]]
        items = [data.dataset.items[i] for i in pos]
        cos = score_items(data, items, cosine_scores(data), 256)
        dcsm = score_items(data, items, dcsm_scores(data, model, dev), 256)
        picked = _pick(cos, dcsm, items, data.dataset.metric, per_kind)
        tokenizer = store_tokenizer(data.store)
        entry = {"store": str(store), "dataset": data.dataset.name, "n_items": len(items)}
        for kind, chosen in picked.items():
            entry[kind.replace("-", "_")] = len(chosen)
            files = []
            for p in tqdm(chosen[:per_kind], desc=f"{data.dataset.name} {kind}", unit="map"):
                name = f"{data.dataset.name}_{kind}_{pos[p]}.png"
                show_item(store, pos[p], out / name, device=str(dev), tokenizer=tokenizer, data=data, model=model)
                files.append(name)
            entry[f"{kind.replace('-', '_')}_files"] = files
        index["stores"].append(entry)
    write_json(index, out / "index.json")
    return index
