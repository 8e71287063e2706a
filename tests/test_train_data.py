"""Training batches (pipeline/train/data.py): loaded or streamed, the same batches, seed for seed, as the loop
train.py always ran (written out below as the reference), on a store of 6 chunks read 2 chunks a buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_BACKBONE

from dcsm_cache.errors import ConfigError
from dcsm_cache.pipeline.dcsm import CachedDataset
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.train import TrainBatches
from dcsm_cache.pipeline.train.loop import TrainConfig, _group_items, train


@pytest.fixture(scope="module")
def chunked(manifests, tmp_path_factory):
    """shapes_train in chunks of 7 rows (60 scenes and their opposite images: 18 chunks; an odd height, so
    some scenes and their opposites fall in different chunks)."""
    out = tmp_path_factory.mktemp("chunked") / "train.zarr"
    extract(manifests["shapes_train"], TINY_BACKBONE, out, ExtractConfig(device="cpu", progress=False, chunk_rows=7))
    return out


def reference_epoch(data: CachedDataset, by_image, batch: int, buffer_chunks: int, rng):
    """the training loop before train/data.py: chunk buffers in random order, a permutation of each buffer's items."""
    arr = data.store.image_tokens
    chunk, n = arr.chunks[0], arr.shape[0]
    order = rng.permutation(-(-n // chunk))
    for i in range(0, len(order), buffer_chunks):
        spans = [(c * chunk, min(n, (c + 1) * chunk)) for c in sorted(order[i : i + buffer_chunks])]
        rows = np.concatenate([np.arange(a, b) for a, b in spans])
        tok = torch.from_numpy(np.concatenate([arr[a:b] for a, b in spans]))
        pooled = torch.from_numpy(np.concatenate([data.store.image_pooled[a:b] for a, b in spans]))
        local = {int(r): j for j, r in enumerate(rows)}
        pool = rng.permutation([i for r in rows if int(r) in by_image for i in by_image[int(r)]])
        for s in range(0, len(pool) - batch + 1, batch):
            chosen = [data.dataset.items[i] for i in pool[s : s + batch]]
            idx = torch.tensor([local[it.image] for it in chosen])
            pos = torch.tensor([it.candidates[it.correct] for it in chosen])
            negs = torch.tensor([[c for j, c in enumerate(it.candidates) if j != it.correct] for it in chosen])
            opp = np.array([it.opposite for it in chosen])
            opp_tok = torch.from_numpy(arr.get_orthogonal_selection((opp, slice(None), slice(None))))
            opp_pooled = torch.from_numpy(data.store.image_pooled.get_orthogonal_selection((opp, slice(None))))
            yield tok[idx], pooled[idx], pos, negs, opp_tok, opp_pooled


@pytest.mark.parametrize("reader", ["load", "stream"])
def test_batches_are_the_reference_loops_seed_for_seed(chunked, reader):
    data = CachedDataset.open(chunked, text_len=16)
    by_image = _group_items(data, False)
    batches = TrainBatches(data, by_image, batch=5, buffer_chunks=2, reader=reader)
    assert batches.loaded == (reader == "load")
    got_rng, want_rng = np.random.default_rng(3), np.random.default_rng(3)
    n = 0
    for _ in range(2):  # two epochs: the generator's state carries over
        for got, want in zip(batches.epoch(got_rng), reference_epoch(data, by_image, 5, 2, want_rng), strict=True):
            assert got.group is not None
            for g, w in zip([got.tok, got.pooled, got.pos, got.negs, got.opp_tok, got.opp_pooled], want, strict=True):
                assert g.dtype == w.dtype and torch.equal(g, w)
            n += 1
    assert n >= 8  # (zip strict: as many batches as the reference loop; most buffers give one)
    assert got_rng.random() == want_rng.random()


def test_auto_loads_a_store_that_fits(chunked):
    data = CachedDataset.open(chunked, text_len=16)
    assert TrainBatches(data, _group_items(data, False), batch=4, buffer_chunks=2).loaded


def test_training_result_does_not_depend_on_the_reader(chunked, tmp_path):
    cfg = dict(steps=6, batch_size=4, buffer_chunks=2, text_len=16, device="cpu", progress=False, eval_every=3)
    loaded = train(chunked, tmp_path / "a.pt", TrainConfig(reader="load", **cfg))
    streamed = train(chunked, tmp_path / "b.pt", TrainConfig(reader="stream", **cfg))
    assert loaded == streamed
    a, b = torch.load(tmp_path / "a.pt", weights_only=False), torch.load(tmp_path / "b.pt", weights_only=False)
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k


def test_unknown_reader_is_a_config_error():
    with pytest.raises(ConfigError, match="reader"):
        TrainConfig(reader="mmap")
