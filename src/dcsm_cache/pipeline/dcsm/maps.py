"""Dense Cosine Similarity Maps assembled from cached tokens, with functional columns.

    fr = FunctionalWords.for_tokenizer(tokenizer)          # at extraction; later from_table(store attrs)
    cols = fr.columns(store.text_ids[:])                         # [M, L] int, -1 = ordinary token
    S = similarity_maps(img_tok, txt_tok)                        # [B, K, P, L] fp32
    S = apply_functional_rows(S, cols_bk, fr_vectors)            # learned columns for "above", "not", ...

A DCSM is the matrix of cosines between every image token and every text token (both unit-norm in
the joint space). Words that no patch can show get their column replaced by a learned vector of
length P (a "functional row" in the paper's words). Default mode finds the word's real token
position from the stored token ids; `paper_compat` reproduces the reference's whitespace word
index (one column early) in `paper/scorer.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

#: The reference's special words, in its order (benchmarks.md §1), plus "with", the positive
#: counterpart of "without" in the shapes world's negation probes.
FUNCTIONAL_WORDS = ("above", "below", "left", "right", "small", "big", "not", "no", "without", "but", "absent", "with")


@dataclass(frozen=True)
class FunctionalWords:
    words: tuple[str, ...]
    token_ids: tuple[int, ...]  # one BPE token per word (words that split are dropped at construction)

    @classmethod
    def for_tokenizer(cls, tokenizer, words: tuple[str, ...] = FUNCTIONAL_WORDS) -> "FunctionalWords":
        """Find each word's single token id with the backbone's own tokenizer."""
        kept, ids, specials = [], [], _specials(tokenizer)
        for w in words:
            body = [int(t) for t in tokenizer([w])[0].tolist() if int(t) not in specials]
            if len(body) == 1:
                kept.append(w)
                ids.append(body[0])
        return cls(tuple(kept), tuple(ids))

    @classmethod
    def from_table(cls, table: Mapping[str, int], words: tuple[str, ...] = FUNCTIONAL_WORDS) -> "FunctionalWords":
        """The words' single token ids as extraction recorded them (store attr `tokenizer.words`)."""
        kept = tuple(w for w in words if w in table)
        return cls(kept, tuple(int(table[w]) for w in kept))

    def columns(self, ids: np.ndarray) -> np.ndarray:
        """[M, L] token ids -> [M, L] index into `words` where a functional word sits, else -1."""
        lut = {t: i for i, t in enumerate(self.token_ids)}
        out = np.full(ids.shape, -1, dtype=np.int64)
        for t, i in lut.items():
            out[ids == t] = i
        return out


def _specials(tokenizer) -> set[int]:
    """The ids a tokenizer adds whatever the text (start, end, pad; some have no start token, SigLIP's
    for one, and pad with another id than 0): those that three one-word encodings share."""
    rows = [{int(t) for t in tokenizer([w])[0].tolist()} for w in ("a", "the", "dog")]
    return rows[0] & rows[1] & rows[2]


def similarity_maps(image_tokens: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
    """Cosine maps with fp32 accumulation.

    image_tokens [B, P, D], text_tokens [B, K, L, D] (each image's own candidates) -> [B, K, P, L].
    """
    return torch.einsum("bpd,bkld->bkpl", image_tokens.float(), text_tokens.float())


def maxsim(maps: torch.Tensor, lengths: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
    """Training-free late interaction (ColBERT's MaxSim) from raw cosine maps: the mean over each
    caption's word columns (start and end tokens left out, and the columns `skip` marks) of their best
    image-token cosine.

    maps [B, K, P, L], lengths [B, K] (real tokens, start and end included), skip [B, K, L] bool -> [B, K]
    """
    best = maps.amax(dim=2)  # [B, K, L]
    col = torch.arange(best.shape[-1], device=best.device)
    words = (col >= 1) & (col < lengths.unsqueeze(-1) - 1)
    if skip is not None:
        words = words & ~skip
    return (best * words).sum(-1) / words.sum(-1).clamp(min=1)


def apply_functional_rows(maps: torch.Tensor, columns: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Replace column l of map (b, k) by vectors[columns[b, k, l]] wherever columns >= 0.

    maps [B, K, P, L], columns [B, K, L] (long, -1 = keep), vectors [F, P] -> [B, K, P, L]
    """
    is_fr = (columns >= 0).unsqueeze(2)  # [B, K, 1, L]
    fr = vectors[columns.clamp(min=0)].permute(0, 1, 3, 2)  # [B, K, P, L]
    return torch.where(is_fr, fr.to(maps.dtype), maps)


def column_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """[..., ] token counts -> [..., width] bool, true for real tokens (start and end included)."""
    return torch.arange(width, device=lengths.device) < lengths.unsqueeze(-1)


STANDARDISE = ("map", "image")


def standardise(maps: torch.Tensor, valid: torch.Tensor, per: str = "map", eps: float = 1e-6) -> torch.Tensor:
    """Standardisation over valid columns; invalid (pad) columns become 0.

    maps [B, K, P, L], valid [B, K, L] bool. `per="map"`: one mean and std per map; `per="image"`: one
    per image over all its candidates' maps, which keeps how the candidates compare in absolute level.
    """
    if per not in STANDARDISE:
        raise ValueError(f"standardise per {per!r}: not one of {STANDARDISE}")
    dims = (2, 3) if per == "map" else (1, 2, 3)
    m = valid.unsqueeze(2).to(maps.dtype).expand_as(maps)
    n = m.sum(dim=dims, keepdim=True).clamp(min=1)
    mean = (maps * m).sum(dim=dims, keepdim=True) / n
    var = (((maps - mean) * m) ** 2).sum(dim=dims, keepdim=True) / n
    return (maps - mean) / (var.sqrt() + eps) * m
