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


def test_opposite_images_add_the_image_side_term(stores, tmp_path, monkeypatch):
    """The tiny world's training items have opposite images: every batch gets the 2B x 2B term."""
    import dcsm_cache.pipeline.train as T

    seen, real = [], T.pair_term

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(T, "pair_term", spy)
    cfg = TrainConfig(steps=3, batch_size=8, device="cpu", progress=False, text_len=16)
    train(stores["shapes_train"], tmp_path / "a.pt", cfg)
    assert len(seen) == 3 and all(t is not None and torch.isfinite(t) for t in seen)
    seen.clear()
    train(stores["shapes_train"], tmp_path / "b.pt", TrainConfig(**{**cfg.__dict__, "pair_weight": 0.0}))
    assert not seen  # the ablation: caption-side negatives only


def test_reference_recipe_trains_with_adam_on_the_pairs(stores, tmp_path):
    cfg = TrainConfig(steps=4, batch_size=8, lr=1e-3, loss="reference", device="cpu", progress=False, text_len=16)
    summary = train(stores["shapes_train"], tmp_path / "r.pt", cfg)
    assert summary["steps"] == 4 and torch.isfinite(torch.tensor(summary["final_loss"]))
    _, ckpt = load_scorer(tmp_path / "r.pt", "cpu")
    assert ckpt["train_config"]["loss"] == "reference"
