"""The DCSM scorer: a tiny CNN that reads a standardised similarity map and returns one score.

    scorer = DCSMScorer(ScorerConfig(), n_tokens=64, text_len=16, n_functional=12)
    scores = scorer(image_tokens, image_pooled, text_tokens, text_pooled, lengths, fr_columns)  # [B, K]

The trunk is the paper's: conv3×3 → ReLU → conv3×3 → ReLU → flatten → fc → ReLU → fc. Four
additions, each a switch in `ScorerConfig` and all off under `paper_compat`:
- `pooled_row`: the pooled image embedding's cosines with the text tokens, as one more map row;
- `pool`: a 2×2 max-pool before the first fc (fewer weights, some shift tolerance);
- `maxsim`: per text column, the max over image tokens of the conv features, fed to the fc. This
  is the position-free "is there a region that matches this word in this context" signal (the
  late-interaction MaxSim of ColBERT); the flattened map alone must learn it once per position,
  which is what held attribute binding back;
- `locate`: per text column, where in the image it matches: the softmax-weighted mean (y, x) of
  the patch grid under that column's similarities. Spatial relations are a comparison of two such
  locations, which the flattened map can only learn position by position;
- `global_cosine`: the backbone's own pooled cosine, added through a learned weight (`cosine_scale`),
  with the last fc zero-initialised (`residual`), so that the untrained scorer ranks exactly as
  CLIP does and training learns a correction. Why: a CLIP loss trains only the pooled (end) text
  token, so the word tokens carry little of what binds an attribute to its object (on the shapes
  world pretrained with CLIP's loss alone, training-free MaxSim over the tokens scores binding
  probes at chance while the pooled cosine scores ~80%); a scorer that starts from the maps alone
  has to relearn that from few examples and loses to the cosine it could have kept. A backbone
  whose word tokens are grounded (the default shapes-clip, pretrained with a token-level loss) does
  better with both switches off: its maps hold the binding signal, and starting from the cosine
  only slows learning it.
- `column_jitter`: in training only, each map's word columns scaled by a random factor around 1, so
  that the scorer reads where a word matches more than how strongly (a combination never seen in
  training may match its words more weakly);
- `maxsim_residual`: the same for the training-free MaxSim of the raw maps (each word's best
  image-token cosine, averaged over the caption's words; the `maxsim` scorer, here without the
  functional words, whose best patch says nothing and would tip "with" over "without"), added through
  a learned weight (`maxsim_scale`) with the last fc zero-initialised, so that the untrained scorer
  ranks as MaxSim does. For a backbone with grounded word tokens MaxSim is the strongest
  training-free score (on the shapes world it beats the cosine on binding), and the CNN learns what
  MaxSim cannot see: word order, relations, negation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...config import at_least, one_of, require
from .maps import STANDARDISE, apply_functional_rows, column_mask, maxsim, similarity_maps, standardise


@dataclass(frozen=True)
class ScorerConfig:
    channels: int = 8
    hidden: int = 128
    dropout: float = 0.1
    pooled_row: bool = True
    pool: bool = True
    maxsim: bool = True
    locate: bool = True
    global_cosine: bool = True
    cosine_scale: float = 100.0  # initial weight of the backbone's cosine
    residual: bool = True  # zero-init the last fc: the untrained scorer ranks as its base term does
    maxsim_residual: bool = False  # add the raw maps' MaxSim through a learned weight (a base term)
    maxsim_scale: float = 100.0  # its initial weight
    functional_rows: bool = True
    standardise: str = "map"  # or "image": one mean/std over all of an image's candidates
    train_functional_rows: bool = True
    column_jitter: float = 0.0  # in training, each map's word columns scaled by exp(column_jitter * N(0, 1))

    def __post_init__(self):
        one_of("scorer", "standardise", self.standardise, STANDARDISE)
        at_least("scorer", channels=(self.channels, 1), hidden=(self.hidden, 1))
        require(0 <= self.dropout < 1, "scorer", f"dropout={self.dropout} must be in [0, 1)")
        require(self.column_jitter >= 0, "scorer", f"column_jitter={self.column_jitter} must not be negative")


def patch_grid(n_tokens: int) -> tuple[int, int, int] | None:
    """(leading non-patch tokens, grid height, grid width) for a square patch grid, CLS first or absent."""
    for skip in (0, 1):
        side = math.isqrt(n_tokens - skip)
        if side > 1 and side * side == n_tokens - skip:
            return skip, side, side
    return None


class DCSMScorer(nn.Module):
    def __init__(self, cfg: ScorerConfig, n_tokens: int, text_len: int, n_functional: int):
        super().__init__()
        self.cfg, self.n_tokens, self.text_len = cfg, n_tokens, text_len
        rows = n_tokens + int(cfg.pooled_row)
        c = cfg.channels
        self.convs = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(cfg.dropout),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(),
            nn.Dropout2d(cfg.dropout),
        )
        flat = c * (rows // 2) * (text_len // 2) if cfg.pool else c * rows * text_len
        self.grid = patch_grid(n_tokens) if cfg.locate else None
        extra = (c * text_len if cfg.maxsim else 0) + (2 * text_len if self.grid else 0)
        self.fc = nn.Sequential(
            nn.Linear(flat + extra, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 1)
        )
        # The reference's initialisation: (normalize(randn) + 1) / 3, entries ~0.33 (benchmarks.md §1).
        init = (F.normalize(torch.randn(n_functional, rows), dim=1) + 1) / 3
        self.fr_vectors = nn.Parameter(init, requires_grad=cfg.train_functional_rows)
        self.cos_weight = nn.Parameter(torch.tensor(float(cfg.cosine_scale))) if cfg.global_cosine else None
        self.maxsim_weight = nn.Parameter(torch.tensor(float(cfg.maxsim_scale))) if cfg.maxsim_residual else None
        if (cfg.global_cosine or cfg.maxsim_residual) and cfg.residual:  # start as the base term; learn a correction
            nn.init.zeros_(self.fc[-1].weight)
            nn.init.zeros_(self.fc[-1].bias)
        if self.grid:
            skip, h, w = self.grid
            ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
            self.register_buffer("coords", torch.stack([ys.flatten(), xs.flatten()]), persistent=False)  # [2, hw]
            self.locate_sharpness = nn.Parameter(torch.tensor(2.0))

    def maps(self, image_tokens, image_pooled, text_tokens, lengths, fr_columns, raw=None) -> torch.Tensor:
        """Standardised DCSMs [B, K, rows, L] for images [B, P, D] against their candidates [B, K, L, D]
        (`raw`: their cosine maps, when already computed)."""
        s = similarity_maps(image_tokens, text_tokens) if raw is None else raw
        if self.cfg.pooled_row:
            row = torch.einsum("bd,bkld->bkl", F.normalize(image_pooled.float(), dim=-1), text_tokens.float())
            s = torch.cat([s, row.unsqueeze(2)], dim=2)
        if self.cfg.functional_rows:
            s = apply_functional_rows(s, fr_columns, self.fr_vectors)
        return standardise(s, column_mask(lengths, s.shape[-1]), per=self.cfg.standardise)

    def forward(self, image_tokens, image_pooled, text_tokens, text_pooled, lengths, fr_columns) -> torch.Tensor:
        b, k = text_tokens.shape[:2]
        raw = similarity_maps(image_tokens, text_tokens)
        jittered = raw
        if self.training and self.cfg.column_jitter:  # how strongly a word matches varies; where it matches holds
            jittered = raw * torch.exp(self.cfg.column_jitter * torch.randn(b, k, 1, raw.shape[-1], device=raw.device))
        s = self.maps(image_tokens, image_pooled, text_tokens, lengths, fr_columns, jittered)
        # [BK, c, rows, L], channels-last from the first convolution on (its one-channel input, laid out
        # rows-fastest by the einsum, is restrided so); the readouts keep their gradients channels-last
        h = self.convs(s.flatten(0, 1).unsqueeze(1).contiguous(memory_format=torch.channels_last))
        feats = [(_ChannelsLastGrad.apply(F.max_pool2d(h, 2)) if self.cfg.pool else h).flatten(1)]
        if self.cfg.maxsim:
            feats.append(_ColumnMax.apply(h).flatten(1))  # [BK, c*L]
        if self.grid:
            skip, gh, gw = self.grid
            w = torch.softmax(s[:, :, skip : skip + gh * gw] * self.locate_sharpness, dim=2)  # [B, K, hw, L]
            feats.append(torch.einsum("cp,bkpl->bkcl", self.coords, w).flatten(0, 1).flatten(1))  # [BK, 2L]
        score = self.fc(torch.cat(feats, dim=1)).view(b, k)
        if self.cos_weight is not None:
            cos = torch.einsum(
                "bd,bkd->bk", F.normalize(image_pooled.float(), dim=-1), F.normalize(text_pooled.float(), dim=-1)
            )
            score = score + self.cos_weight * cos
        if self.maxsim_weight is not None:  # (over the words a patch can show: with/without would tip it)
            skip = fr_columns >= 0 if self.cfg.functional_rows else None
            score = score + self.maxsim_weight * maxsim(raw, lengths, skip)
        return score


def _nhwc(h: torch.Tensor) -> torch.Tensor:
    """A channels-last [N, C, H, W] tensor as the contiguous [N, H, W, C] it is in memory."""
    return h.permute(0, 2, 3, 1)


class _ColumnMax(torch.autograd.Function):
    """`h.amax(dim=2)` of a channels-last h [N, C, rows, L], values and gradient bit for bit autograd's
    (ties share the gradient), reduced over h's contiguous NHWC layout, many times faster than over the
    channels-last tensor itself; its gradient comes back channels-last, so adding it to the pooling's and
    the ReLU's backward stay on their fast paths (bench_train.py's ratio: benchmarks/RESULTS.md, "Training")."""

    @staticmethod
    def forward(ctx, h):
        v = _nhwc(h)
        best = v.amax(dim=1, keepdim=True)  # [N, 1, L, C]
        ctx.save_for_backward(v, best)
        return best.squeeze(1).transpose(1, 2)  # [N, C, L]

    @staticmethod
    def backward(ctx, grad):
        v, best = ctx.saved_tensors
        ties = v == best
        share = grad.transpose(1, 2).unsqueeze(1) / ties.sum(dim=1, keepdim=True, dtype=torch.int32)
        return (share * ties).permute(0, 3, 1, 2)  # autograd's amax backward: grad / count * mask


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity whose gradient is made channels-last: the flattened pooled features' gradient arrives
    in NCHW order, and max-pooling's backward on a channels-last input runs 3x faster given one."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=torch.channels_last)
