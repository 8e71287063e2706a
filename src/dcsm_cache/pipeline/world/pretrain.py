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
  negation). `"filip"` adds FILIP's other half (each patch's best word; slower, see the design
  doc), `"mean"` is the ClipLoss on the mean of the caption's tokens, `token_loss=0` is plain CLIP.
  Measured in docs/design.md, "Attribute binding on the shapes world".
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
from ...errors import ConfigError
from . import tinyclip  # noqa: F401  (registers shapes-clip)
from ..device import resolve_device
from ..tokens.encoder import text_tower, token_encoder
from ..items import open_image, read_manifest

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
    threads: int = 0  # CPU threads (torch.set_num_threads); 0: torch's default (every core)

    def __post_init__(self):
        if self.threads < 0:
            raise ConfigError(f"pretrain: threads={self.threads} must be 0 (every core) or more")
        if self.token_pool not in TOKEN_POOLS:
            raise ConfigError(f"pretrain: token_pool {self.token_pool!r} is not one of {', '.join(TOKEN_POOLS)}")


def _lr(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


class _BestPatch(torch.autograd.Function):
    """[I, P, D] patches × [T, L, D] words -> [I, T, L]: each word's best patch dot product.

    The same values and gradients as `torch.einsum("ipd,tld->itlp", ...).max(-1).values` (the
    gradient goes to the best patch) in 40% of the time on a CPU. The similarities are laid out
    as [T·L, I, P], so the max runs over the contiguous axis, and only the argmax is kept for the
    backward pass, which is two matmuls with a one-hot gradient map instead of autograd's
    reshuffles of the [I, T, P, L] tensor. Both passes go `_CHUNK` values at a time: a buffer under
    glibc's 32 MB mmap threshold is reused from the heap, where the whole [T·L, I, P] tensor
    (134 MB for the default's batch) would be mapped and page-faulted in afresh at every step.
    """

    _CHUNK = 1 << 21  # values per block of similarities or one-hot gradients (8 MB of float32)

    @staticmethod
    def forward(ctx, patches: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        (i, p, d), (t, l, _) = patches.shape, tokens.shape
        words, flat, rows = tokens.reshape(t * l, d), patches.reshape(i * p, d), max(1, _BestPatch._CHUNK // (i * p))
        best, where = patches.new_empty(t * l, i), torch.empty(t * l, i, dtype=torch.long, device=patches.device)
        for s in range(0, t * l, rows):
            torch.max((words[s : s + rows] @ flat.T).view(-1, i, p), -1, out=(best[s : s + rows], where[s : s + rows]))
        ctx.save_for_backward(patches, tokens, where)
        return best.T.reshape(i, t, l)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        patches, tokens, where = ctx.saved_tensors
        (i, p, d), (t, l, _) = patches.shape, tokens.shape
        words, flat, rows = tokens.reshape(t * l, d), patches.reshape(i * p, d), max(1, _BestPatch._CHUNK // (i * p))
        grad = grad.reshape(i, t * l).T.unsqueeze(2)
        d_words, d_flat = torch.empty_like(words), torch.zeros_like(flat)
        for s in range(0, t * l, rows):
            n = min(rows, t * l - s)
            onehot = grad.new_zeros(n, i, p).scatter_(2, where[s : s + n].unsqueeze(2), grad[s : s + n]).view(n, i * p)
            torch.mm(onehot, flat, out=d_words[s : s + n])
            d_flat.addmm_(onehot.T, words[s : s + n])
        return d_flat.view(i, p, d), d_words.view(t, l, d)


def late_interaction(
    patches: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor, both_ways: bool = False
) -> torch.Tensor:
    """[I, P, D] image tokens × [T, L, D] text tokens ([T, L] valid) -> [I, T] scores: the mean over
    valid words of each word's best patch cosine (MaxSim); `both_ways` averages it with the mean over
    patches of each patch's best valid word cosine (FILIP)."""
    patches, tokens = F.normalize(patches, dim=-1), F.normalize(tokens, dim=-1)
    if not both_ways:
        return (_BestPatch.apply(patches, tokens) * valid).sum(-1) / valid.sum(-1)
    sim = torch.einsum("ipd,tld->itpl", patches, tokens)
    score = (sim.amax(2) * valid).sum(-1) / valid.sum(-1)
    return (score + sim.masked_fill(valid[None, :, None, :] == 0, -2).amax(3).mean(-1)) / 2


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
    enc = token_encoder(model)  # its adapters' fns keep gradients (TokenEncoder.text/image are no_grad)
    text_fn, image_fn = enc.text_adapter.fn, enc.image_adapter.fn

    pairs = [(it.image, ds.captions[it.candidates[it.correct]]) for it in ds.items]
    images = torch.stack(
        [preprocess(open_image(ds, row)) for row, _ in tqdm(pairs, desc="load", disable=not cfg.progress)]
    ).half()
    texts = tokenizer([c for _, c in pairs])
    loss_fn = open_clip.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    perm, pos, losses = torch.randperm(len(pairs), generator=gen), 0, []
    bar = tqdm(range(cfg.steps), desc="pretrain", disable=not cfg.progress)
    for step in bar:
        if pos + cfg.batch_size > len(perm):
            perm, pos = torch.randperm(len(pairs), generator=gen), 0
        idx = perm[pos : pos + cfg.batch_size]
        pos += cfg.batch_size
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg)
        ids = texts[idx].to(device)
        patches, img = image_fn(model.visual, images[idx].float().to(device))
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
    save_torch(model.state_dict(), out)
    return {"steps": cfg.steps, "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])), "n_pairs": len(pairs)}
