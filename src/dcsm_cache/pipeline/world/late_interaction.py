"""Late interaction (MaxSim, FILIP) over a batch of images and captions, for contrastive pretraining.

    scores = late_interaction(patch_tokens, word_tokens, valid)   # [I, P, D] × [T, L, D] -> [I, T]

MaxSim (ColBERT; the text-to-image half of FILIP, Yao et al. 2021) scores an image against a
caption by the mean over the caption's words of each word's best patch cosine. Pretraining the
shapes world's CLIP asks it of every image × caption pair in a batch of 128: [128, 64] patches
against 128 captions of up to 16 words, about 10^8 cosines a step, forward and backward, which was
half of a pretraining step on a CPU with the direct einsum and `amax`. `_BestPatch` computes the
same values and gradients in a fraction of that time, for the valid words only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _BestPatch(torch.autograd.Function):
    """[I, P, D] patches × [N, D] words -> [I, N]: each word's best patch dot product.

    The same values and gradients as `torch.einsum("ipd,nd->inp", ...).max(-1).values` (the
    gradient goes to the best patch). The similarities are laid out as [N, I, P], so the max runs
    over the contiguous axis, and only the argmax is kept for the backward pass. That pass gathers
    each (word, image)'s best patch and scatters back to it: N × I rows of D, where the one-hot
    matrix products it replaces multiplied N × I × P × D (a 64-patch image: 64 times the work,
    nearly all of it zeros). Both passes go `_CHUNK` values at a time: a buffer under glibc's 32 MB
    mmap threshold is reused from the heap, where the whole tensor (134 MB for the default's padded
    batch) would be mapped and page-faulted in afresh at every step.
    """

    _CHUNK = 1 << 21  # values per block of similarities, or of gathered rows (8 MB of float32)

    @staticmethod
    def forward(ctx, patches: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        (i, p, d), n = patches.shape, len(words)
        flat, rows = patches.reshape(i * p, d), max(1, _BestPatch._CHUNK // (i * p))
        best, where = patches.new_empty(n, i), torch.empty(n, i, dtype=torch.long, device=patches.device)
        for s in range(0, n, rows):
            torch.max((words[s : s + rows] @ flat.T).view(-1, i, p), -1, out=(best[s : s + rows], where[s : s + rows]))
        ctx.save_for_backward(patches, words, where)
        return best.T

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        patches, words, where = ctx.saved_tensors
        (i, p, d), n = patches.shape, len(words)
        flat, rows = patches.reshape(i * p, d), max(1, _BestPatch._CHUNK // (i * d))
        grad = grad.T  # [N, I]
        at = where + torch.arange(i, device=where.device) * p  # [N, I]: each best patch's row of `flat`
        d_words, d_flat = torch.empty_like(words), torch.zeros_like(flat)
        for s in range(0, n, rows):
            g, rows_at = grad[s : s + rows], at[s : s + rows]
            torch.bmm(g.unsqueeze(1), flat[rows_at], out=d_words[s : s + rows].unsqueeze(1))  # sum_i g * best row
            d_flat.index_add_(0, rows_at.reshape(-1), (g.unsqueeze(2) * words[s : s + rows, None]).reshape(-1, d))
        return d_flat.view(i, p, d), d_words


def late_interaction(
    patches: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor, both_ways: bool = False
) -> torch.Tensor:
    """[I, P, D] image tokens × [T, L, D] text tokens ([T, L] valid, 0 or 1) -> [I, T] scores: the
    mean over valid words of each word's best patch cosine (MaxSim); `both_ways` averages it with
    the mean over patches of each patch's best valid word cosine (FILIP)."""
    patches, tokens = F.normalize(patches, dim=-1), F.normalize(tokens, dim=-1)
    if not both_ways:  # the valid words alone, then each caption's mean by one [N, T] matmul
        keep = valid != 0
        caption = keep.nonzero()[:, 0]
        mean = F.one_hot(caption, len(tokens)).to(patches.dtype) / valid.sum(-1)[caption, None]
        return _BestPatch.apply(patches, tokens[keep]) @ mean
    sim = torch.einsum("ipd,tld->itpl", patches, tokens)
    score = (sim.amax(2) * valid).sum(-1) / valid.sum(-1)
    return (score + sim.masked_fill(valid[None, :, None, :] == 0, -2).amax(3).mean(-1)) / 2
