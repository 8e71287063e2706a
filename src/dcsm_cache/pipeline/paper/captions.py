"""Captions as the DCSM reference feeds them: its loaders' rewrites, its DCSM-path rewrites, its prefixes.

    ds = apply_reference_captions(load_benchmark("whatsUp_A", "data"), "whatsUp_A", dcsm=True)
    write_manifest(ds, "manifests/whatsUp_A+paper.json")     # `dcsm-cache items --paper-compat`

The caption side of `paper_compat` changes the text, so it happens when the manifest is written; the
dataset is renamed `<key>+paper` (`<key>+paper-baseline` for the baselines' captions, which skip the
DCSM rewrites; `suffix.py`, re-exported here). The reference's caption handling, in this order (as `run_evals.py` does):
  1. `LOADER_REWRITES[key]`: rewrites the reference's dataset class applies for EVERY model;
  2. `DCSM_REWRITES`: applied on the DCSM path only (`evaluate_patch_model`), not to baselines;
  3. `caption_prefix(key)`: the `frontadder`, for every model.
All rewrites are plain substring replacements (so " topping" becomes " aboveping"), in list order.
"""

from __future__ import annotations

import dataclasses

from ...errors import BadInputError, UnknownNameError
from ..benchmarks import BENCHMARKS
from ..items import Dataset
from .suffix import SUFFIX

__all__ = [
    "DCSM_REWRITES",
    "LOADER_REWRITES",
    "SUFFIX",
    "apply_reference_captions",
    "caption_prefix",
    "reference_caption",
    "rewrite",
]

# Caption rewrites of the reference's dataset classes, applied for every model (Controlled_Images_original).
LOADER_REWRITES: dict[str, tuple[tuple[str, str], ...]] = {
    "whatsUp_A": ((" on", " above"), (" under", " below")),
    "whatsUp_B": ((" on", " above"), (" under", " below")),
}

# "Replacing 3d functional words with proximal 2d words": DCSM path only, every benchmark.
DCSM_REWRITES: tuple[tuple[str, str], ...] = (
    (" behind ", " above "),
    (" in front of ", " below "),
    (" bottom", " below"),
    (" top", " above"),
)


def caption_prefix(key: str) -> str:
    """The reference's `frontadder` for a registry key (substring rule of `run_evals.py`)."""
    if "clevr" in key:
        return "An image of a "
    if any(part in key for part in ("whats", "vg_attr")):
        return "An image of "
    return ""


def rewrite(caption: str, rules: tuple[tuple[str, str], ...]) -> str:
    for old, new in rules:
        caption = caption.replace(old, new)
    return caption


def reference_caption(key: str, caption: str, dcsm: bool) -> str:
    """A raw benchmark caption as the reference feeds it to a baseline (dcsm=False) or to DCSM."""
    caption = rewrite(caption, LOADER_REWRITES.get(key, ()))
    if dcsm:
        caption = rewrite(caption, DCSM_REWRITES)
    return caption_prefix(key) + caption


def apply_reference_captions(ds: Dataset, benchmark_key: str, dcsm: bool = True) -> Dataset:
    """`ds` with every caption as the reference feeds it to DCSM (`dcsm=True`) or to its baselines.

    Captions that become equal are stored once (items keep pointing at the right text); the name
    gets `+paper` (or `+paper-baseline`) so the manifest, the store and the results say so.
    """
    if benchmark_key not in BENCHMARKS:
        raise UnknownNameError(f"unknown benchmark {benchmark_key!r}; valid: {', '.join(sorted(BENCHMARKS))}")
    if any(s in ds.name for s in SUFFIX.values()):
        raise BadInputError(f"dataset {ds.name!r} already has the reference's captions")
    rows: dict[str, int] = {}
    remap = [rows.setdefault(reference_caption(benchmark_key, c, dcsm), len(rows)) for c in ds.captions]
    items = tuple(dataclasses.replace(it, candidates=tuple(remap[c] for c in it.candidates)) for it in ds.items)
    return dataclasses.replace(ds, name=ds.name + SUFFIX[bool(dcsm)], captions=tuple(rows), items=items)
