"""Pretrain the shapes-world CLIP with open_clip's own model and contrastive loss.

    pretrain("manifests/shapes_pretrain.json", "models/shapes-clip.pt", PretrainConfig(steps=400))

The captions are web-like lists of objects (no relation or negation words), so that, as with real
CLIP, the pooled cosine learns what is in the picture but not how it is arranged. The checkpoint is
a plain open_clip state dict: `open_clip.create_model("shapes-clip", pretrained=path)` loads it,
and so does the backbone name `shapes-clip@path`.

`token_loss` (off by default) adds the same ClipLoss on the mean of each caption's unit-norm
projected tokens, the text-side twin of the image tower's average pooling. CLIP's loss trains only
the pooled end-of-text token, so in-context colour words lie on their object about as often as
chance; with `token_loss=1` they do 98% of the time. It is an experiment switch, not the default:
on the shapes world it lowers the pooled cosine's binding accuracy and does not lift the DCSM's
(docs/design.md, "Attribute binding").
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .._compat import open_clip
from . import tinyclip  # noqa: F401  (registers shapes-clip)
from .backbones import resolve_device
from .towers import text_tower, token_encoder
from .items import open_image, read_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    arch: str = "shapes-clip"
    steps: int = 400
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 40
    token_loss: float = 0.0   # weight of a second ClipLoss on the mean of each caption's tokens (see above)
    seed: int = 0
    device: str = "auto"
    progress: bool = True


def _lr(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def pretrain(items: str | os.PathLike, out: str | os.PathLike, cfg: PretrainConfig = PretrainConfig()) -> dict:
    """Train `cfg.arch` from scratch on every (image, first candidate caption) of the manifest."""
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    ds = read_manifest(items)
    model, preprocess, _ = open_clip.create_model_and_transforms(cfg.arch)
    tokenizer = open_clip.get_tokenizer(cfg.arch)
    model = model.to(device).train()
    text_fn = token_encoder(model).text_adapter.fn   # with gradients (TokenEncoder.text is no_grad)

    pairs = [(it.image, ds.captions[it.candidates[it.correct]]) for it in ds.items]
    images = torch.stack([preprocess(open_image(ds, row)) for row, _ in
                          tqdm(pairs, desc="load", disable=not cfg.progress)]).half()
    texts = tokenizer([c for _, c in pairs])
    loss_fn = open_clip.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    gen = torch.Generator().manual_seed(cfg.seed)
    perm, pos, losses = torch.randperm(len(pairs), generator=gen), 0, []
    bar = tqdm(range(cfg.steps), desc="pretrain", disable=not cfg.progress)
    for step in bar:
        if pos + cfg.batch_size > len(perm):
            perm, pos = torch.randperm(len(pairs), generator=gen), 0
        idx = perm[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        ids = texts[idx].to(device)
        img = F.normalize(model.encode_image(images[idx].float().to(device)), dim=-1)
        tokens, pooled = text_fn(text_tower(model), ids)
        scale = model.logit_scale.exp()
        loss = loss_fn(img, F.normalize(pooled, dim=-1), scale)
        if cfg.token_loss:  # the same loss on the mean of the caption's unit-norm tokens (pads excluded)
            valid = (ids != 0).unsqueeze(-1).to(tokens.dtype)
            mean = (F.normalize(tokens, dim=-1) * valid).sum(1) / valid.sum(1)
            loss = loss + cfg.token_loss * loss_fn(img, F.normalize(mean, dim=-1), scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, out)
    return {"steps": cfg.steps, "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])), "n_pairs": len(pairs)}
