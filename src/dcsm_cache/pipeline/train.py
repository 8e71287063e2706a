"""Train the DCSM scorer from a feature store: the backbone never runs again.

    train("stores/shapes-clip/shapes_train.zarr", "models/shapes-clip/dcsm.pt", TrainConfig(steps=2000))

Each batch takes B images (whole chunks at random, shuffled within a buffer; `train_data.py`: the
store in memory when it fits) with their candidate
captions: the positive and the item's hard negatives. Every image is scored against all B
positives and its own hard negatives; the loss is cross-entropy image→caption over those, plus
caption→image over the B positives (both directions). Identical positives of two images are
masked, as they are not negatives. Items with subset "val" are held out and scored every
`eval_every` steps. The checkpoint holds the scorer's weights, its config and what it was trained on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import at_least, config_hash, one_of, require
from ..errors import BadInputError
from .cache import CachedDataset
from .device import resolve_device
from .scorer import DCSMScorer, ScorerConfig
from .scorer_file import save_scorer
from .train_data import READERS, TrainBatches, on_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1200
    batch_size: int = 16
    lr: float = 1e-2
    weight_decay: float = 1e-4
    text_len: int = 24
    buffer_chunks: int = 64
    reader: str = "auto"  # load: image tokens in memory; stream: buffer_chunks chunks at a time; auto (train_data.py)
    eval_every: int = 500
    hard_negative_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    scorer: ScorerConfig = field(default_factory=ScorerConfig)

    def __post_init__(self):
        at_least(
            "train",
            steps=(self.steps, 1),
            batch_size=(self.batch_size, 2),
            text_len=(self.text_len, 1),
            buffer_chunks=(self.buffer_chunks, 1),
            eval_every=(self.eval_every, 1),
            hard_negative_weight=(self.hard_negative_weight, 0.0),
        )
        one_of("train", "reader", self.reader, READERS)
        require(self.lr > 0, "train", f"lr={self.lr} must be positive")
        require(0 <= self.weight_decay, "train", f"weight_decay={self.weight_decay} must not be negative")


def _group_items(data: CachedDataset, subset_is_val: bool) -> dict[int, list[int]]:
    """image row -> item indices (items of valid images, in or out of the val subset)."""
    valid = data.valid
    by_image: dict[int, list[int]] = {}
    for i, it in enumerate(data.dataset.items):
        if (it.subset == "val") == subset_is_val and valid[it.image]:
            by_image.setdefault(it.image, []).append(i)
    return by_image


def batch_scores(scorer: DCSMScorer, data: CachedDataset, img_tok, img_pooled, pos, negs, device) -> torch.Tensor:
    """[B, B + K-1] scores: image b against every positive, then against its own hard negatives."""
    b = len(pos)
    rows = torch.cat([pos.unsqueeze(0).expand(b, b), negs], dim=1)  # [B, B+K-1] caption rows
    return scorer(
        img_tok,
        img_pooled,
        data.text_tokens[rows].to(device),
        data.text_pooled[rows].to(device),
        data.lengths[rows].to(device),
        data.fr_columns[rows].to(device),
    )


def contrastive_loss(scores: torch.Tensor, pos: torch.Tensor, hard_weight: float = 0.0) -> torch.Tensor:
    """Image→caption CE over all positives and the image's hard negatives, caption→image CE over the
    positives, plus `hard_weight` × CE of each positive against its own hard negatives alone (the
    choice every benchmark item asks for)."""
    b = len(pos)
    same = (pos.unsqueeze(0) == pos.unsqueeze(1)) & ~torch.eye(b, dtype=torch.bool, device=pos.device)
    scores = scores.clone()
    scores[:, :b] = scores[:, :b].masked_fill(same.to(scores.device), float("-inf"))
    target = torch.arange(b, device=scores.device)
    loss = (F.cross_entropy(scores, target) + F.cross_entropy(scores[:, :b].T, target)) / 2
    if hard_weight:
        own = torch.cat([scores.diagonal()[:, None], scores[:, b:]], dim=1)  # [B, K]: positive first
        loss = loss + hard_weight * F.cross_entropy(own, torch.zeros(b, dtype=torch.long, device=scores.device))
    return loss


def train(
    store: str | os.PathLike, out: str | os.PathLike, cfg: TrainConfig = TrainConfig(), items: str | None = None
) -> dict:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = resolve_device(cfg.device)
    data = CachedDataset.open(store, text_len=cfg.text_len, items=items)
    train_items, val_items = _group_items(data, False), _group_items(data, True)
    if not train_items:
        raise BadInputError(f"{store}: no training items with readable images")
    ks = {len(data.dataset.items[i].candidates) for v in train_items.values() for i in v}
    if len(ks) != 1 or ks == {1}:
        raise BadInputError(
            f"{store}: training needs items with the same number (>1) of candidates, found {sorted(ks)}"
        )
    scorer = DCSMScorer(cfg.scorer, data.n_tokens, cfg.text_len, len(data.fr_words)).to(device)
    opt = torch.optim.AdamW(
        [p for p in scorer.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    bar = tqdm(total=cfg.steps, desc="train", disable=not cfg.progress)
    step, losses, history = 0, [], []
    batch = min(cfg.batch_size, sum(len(v) for v in train_items.values()))
    batches = TrainBatches(data, train_items, batch, cfg.buffer_chunks, cfg.reader, device)
    data = on_device(data, device)
    while step < cfg.steps:
        epoch_start = step
        for img_tok, img_pooled, pos, negs in batches.epoch(rng):
            scorer.train()
            loss = contrastive_loss(
                batch_scores(scorer, data, img_tok, img_pooled, pos, negs, device), pos, cfg.hard_negative_weight
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            bar.update()
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", refresh=False)
            if val_items and (step % cfg.eval_every == 0 or step == cfg.steps):
                history.append({"step": step, "val_accuracy": validate(scorer, data, val_items, device)})
                log.info("step %d: val accuracy %.3f", step, history[-1]["val_accuracy"])
            if step >= cfg.steps:
                break
        if step == epoch_start:
            raise BadInputError(
                f"{store}: no buffer of {cfg.buffer_chunks} chunks holds a batch of {batch} items; raise buffer_chunks"
            )
    bar.close()
    summary = {"steps": step, "final_loss": float(np.mean(losses[-50:])), "history": history}
    save_scorer(scorer, checkpoint_meta(data, cfg, summary), out)
    return summary


@torch.no_grad()
def validate(scorer: DCSMScorer, data: CachedDataset, val_items: dict[int, list[int]], device) -> float:
    """Fraction of val items whose positive outscores all of its own candidates."""
    scorer.eval()
    items = [data.dataset.items[i] for v in val_items.values() for i in v]
    correct = 0
    for pos, tok, pooled, rows in data.item_batches(items, 256):
        scores = scorer(
            tok.to(device),
            pooled.to(device),
            data.text_tokens[rows].to(device),
            data.text_pooled[rows].to(device),
            data.lengths[rows].to(device),
            data.fr_columns[rows].to(device),
        )
        correct += sum(int(scores[j].argmax()) == items[i].correct for j, i in enumerate(pos))
    return correct / max(1, len(items))


def checkpoint_meta(data: CachedDataset, cfg: TrainConfig, summary: dict) -> dict:
    """What the scorer was trained on and with, for `scorer_file.save_scorer`."""
    a = data.store.attrs
    return {
        "scorer_config": dataclasses.asdict(cfg.scorer),
        "train_config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "scorer"},
        "config_hash": config_hash(cfg),
        "n_tokens": data.n_tokens,
        "text_len": cfg.text_len,
        "fr_words": list(data.fr_words),
        "backbone": a["backbone"],
        "backbone_id": a["backbone_id"],
        "identity": a["identity"],
        "store_fingerprint": a["fingerprint"],
        "summary": summary,
    }
