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
- `global_cosine`: the backbone's own pooled cosine, added through a learned weight.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dcsm import apply_functional_rows, column_mask, similarity_maps, standardise


@dataclass(frozen=True)
class ScorerConfig:
    channels: int = 8
    hidden: int = 128
    dropout: float = 0.1
    pooled_row: bool = True
    pool: bool = True
    maxsim: bool = True
    global_cosine: bool = True
    functional_rows: bool = True
    train_functional_rows: bool = True


class DCSMScorer(nn.Module):
    def __init__(self, cfg: ScorerConfig, n_tokens: int, text_len: int, n_functional: int):
        super().__init__()
        self.cfg, self.n_tokens, self.text_len = cfg, n_tokens, text_len
        rows = n_tokens + int(cfg.pooled_row)
        c = cfg.channels
        self.convs = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.ReLU(), nn.Dropout2d(cfg.dropout),
                                   nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Dropout2d(cfg.dropout))
        flat = c * (rows // 2) * (text_len // 2) if cfg.pool else c * rows * text_len
        extra = c * text_len if cfg.maxsim else 0
        self.fc = nn.Sequential(nn.Linear(flat + extra, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                nn.Linear(cfg.hidden, 1))
        # The reference's initialisation: (normalize(randn) + 1) / 3, entries ~0.33 (benchmarks.md §1).
        init = (F.normalize(torch.randn(n_functional, rows), dim=1) + 1) / 3
        self.fr_vectors = nn.Parameter(init, requires_grad=cfg.train_functional_rows)
        self.cos_weight = nn.Parameter(torch.tensor(10.0)) if cfg.global_cosine else None

    def maps(self, image_tokens, image_pooled, text_tokens, lengths, fr_columns) -> torch.Tensor:
        """Standardised DCSMs [B, K, rows, L] for images [B, P, D] against their candidates [B, K, L, D]."""
        s = similarity_maps(image_tokens, text_tokens)
        if self.cfg.pooled_row:
            row = torch.einsum("bd,bkld->bkl", image_pooled.float(), text_tokens.float()).unsqueeze(2)
            s = torch.cat([s, row], dim=2)
        if self.cfg.functional_rows:
            s = apply_functional_rows(s, fr_columns, self.fr_vectors)
        return standardise(s, column_mask(lengths, s.shape[-1]))

    def forward(self, image_tokens, image_pooled, text_tokens, text_pooled, lengths, fr_columns) -> torch.Tensor:
        b, k = text_tokens.shape[:2]
        s = self.maps(image_tokens, image_pooled, text_tokens, lengths, fr_columns)
        h = self.convs(s.flatten(0, 1).unsqueeze(1))                      # [BK, c, rows, L]
        feats = [(F.max_pool2d(h, 2) if self.cfg.pool else h).flatten(1)]
        if self.cfg.maxsim:
            feats.append(h.amax(dim=2).flatten(1))                         # [BK, c*L]
        score = self.fc(torch.cat(feats, dim=1)).view(b, k)
        if self.cos_weight is not None:
            cos = torch.einsum("bd,bkd->bk", F.normalize(image_pooled.float(), dim=-1),
                               F.normalize(text_pooled.float(), dim=-1))
            score = score + self.cos_weight * cos
        return score
