"""How the scorers that read only the cache score a batch, and every item in batches.

    fn = cosine_scores(data)                             # (image tokens, image pooled, caption rows [B, K]) -> [B, K]
    scores = score_items(data, items, fn, batch_size=256)   # one array of K scores per item

The cosine of the pooled embeddings (CLIP's own score), training-free MaxSim on the token maps, and
a trained DCSM scorer (`dcsm_scores`, its checkpoint read by `load_dcsm`). The registry
(`pipeline/scorers.py`) names, for each scorer, the functions that load and score it; evaluation
(`choice.py`), the gallery and the heatmaps call these. Nothing here imports open_clip.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...progress import tqdm
from ..dcsm import CachedDataset, DCSMScorer, load_scorer, maxsim, similarity_maps

__all__ = ["cosine_scores", "dcsm_scores", "load_dcsm", "maxsim_scores", "score_items"]


def cosine_scores(data: CachedDataset):
    """CLIP's own score: cosine of the pooled embeddings."""
    return lambda tok, pooled, rows: torch.einsum(
        "bd,bkd->bk", F.normalize(pooled.float(), dim=-1), F.normalize(data.text_pooled[rows].float(), dim=-1)
    )


def maxsim_scores(data: CachedDataset):
    """Training-free late interaction (ColBERT's MaxSim): the mean over the caption's word tokens (start
    and end tokens left out) of their best cosine with any image token. What the token maps alone know."""

    def fn(tok, pooled, rows):
        return maxsim(similarity_maps(tok, data.text_tokens[rows]), data.lengths[rows])

    return fn


def dcsm_scores(data: CachedDataset, scorer: DCSMScorer, device):
    return lambda tok, pooled, rows: data.score(scorer, tok, pooled, rows, device)


def load_dcsm(checkpoint, device) -> tuple[DCSMScorer, dict]:
    """The scorer `dcsm-cache train` wrote, and its record; none given is an error that says which file."""
    if not checkpoint:
        raise ConfigError("scorer dcsm needs --checkpoint, the file `dcsm-cache train` wrote")
    return load_scorer(checkpoint, device)


@torch.no_grad()
def score_items(data: CachedDataset, items: list, fn, batch_size: int) -> list[np.ndarray]:
    """Scores per item (one array of K values each) from `fn(image tokens, image pooled, caption rows)`."""
    out: list[np.ndarray | None] = [None] * len(items)
    with tqdm(total=len(items), desc=f"score {data.dataset.name}", unit="item", delay=2) as bar:  # long runs only
        for pos, tok, pooled, rows in data.item_batches(items, batch_size):
            scores = fn(tok, pooled, rows)
            for j, i in enumerate(pos):
                out[i] = scores[j].float().cpu().numpy()
            bar.update(len(pos))
    return out  # type: ignore[return-value]
