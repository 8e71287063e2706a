"""Pretrain the shapes-world CLIP with open_clip's own model and contrastive loss.

    pretrain("manifests/shapes_pretrain.json", "models/shapes-clip.pt", PretrainConfig(steps=400))

The captions are web-like lists of objects (no relation or negation words), so that, as with real
CLIP, the pooled cosine learns what is in the picture but not how it is arranged. The checkpoint is
a plain open_clip state dict: `open_clip.create_model("shapes-clip", pretrained=path)` loads it,
and so does the backbone name `shapes-clip@path`.

Two losses, both contrastive over the batch:
- open_clip's `ClipLoss` on the pooled embeddings: CLIP itself. It trains only the pooled
  end-of-text token, so the word tokens a DCSM reads are never asked to match anything; on the
  shapes world the colour word of "a red circle" lands on its object about as often as chance.
- `token_loss` × the same contrastive loss on a late-interaction score (`token_pool="maxsim"`):
  the mean over the caption's words of each word's best patch cosine, the text-to-image half of
  FILIP (Yao et al. 2021) and ColBERT's MaxSim. It asks every word token to match the patch it
  names, which is what a DCSM column reads: on the shapes world 99% of colour and shape words then
  land on their object, and the pooled cosine stays as it was (near chance on relations and
  negation). `"filip"` adds FILIP's other half (each patch's best word; slower), `"mean"` is the
  ClipLoss on the mean of the caption's tokens, `token_loss=0` is plain CLIP. Measured in
  docs/experiments.md, "The pretraining loss: attribute binding".

`hard_negatives` gives that share of each batch to scenes that differ from the batch's first ones in
one object's shape alone (`hard_negatives.py`), so that shapes, which colour does not tell apart, must
be learned.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from ...progress import tqdm

from ..._openclip import open_clip
from ...atomic import save_torch
from ...cores import cpu_cores
from ...errors import ConfigError
from ..tokens import shapes_clip  # noqa: F401  (registers shapes-clip)
from ..device import resolve_device
from ..tokens.encoder import text_tower, token_encoder
from ..items import read_manifest
from .hard_negatives import other_shape, with_partners
from .late_interaction import late_interaction
from .train_images import train_images
from .used_rows import used_rows

log = logging.getLogger(__name__)
TOKEN_POOLS = ("maxsim", "filip", "mean")


@dataclass(frozen=True)
class PretrainConfig:
    arch: str = "shapes-clip"
    steps: int = 400
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 40
    token_loss: float = 1.0  # weight of the contrastive loss on the caption's tokens; 0 = plain CLIP
    token_pool: str = "maxsim"  # "maxsim": each word's best patch; "filip": and each patch's best word; "mean"
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    threads: int = 0  # CPU threads (torch.set_num_threads) and image-decoding workers; 0: every core
    hard_negatives: float = 0.0  # share of each batch given to scenes one shape apart from others (hard_negatives.py)

    def __post_init__(self):
        if self.threads < 0:
            raise ConfigError(f"pretrain: threads={self.threads} must be 0 (every core) or more")
        if not 0 <= self.hard_negatives <= 1:
            raise ConfigError(f"pretrain: hard_negatives={self.hard_negatives} must be in [0, 1]")
        if self.token_pool not in TOKEN_POOLS:
            raise ConfigError(f"pretrain: token_pool {self.token_pool!r} is not one of {', '.join(TOKEN_POOLS)}")


def _lr(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def _trim(ids: torch.Tensor, tower: torch.nn.Module) -> torch.Tensor:
    """[N, context] ids -> [N, longest caption]: a causal text tower's outputs at those positions do not
    depend on the pads after them (the default's captions fill 16 of 32 positions at most). Left
    whole: towers that are not causal, and CoCa's, whose appended CLS takes the position after the ids."""
    causal = getattr(tower, "attn_mask", None) is not None and getattr(tower, "cls_emb", None) is None
    return ids[:, : int((ids != 0).sum(1).max())] if causal else ids


def _token_loss(pool: str, patches, tokens, valid, img, scale, loss_fn) -> torch.Tensor:
    """The contrastive loss on the caption's tokens (pads excluded)."""
    if pool == "mean":
        tokens = F.normalize(tokens, dim=-1)
        mean = (tokens * valid.unsqueeze(-1)).sum(1) / valid.sum(1, keepdim=True)
        return loss_fn(img, F.normalize(mean, dim=-1), scale)
    logits = scale * late_interaction(patches, tokens, valid, both_ways=pool == "filip")
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def pretrain(items: str | os.PathLike, out: str | os.PathLike, cfg: PretrainConfig = PretrainConfig()) -> dict:
    """Train `cfg.arch` from scratch on every (image, first candidate caption) of the manifest."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    ds = read_manifest(items)
    model, preprocess, _ = open_clip.create_model_and_transforms(cfg.arch)
    tokenizer = open_clip.get_tokenizer(cfg.arch)
    model = model.to(device).train()
    model.visual.to(memory_format=torch.channels_last)  # ~15% faster convolutions, forward and backward
    enc = token_encoder(model)  # its adapters' fns keep gradients (TokenEncoder.text/image are no_grad)
    text_fn, image_fn = enc.text_adapter.fn, enc.image_adapter.fn

    pairs = [(it.image, ds.captions[it.candidates[it.correct]]) for it in ds.items]
    workers = cfg.threads or cpu_cores()
    images = train_images(ds, [row for row, _ in pairs], preprocess, workers, cfg.progress)
    texts = _trim(tokenizer([c for _, c in pairs]), text_tower(model))
    with used_rows(text_tower(model), texts):  # (the embedding's rows no caption uses are never changed)
        losses = _train(model, image_fn, text_fn, images, texts, [c for _, c in pairs], cfg, device)
    save_torch({k: v.contiguous() for k, v in model.state_dict().items()}, out)  # (the usual layout)
    return {"steps": cfg.steps, "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])), "n_pairs": len(pairs)}


def _train(model, image_fn, text_fn, images, texts, captions, cfg: PretrainConfig, device) -> list[float]:
    """The optimisation: `cfg.steps` AdamW steps on batches of (image, caption); the losses."""
    loss_fn = open_clip.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    partners = other_shape(captions) if cfg.hard_negatives else None
    gen = torch.Generator().manual_seed(cfg.seed)
    perm, pos, losses = torch.randperm(len(captions), generator=gen), 0, []
    bar = tqdm(range(cfg.steps), desc="pretrain", disable=not cfg.progress)
    for step in bar:
        if pos + cfg.batch_size > len(perm):
            perm, pos = torch.randperm(len(captions), generator=gen), 0
        idx = perm[pos : pos + cfg.batch_size]
        if partners is not None:
            idx = with_partners(idx, partners, cfg.hard_negatives, gen)
        pos += cfg.batch_size
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        ids = texts[idx].to(device)
        pixels = images[idx].float().to(device).contiguous(memory_format=torch.channels_last)
        patches, img = image_fn(model.visual, pixels)
        img = F.normalize(img, dim=-1)
        tokens, pooled = text_fn(text_tower(model), ids)
        scale = model.logit_scale.exp()
        loss = loss_fn(img, F.normalize(pooled, dim=-1), scale)
        if cfg.token_loss:
            valid = (ids != 0).to(tokens.dtype)
            loss = loss + cfg.token_loss * _token_loss(cfg.token_pool, patches, tokens, valid, img, scale, loss_fn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}", refresh=False)
    return losses
