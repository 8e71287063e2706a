"""Image-side hard negatives (pipeline/train/pairs.py): the reference's loss against an independent numpy
re-implementation of its formula, the default loss's directions, and the 2B x 2B map's layout."""

from __future__ import annotations

import numpy as np
import torch

from dcsm_cache.pipeline.dcsm import CachedDataset
from dcsm_cache.pipeline.train import (
    block_loss,
    block_scores,
    paired_scores,
    reference_loss,
    reference_step,
)


def _ce(logits: np.ndarray) -> float:
    """Mean cross-entropy of each row against its own index, in float64."""
    m = logits.max(axis=1, keepdims=True)
    logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    return float(-np.mean(np.diag(logp)))


def _reference(s: np.ndarray) -> float:
    """The reference's formula: (S - mean) / std (unbiased), then CE over rows + CE over columns."""
    z = (s - s.mean()) / s.std(ddof=1)
    return _ce(z) + _ce(z.T)


def test_reference_loss_equals_the_formula_whatever_the_permutation():
    rng = np.random.default_rng(0)
    for seed in range(5):
        s = rng.normal(size=(16, 16)) * 3 + 1  # B = 8: a 2B x 2B map
        got = reference_loss(torch.tensor(s, dtype=torch.float32), torch.Generator().manual_seed(seed))
        assert abs(got.item() - _reference(s)) < 1e-5


def test_reference_step_sums_sources_and_versions_and_divides_by_three():
    rng = np.random.default_rng(1)
    maps = [rng.normal(size=(16, 16)) for _ in range(6)]  # 3 sources x 2 versions
    got = reference_step([torch.tensor(m, dtype=torch.float32) for m in maps], torch.Generator().manual_seed(0))
    assert abs(got.item() - sum(_reference(m) for m in maps) / 3) < 1e-5


class _Probe(torch.nn.Module):
    """A scorer that returns image id * 100 + caption row, to read the map's layout back."""

    def forward(self, image_tokens, image_pooled, text_tokens, text_pooled, lengths, fr_columns):
        return image_pooled[:, :1] * 100 + text_pooled[..., 0]


class _Data:
    score = CachedDataset.score  # the real method, on these four tensors

    def __init__(self, m: int):
        rows = torch.arange(m, dtype=torch.float32)
        self.text_pooled = rows[:, None].repeat(1, 2)
        self.text_tokens = torch.zeros(m, 3, 2)
        self.lengths = torch.ones(m, dtype=torch.long)
        self.fr_columns = torch.full((m, 3), -1)


def test_paired_scores_rows_are_images_then_opposites_columns_captions_then_opposites():
    ids = torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]])  # pooled "ids" of images and opposites
    tok = torch.zeros(2, 4, 2)
    scores = paired_scores(
        _Probe(), _Data(8), (tok, ids[0]), (tok, ids[1]), torch.tensor([5, 6]), torch.tensor([7, 0]), "cpu"
    )
    expect = torch.tensor([[i * 100 + c for c in (5, 6, 7, 0)] for i in (1, 2, 3, 4)], dtype=torch.float32)
    assert torch.equal(scores, expect)


def test_blocks_are_each_image_and_its_opposite_against_the_items_two_captions():
    ids = torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [4.0]])
    tok = torch.zeros(2, 4, 2)
    blocks = block_scores(
        _Probe(), _Data(8), (tok, ids[0]), (tok, ids[1]), torch.tensor([5, 6]), torch.tensor([7, 0]), "cpu"
    )
    expect = torch.tensor([[[105, 107], [305, 307]], [[206, 200], [406, 400]]], dtype=torch.float32)
    assert torch.equal(blocks, expect)


def test_block_loss_is_both_axes_of_each_block():
    b = torch.randn(3, 2, 2)
    by_hand = np.mean([(_ce(m) + _ce(m.T)) / 2 for m in b.numpy().astype(np.float64)])
    assert abs(block_loss(b).item() - by_hand) < 1e-5
