"""Score every item of a benchmark from its feature store, with the CLIP cosine or a DCSM scorer.

    cfg = EvalConfig(checkpoint="models/shapes-clip/dcsm.pt")
    result = evaluate("stores/shapes-clip/shapes_spatial.zarr", "dcsm", cfg)

An item is one image and K candidate captions. `argmax` benchmarks count an item correct when the
first maximum is the correct candidate (the reference's tie rule); `strict` ones (SugarCREPE) when
the correct candidate beats every other. Items whose image could not be read are skipped and
counted. The result holds accuracy per subset and per tag value, chance level, item count, the
store fingerprint, a config hash and the evaluation code's fingerprint (`code`, as the workflow's
rule has it: `workflow/code.py`), and is what `report` merges.

Scorers are named in one registry (`pipeline/scorers.py`); IMPLEMENTATIONS here says how each one
loads what it needs and scores a batch. Nothing here imports open_clip.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...config import config_hash
from ...errors import ConfigError, StoreMismatchError
from ...progress import tqdm
from ...workflow.code import code_fingerprint
from ..dcsm import FUNCTIONAL_WORDS, CachedDataset, DCSMScorer, load_scorer, maxsim, similarity_maps
from ..device import resolve_device
from ..scorers import get_scorer

__all__ = ["EvalConfig", "IMPLEMENTATIONS", "evaluate", "is_correct", "score_items"]


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str | None = None
    batch_size: int = 256
    device: str = "auto"

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"eval: batch_size={self.batch_size} must be at least 1")


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


def is_correct(scores: np.ndarray, correct: int, metric: str) -> bool:
    if metric == "strict":
        return bool(scores[correct] > np.delete(scores, correct).max())
    return int(np.argmax(scores)) == correct  # first maximum wins ties, as in the reference


def _summary(flags: list[bool], ks: list[int]) -> dict:
    return {
        "accuracy": float(np.mean(flags)) if flags else float("nan"),
        "n_items": len(flags),
        "chance": float(np.mean([1 / k for k in ks])) if ks else float("nan"),
    }


@dataclass(frozen=True)
class Implementation:
    """How a registered scorer loads (checkpoint, device) -> (model, meta) and scores the kept items."""

    load: Callable
    score: Callable


def _no_model(checkpoint, device):
    return None, {}


def _training_free(make):
    def score(data, items, model, device, batch_size):
        return score_items(data, items, make(data), batch_size)

    return score


def _load_dcsm(checkpoint, device):
    if not checkpoint:
        raise ConfigError("scorer dcsm needs --checkpoint, the file `dcsm-cache train` wrote")
    return load_scorer(checkpoint, device)


def _score_dcsm(data, items, model, device, batch_size):
    return score_items(data, items, dcsm_scores(data, model, device), batch_size)


def _load_paper(checkpoint, device):
    from ..paper.scorer import load_reference_checkpoint

    model = load_reference_checkpoint(checkpoint, device)
    return model, {"text_len": model.text_seq}


def _score_paper(data, items, model, device, batch_size):
    from ..paper.scorer import score_items as reference_scores  # scores from the caption texts

    return reference_scores(data, items, model, device, batch_size)


def _score_itm(data, items, model, device, batch_size):
    from .itm import itm_item_scores  # re-runs BLIP on the images: ITM is not in the cache

    return itm_item_scores(data, items, device, batch_size)


IMPLEMENTATIONS: dict[str, Implementation] = {
    "cosine": Implementation(_no_model, _training_free(cosine_scores)),
    "maxsim": Implementation(_no_model, _training_free(maxsim_scores)),
    "dcsm": Implementation(_load_dcsm, _score_dcsm),
    "dcsm-paper": Implementation(_load_paper, _score_paper),
    "blip-itm": Implementation(_no_model, _score_itm),
}


def _check_trained_on(data: CachedDataset, meta: dict, store, checkpoint) -> None:
    a = data.store.attrs
    if meta.get("backbone_id") != a["backbone_id"]:
        raise StoreMismatchError(
            f"{store} was extracted with {a['backbone']!r} (id {a['backbone_id']}), but the "
            f"scorer {checkpoint} was trained on {meta['backbone']!r} (id "
            f"{meta.get('backbone_id')}), other weights or settings: use stores of that backbone"
        )
    if tuple(meta["fr_words"]) != data.fr_words:
        raise StoreMismatchError(
            f"{checkpoint} expects functional words {meta['fr_words']}, the tokenizer of "
            f"{store} gives {list(data.fr_words)}"
        )


def evaluate(store: str | os.PathLike, scorer: str, cfg: EvalConfig = EvalConfig(), items: str | None = None) -> dict:
    get_scorer(scorer)  # an unknown name lists the valid ones
    impl = IMPLEMENTATIONS[scorer]
    device = resolve_device(cfg.device)
    model, meta = impl.load(cfg.checkpoint, device)
    data = CachedDataset.open(
        store, text_len=meta.get("text_len"), items=items, fr_words=tuple(meta.get("fr_words", FUNCTIONAL_WORDS))
    )
    if "backbone_id" in meta:
        _check_trained_on(data, meta, store, cfg.checkpoint)
    valid = data.valid
    items_all = data.dataset.items
    kept = [it for it in items_all if valid[it.image]]
    scores = impl.score(data, kept, model, device, cfg.batch_size)
    metric = data.dataset.metric
    flags = [is_correct(s, it.correct, metric) for s, it in zip(scores, kept)]
    ks = [len(it.candidates) for it in kept]
    groups: dict[str, tuple[list, list]] = {}
    for f, k, it in zip(flags, ks, kept):
        for key in [it.subset] + [f"{t}={v}" for t, v in sorted(it.tags.items())]:
            groups.setdefault(key, ([], []))
            groups[key][0].append(f)
            groups[key][1].append(k)
    return {
        "dataset": data.dataset.name,
        "backbone": data.store.attrs["backbone"],
        "backbone_id": data.store.attrs["backbone_id"],
        "scorer": scorer,
        "metric": metric,
        **_summary(flags, ks),
        "n_skipped": len(items_all) - len(kept),
        "subsets": {key: _summary(*v) for key, v in sorted(groups.items()) if key},
        "store_fingerprint": data.store.attrs["fingerprint"],
        "checkpoint": cfg.checkpoint,
        "checkpoint_config_hash": meta.get("config_hash"),
        "config_hash": config_hash(asdict(cfg) | {"scorer": scorer}),
        "code": code_fingerprint("evaluate"),
    }
