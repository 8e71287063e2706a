"""DCSM training from the cache: loss, masking, checkpoint contents, learning on a separable task."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_BACKBONE

from dcsm_cache.pipeline.dcsm import load_scorer
from dcsm_cache.pipeline.train import TrainConfig, contrastive_loss, train


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
    assert set(summary["history"][-1]) == {"step", "val_accuracy", "heldout_val_accuracy"}  # each scored apart
    scorer, ckpt = load_scorer(tmp_path / "dcsm.pt", "cpu")
    assert ckpt["backbone"] == TINY_BACKBONE and ckpt["text_len"] == 16
    assert "above" in ckpt["fr_words"] and ckpt["train_config"]["steps"] == 6
    assert ckpt["store_fingerprint"]


def test_validation_subsets_are_never_trained_on(stores):
    from dcsm_cache.pipeline.dcsm import CachedDataset
    from dcsm_cache.pipeline.train.loop import VAL_SUBSETS, _group_items

    data = CachedDataset.open(stores["shapes_train"], text_len=16)
    trained = {i for v in _group_items(data, None).values() for i in v}
    subsets = {data.dataset.items[i].subset for i in trained}
    assert subsets == {"train"} and {"val", "heldout_val"} <= {it.subset for it in data.dataset.items}
    for v in VAL_SUBSETS:
        scored = {i for g in _group_items(data, v).values() for i in g}
        assert scored and not scored & trained and {data.dataset.items[i].subset for i in scored} == {v}


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
    import dcsm_cache.pipeline.train.loss as T

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


# ---------------------------------------------------------------- reproducible, killed and resumed


RESUMABLE = dict(steps=16, batch_size=8, eval_every=5, text_len=16, buffer_chunks=2, checkpoint_every=4)


@pytest.fixture(scope="module")
def chunked_store(manifests, tmp_path_factory):
    """The training store in chunks of a few rows: an epoch (6 steps) reads several buffers."""
    from dcsm_cache.pipeline.extract import ExtractConfig, extract

    out = tmp_path_factory.mktemp("chunked") / "train.zarr"
    cfg = ExtractConfig(batch_size=16, device="cpu", progress=False, chunk_rows=8)
    return extract(manifests["shapes_train"], TINY_BACKBONE, out, cfg).path


@pytest.mark.slow
def test_training_twice_gives_the_same_bytes(chunked_store, tmp_path):
    cfg = TrainConfig(**RESUMABLE, device="cpu", progress=False)
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    summary = train(chunked_store, a, cfg)
    train(chunked_store, b, cfg)
    assert a.read_bytes() == b.read_bytes() and summary["threads"] >= 1
    assert not Path(f"{a}.resume").exists()  # removed when training ends


@pytest.mark.slow
def test_killed_and_resumed_training_ends_with_the_uninterrupted_weights(chunked_store, tmp_path):
    from forkserver import ForkServer

    whole = tmp_path / "whole.pt"
    train(chunked_store, whole, TrainConfig(**RESUMABLE, device="cpu", progress=False))
    out, log = tmp_path / "m.pt", tmp_path / "log"
    args = ["train", "--store", chunked_store, "--out", out, "--device", "cpu", "--resume", "--set", "progress=false"]
    args += [a for k, v in RESUMABLE.items() for a in ("--set", f"{k}={v}")]
    with ForkServer() as fs:
        # killed at step 10 (last checkpoint: step 8, inside the second epoch), then while writing the
        # step-12 checkpoint (the step-8 one stays whole), then resumed to the end
        assert fs.run(args, log, env={"DCSM_CACHE_FAULT": "kill@train.step#10"}) == -9, log.read_text()
        assert Path(f"{out}.resume").is_file() and not out.exists()
        assert fs.run(args, log, env={"DCSM_CACHE_FAULT": "kill@train.checkpoint#1"}) == -9, log.read_text()
        assert "resuming at step 8 of 16" in log.read_text()
        assert fs.run(args, log) == 0, log.read_text()
    assert "resuming at step 8 of 16" in log.read_text()
    assert out.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log", "m.pt", "whole.pt"]  # no temporary file left


def test_a_resume_file_of_other_settings_is_refused(chunked_store, tmp_path):
    from dcsm_cache.errors import BadInputError

    out = tmp_path / "m.pt"
    Path(f"{out}.resume").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match=r"m\.pt\.resume cannot be read"):
        train(chunked_store, out, TrainConfig(**RESUMABLE, device="cpu", progress=False, resume=True))


@pytest.mark.slow
def test_several_stores_train_together_one_batch_of_each_per_step(stores, tmp_path, monkeypatch):
    """Training on a list of stores (a workflow recipe's datasets): every step one batch of each, in order; the
    checkpoint names every store; a list of one store trains exactly as the store alone does."""
    import dcsm_cache.pipeline.train.loop as T
    from dcsm_cache.pipeline.dcsm import read_meta
    from dcsm_cache.stores.feature_store import FeatureStore

    seen, real = [], T.batch_loss
    monkeypatch.setattr(T, "batch_loss", lambda *a: seen.append(Path(a[-1]).name) or real(*a))
    cfg = TrainConfig(steps=3, batch_size=8, device="cpu", progress=False, text_len=16)
    both = [stores["shapes_train"], stores["shapes_spatial"]]
    train(both, tmp_path / "both.pt", cfg)
    assert seen == ["shapes_train.zarr", "shapes_spatial.zarr"] * 3
    prints = [FeatureStore.open(s).attrs["fingerprint"] for s in both]
    assert read_meta(tmp_path / "both.pt")["store_fingerprint"] == prints
    train([stores["shapes_train"]], tmp_path / "list.pt", cfg)
    train(stores["shapes_train"], tmp_path / "one.pt", cfg)
    assert (tmp_path / "list.pt").read_bytes() == (tmp_path / "one.pt").read_bytes()
    assert (tmp_path / "both.pt").read_bytes() != (tmp_path / "one.pt").read_bytes()
