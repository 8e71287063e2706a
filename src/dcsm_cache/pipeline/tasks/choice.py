"""Score every item of a benchmark from its feature store, with the CLIP cosine or a DCSM scorer.

    cfg = EvalConfig(checkpoint="models/shapes-clip/dcsm.pt")
    result = evaluate("stores/shapes-clip/shapes_spatial.zarr", "dcsm", cfg)

An item is one image and K candidate captions. `argmax` benchmarks count an item correct when the
first maximum is the correct candidate (the reference's tie rule); `strict` ones (SugarCREPE) when
the correct candidate beats every other. Items whose image could not be read are skipped and
counted. The result holds accuracy per subset and per tag value, chance level, item count, the
store fingerprint, a config hash and the fingerprint of the code that computed it (`code`: the CLI
passes the workflow stage's, as its rule has it), and is what `report` merges.

Scorers are declared once, in the registry (`pipeline/scorers.py`): each entry says how it loads what
it needs and scores the items, and evaluation dispatches through it (the cache-only scorers are in
`scoring.py`). Nothing here imports open_clip.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np

from ...config import config_hash
from ...errors import ConfigError, StoreMismatchError
from ..dcsm import FUNCTIONAL_WORDS, CachedDataset
from ..device import resolve_device
from ..scorers import get_scorer

__all__ = ["EvalConfig", "evaluate", "is_correct"]


@dataclass(frozen=True)
class EvalConfig:
    checkpoint: str | None = None
    batch_size: int = 256
    device: str = "auto"

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"eval: batch_size={self.batch_size} must be at least 1")


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


def evaluate(
    store: str | os.PathLike,
    scorer: str,
    cfg: EvalConfig = EvalConfig(),
    items: str | None = None,
    code: str | None = None,
) -> dict:
    """Every item of `store` scored by `scorer` (module doc); `code`, the computing code's fingerprint, is recorded."""
    entry = get_scorer(scorer)  # an unknown name lists the valid ones
    device = resolve_device(cfg.device)
    model, meta = entry.load(cfg.checkpoint, device)
    data = CachedDataset.open(
        store, text_len=meta.get("text_len"), items=items, fr_words=tuple(meta.get("fr_words", FUNCTIONAL_WORDS))
    )
    if "backbone_id" in meta:
        _check_trained_on(data, meta, store, cfg.checkpoint)
    valid = data.valid
    items_all = data.dataset.items
    kept = [it for it in items_all if valid[it.image]]
    scores = entry.score(data, kept, model, device, cfg.batch_size)
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
        "code": code,
    }
