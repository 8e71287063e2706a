"""Score every item of a benchmark from its feature store, with the CLIP cosine or a DCSM scorer.

    result = evaluate("stores/shapes-clip/shapes_spatial.zarr", "dcsm", EvalConfig(checkpoint="models/shapes-clip/dcsm.pt"))

An item is one image and K candidate captions. `argmax` benchmarks count an item correct when the
first maximum is the correct candidate (the reference's tie rule); `strict` ones (SugarCREPE) when
the correct candidate beats every other. Items whose image could not be read are skipped and
counted. The result holds accuracy per subset and per tag value, chance level, item count, the
store fingerprint and a config hash, and is what `report` merges.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import config_hash
from ..errors import BadInputError, ConfigError, InputNotFoundError, StoreMismatchError, UnknownNameError
from .backbones import resolve_device
from .cache import CachedDataset
from .dcsm import FUNCTIONAL_WORDS, similarity_maps
from .scorer import DCSMScorer, ScorerConfig

SCORERS = ("cosine", "maxsim", "dcsm", "dcsm-paper")  # dcsm-paper: the reference DCSM evaluation (compat.py)


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str | None = None
    batch_size: int = 256
    device: str = "auto"


def load_scorer(path: str | os.PathLike, device) -> tuple[DCSMScorer, dict]:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"scorer checkpoint {path} does not exist: run `dcsm-cache train` first")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        assert ckpt.get("format") == "dcsm-cache/scorer-v1"
    except Exception as err:
        raise BadInputError(f"{path} is not a dcsm-cache scorer checkpoint ({type(err).__name__}): "
                            f"retrain it with `dcsm-cache train`") from err
    scorer = DCSMScorer(ScorerConfig(**ckpt["scorer_config"]), ckpt["n_tokens"], ckpt["text_len"],
                        len(ckpt["fr_words"]))
    scorer.load_state_dict(ckpt["state_dict"])
    return scorer.to(device).eval(), ckpt


def cosine_scores(data: CachedDataset):
    """CLIP's own score: cosine of the pooled embeddings."""
    return lambda tok, pooled, rows: torch.einsum("bd,bkd->bk", F.normalize(pooled.float(), dim=-1),
                                                  F.normalize(data.text_pooled[rows].float(), dim=-1))


def maxsim_scores(data: CachedDataset):
    """Training-free late interaction (ColBERT's MaxSim): the mean over the caption's word tokens (start
    and end tokens left out) of their best cosine with any image token. What the token maps alone know."""
    def fn(tok, pooled, rows):
        best = similarity_maps(tok, data.text_tokens[rows]).amax(dim=2)             # [b, K, L]
        n = data.lengths[rows].unsqueeze(-1)                                        # [b, K, 1]
        col = torch.arange(best.shape[-1])
        words = (col >= 1) & (col < n - 1)
        return (best * words).sum(-1) / words.sum(-1).clamp(min=1)
    return fn


def dcsm_scores(data: CachedDataset, scorer: DCSMScorer, device):
    def fn(tok, pooled, rows):
        return scorer(tok.to(device), pooled.to(device), data.text_tokens[rows].to(device),
                      data.text_pooled[rows].to(device), data.lengths[rows].to(device),
                      data.fr_columns[rows].to(device))
    return fn


@torch.no_grad()
def score_items(data: CachedDataset, items: list, fn, batch_size: int) -> list[np.ndarray]:
    """Scores per item (one array of K values each) from `fn(image tokens, image pooled, caption rows)`."""
    out: list[np.ndarray | None] = [None] * len(items)
    for pos, tok, pooled, rows in data.item_batches(items, batch_size):
        scores = fn(tok, pooled, rows)
        for j, i in enumerate(pos):
            out[i] = scores[j].float().cpu().numpy()
    return out  # type: ignore[return-value]


def is_correct(scores: np.ndarray, correct: int, metric: str) -> bool:
    if metric == "strict":
        return bool(scores[correct] > np.delete(scores, correct).max())
    return int(np.argmax(scores)) == correct  # first maximum wins ties, as in the reference


def _summary(flags: list[bool], ks: list[int]) -> dict:
    return {"accuracy": float(np.mean(flags)) if flags else float("nan"), "n_items": len(flags),
            "chance": float(np.mean([1 / k for k in ks])) if ks else float("nan")}


def evaluate(store: str | os.PathLike, scorer: str, cfg: EvalConfig = EvalConfig(), items: str | None = None) -> dict:
    if scorer not in SCORERS:
        raise UnknownNameError(f"unknown scorer {scorer!r}; valid: {', '.join(SCORERS)}")
    device = resolve_device(cfg.device)
    model, ckpt = None, {}
    text_len = None
    if scorer == "dcsm":
        if not cfg.checkpoint:
            raise ConfigError("scorer dcsm needs --checkpoint, the file `dcsm-cache train` wrote")
        model, ckpt = load_scorer(cfg.checkpoint, device)
        text_len = ckpt["text_len"]
    # -- paper_compat: the reference's checkpoint, functional rows and standardisation (compat.py) --
    if scorer == "dcsm-paper":
        from . import compat
        model = compat.load_reference_checkpoint(cfg.checkpoint, device)
        text_len = model.text_seq
    # -----------------------------------------------------------------------------------------------
    data = CachedDataset.open(store, text_len=text_len, items=items,
                              fr_words=tuple(ckpt["fr_words"]) if ckpt else FUNCTIONAL_WORDS)
    if ckpt and ckpt.get("backbone_id") != data.store.attrs["backbone_id"]:
        raise StoreMismatchError(f"{store} was extracted with {data.store.attrs['backbone']!r} (id "
                                 f"{data.store.attrs['backbone_id']}), but the scorer {cfg.checkpoint} was trained on "
                                 f"{ckpt['backbone']!r} (id {ckpt.get('backbone_id')}), other weights or settings: "
                                 f"use stores of that backbone")
    if ckpt and tuple(ckpt["fr_words"]) != data.fr_words:
        raise StoreMismatchError(f"{cfg.checkpoint} expects functional words {ckpt['fr_words']}, the tokenizer of "
                                 f"{store} gives {list(data.fr_words)}")
    valid = data.valid
    items_all = data.dataset.items
    kept = [it for it in items_all if valid[it.image]]
    if scorer == "dcsm-paper":  # paper_compat (compat.py): scores from the caption texts
        scores = compat.score_items(data, kept, model, device, cfg.batch_size)
    else:
        fn = {"cosine": cosine_scores, "maxsim": maxsim_scores}[scorer](data) if model is None \
            else dcsm_scores(data, model, device)
        scores = score_items(data, kept, fn, cfg.batch_size)
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
        "dataset": data.dataset.name, "backbone": data.store.attrs["backbone"], "scorer": scorer,
        "metric": metric, **_summary(flags, ks), "n_skipped": len(items_all) - len(kept),
        "subsets": {key: _summary(*v) for key, v in sorted(groups.items()) if key},
        "store_fingerprint": data.store.attrs["fingerprint"],
        "checkpoint": cfg.checkpoint, "checkpoint_config_hash": ckpt.get("config_hash"),
        "config_hash": config_hash(asdict(cfg) | {"scorer": scorer}),
    }


def write_result(result: dict, out: str | os.PathLike) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out)
