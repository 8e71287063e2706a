"""Dense Cosine Similarity Maps and their scorer: what training builds and evaluation reads.

    data = CachedDataset.open("stores/shapes-clip/shapes_test.zarr", text_len=24)
    scorer, meta = load_scorer("models/shapes-clip/dcsm.pt")
    scores = data.score(scorer, *data.image_rows(rows), caption_rows, "cpu")   # [B, K]

maps.py (cosine maps, functional words, standardisation), scorer.py (the CNN), scorer_file.py (its
checkpoint), cache.py (a store and its manifest as tensors, read without the backbone; opened by
`pipeline/reading.py`).
"""

from .cache import CachedDataset, fit_width
from .maps import (
    FUNCTIONAL_WORDS,
    STANDARDISE,
    FunctionalWords,
    apply_functional_rows,
    column_mask,
    maxsim,
    similarity_maps,
    standardise,
)
from .scorer import DCSMScorer, ScorerConfig, patch_grid
from .scorer_file import load_scorer, read_meta, save_scorer

__all__ = [
    "FUNCTIONAL_WORDS",
    "STANDARDISE",
    "CachedDataset",
    "DCSMScorer",
    "FunctionalWords",
    "ScorerConfig",
    "apply_functional_rows",
    "column_mask",
    "fit_width",
    "load_scorer",
    "maxsim",
    "patch_grid",
    "read_meta",
    "save_scorer",
    "similarity_maps",
    "standardise",
]
