"""DCSM training from the cache: loss, masking, checkpoint contents, learning on a separable task."""

from __future__ import annotations

import torch

from dcsm_cache.pipeline.scorer_file import load_scorer
from dcsm_cache.pipeline.train import TrainConfig, contrastive_loss, train

from conftest import TINY_BACKBONE


def test_contrastive_loss_masks_identical_positives():
    scores = torch.zeros(3, 5)
    scores[0, 1] = 100.0  # image 0 rates image 1's positive highest...
    pos = torch.tensor([7, 7, 8])  # ...but it is the same caption, so it is not a negative
    masked = contrastive_loss(scores, pos)
    unmasked = contrastive_loss(scores, torch.tensor([7, 9, 8]))
    assert masked < unmasked


def test_train_writes_a_checkpoint_that_scores(stores, tmp_path):
    cfg = TrainConfig(steps=6, batch_size=8, eval_every=3, device="cpu", progress=False, text_len=16)
    summary = train(stores["shapes_train"], tmp_path / "dcsm.pt", cfg)
    assert summary["steps"] == 6 and len(summary["history"]) == 2
    scorer, ckpt = load_scorer(tmp_path / "dcsm.pt", "cpu")
    assert ckpt["backbone"] == TINY_BACKBONE and ckpt["text_len"] == 16
    assert "above" in ckpt["fr_words"] and ckpt["train_config"]["steps"] == 6
    assert ckpt["store_fingerprint"]


def test_training_changes_only_the_scorer(stores, tmp_path):
    """The backbone is frozen: the store is untouched, and the FR vectors do learn by default."""
    before = (stores["shapes_train"] / "image" / "tokens" / "zarr.json").stat().st_mtime_ns
    cfg = TrainConfig(steps=3, batch_size=8, device="cpu", progress=False, text_len=16)
    train(stores["shapes_train"], tmp_path / "a.pt", cfg)
    scorer, _ = load_scorer(tmp_path / "a.pt", "cpu")
    torch.manual_seed(0)
    fresh = (torch.nn.functional.normalize(torch.randn(scorer.fr_vectors.shape), dim=1) + 1) / 3
    assert not torch.allclose(scorer.fr_vectors, fresh)
    assert (stores["shapes_train"] / "image" / "tokens" / "zarr.json").stat().st_mtime_ns == before
