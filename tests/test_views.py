"""Cached augmented views (pipeline/extract/views.py): `extract --set views=K` stores K seeded views per image, view 0
the plain one; training draws one view per image (and per opposite image) per step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr
from conftest import TINY_BACKBONE

from dcsm_cache.errors import ConfigError
from dcsm_cache.pipeline.dcsm import CachedDataset
from dcsm_cache.pipeline.extract import ExtractConfig, ViewAugment, extract, image_batches
from dcsm_cache.pipeline.items import open_image, read_manifest
from dcsm_cache.pipeline.train import TrainBatches, draw_views
from dcsm_cache.pipeline.train.loop import TrainConfig, _group_items, train
from dcsm_cache.stores.hdf5 import export_hdf5, import_hdf5
from dcsm_cache.stores.verify import verify_store

K = 3
CFG = dict(device="cpu", progress=False, chunk_rows=16, batch_size=16, workers=0)


def _extract(manifest, out, **kw):
    return extract(manifest, TINY_BACKBONE, out, ExtractConfig(**{**CFG, **kw}))


@pytest.fixture(scope="module")
def viewed(manifests, tmp_path_factory):
    """shapes_train with 3 views per image, chunks of 16 rows."""
    return _extract(manifests["shapes_train"], tmp_path_factory.mktemp("views") / "train.zarr", views=K).path


def _array(path, name):
    return zarr.open_group(path, mode="r")[name][:]


def _tree(path) -> dict[str, bytes]:
    return {str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()}


# ---------------------------------------------------------------- the views' pixels: seeded, per image


def _pixels(ds, aug):
    return np.stack([np.asarray(v) for v in aug(open_image(ds, 3), 3)])


def test_augmented_pixels_are_seeded_per_seed_image_and_view(manifests):
    ds = read_manifest(manifests["shapes_train"])
    aug = ViewAugment(4, (32, 32), seed=0)
    a = _pixels(ds, aug)
    torch.manual_seed(123)  # the global generator's state does not matter, and is left as it was
    before = torch.get_rng_state()
    assert np.array_equal(a, _pixels(ds, aug)) and torch.equal(before, torch.get_rng_state())
    assert not np.array_equal(a, _pixels(ds, ViewAugment(4, (32, 32), seed=1)))
    assert all(not np.array_equal(a[i], a[j]) for i in range(3) for j in range(i))  # views differ
    plain = np.asarray(open_image(ds, 3).resize((32, 32)))
    assert all(not np.array_equal(v, plain) for v in a)


def test_view_pixels_do_not_depend_on_batch_size_or_workers(manifests):
    ds = read_manifest(manifests["shapes_train"])
    aug = ViewAugment(K, (32, 32), seed=0)
    from torchvision.transforms import v2

    pre = v2.Compose([v2.Resize(32), v2.CenterCrop(32), v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])

    def run(batch_size, workers):
        out = list(image_batches(ds, pre, (5, 18), batch_size, workers, (3, 32, 32), augment=aug))
        assert [s for s, *_ in out] == list(range(5, 18, batch_size))
        return torch.cat([p for _, p, _, _ in out])

    a, b = run(4, 0), run(7, 1)
    assert a.shape == (13, K, 3, 32, 32) and torch.equal(a, b)
    plain = torch.cat([p for _, p, _, _ in image_batches(ds, pre, (5, 18), 4, 0, (3, 32, 32))])
    assert torch.equal(a[:, 0], plain)  # view 0: the plain preprocessing


# ---------------------------------------------------------------- the store


def test_views_are_stored_distinct_and_view_0_is_the_plain_store(viewed, stores):
    store = zarr.open_group(viewed, mode="r")
    attrs = store.attrs.asdict()
    assert attrs["shape"]["views"] == K and attrs["views"]["views"] == K
    assert "RandomPerspective" in attrs["views"]["transform"]
    tok, views = store["image/tokens"][:], store["image/views"][:]
    n, p, d = tok.shape
    assert views.shape == (n, K - 1, p, d) and store["image/views_pooled"].shape == (n, K - 1, d)
    assert store["image/views"].chunks == (16, K - 1, p, d)  # the rows of image/tokens' chunks
    assert np.array_equal(tok, _array(stores["shapes_train"], "image/tokens"))  # evaluation reads the same
    valid = store["image/valid"][:]
    for v in range(K - 1):
        assert (np.abs(views[valid, v] - tok[valid]).reshape(valid.sum(), -1).max(axis=1) > 1e-3).all()
    assert (np.abs(views[valid, 0] - views[valid, 1]).reshape(valid.sum(), -1).max(axis=1) > 1e-3).all()


def test_one_view_is_todays_store_whatever_the_seed(manifests, tmp_path):
    """views=1 (the default) writes what extraction always wrote: no views array, no views attr, same bytes."""
    a = _extract(manifests["shapes_spatial"], tmp_path / "a.zarr").path
    b = _extract(manifests["shapes_spatial"], tmp_path / "b.zarr", views=1, seed=7).path
    assert _tree(a) == _tree(b)
    attrs = json.loads((a / "zarr.json").read_text())["attributes"]
    assert "views" not in attrs and "views" not in attrs["shape"]
    assert sorted(zarr.open_group(a, mode="r")["image"].array_keys()) == ["pooled", "tokens", "valid"]


@pytest.mark.slow
def test_same_seed_same_bytes_in_parts_and_other_batches_other_seed_other_views(manifests, viewed, tmp_path):
    again = tmp_path / "again.zarr"
    for part in (0, 1):  # two parts, batches of 8: the same bytes as one part in batches of 16
        _extract(manifests["shapes_train"], again, views=K, part=part, nparts=2, batch_size=8)
    assert _tree(again / "image") == _tree(viewed / "image")
    other = _extract(manifests["shapes_train"], tmp_path / "other.zarr", views=K, seed=1).path
    assert np.array_equal(_array(other, "image/tokens"), _array(viewed, "image/tokens"))
    assert not np.array_equal(_array(other, "image/views"), _array(viewed, "image/views"))


def test_views_must_be_at_least_one():
    with pytest.raises(ConfigError, match="views"):
        ExtractConfig(views=0)


def test_verify_checks_the_views_and_finds_a_corrupt_view_chunk(viewed, tmp_path):
    import shutil

    summary, problems = verify_store(viewed)
    assert problems == [] and summary["parts"] == 1
    bad = tmp_path / "bad.zarr"
    shutil.copytree(viewed, bad)
    chunk = bad / "image" / "views" / "c" / "1" / "0" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[100] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    _, problems = verify_store(bad)
    assert [str(p) for p in problems] == ["image/views rows 16-31: chunk fails its crc32c checksum"]


def test_hdf5_round_trip_keeps_the_views(viewed, tmp_path):
    back = import_hdf5(export_hdf5(viewed, tmp_path / "v.h5"), tmp_path / "back.zarr")
    assert back.views == K and back.attrs["views"] == zarr.open_group(viewed, mode="r").attrs["views"]
    for name in ("image/views", "image/views_pooled", "image/tokens"):
        assert np.array_equal(back[name][:], _array(viewed, name))
    assert verify_store(back.path)[1] == []


# ---------------------------------------------------------------- training draws them


def _which_view(store_path, tok: torch.Tensor, rows: np.ndarray) -> np.ndarray:
    """The view of each row's image that `tok` holds (-1: none of them)."""
    g = zarr.open_group(store_path, mode="r")
    allv = np.concatenate([g["image/tokens"][:][:, None], g["image/views"][:]], axis=1)[rows]  # [B, K, P, D]
    same = (allv == tok.numpy()[:, None]).reshape(len(rows), K, -1).all(axis=2)
    return np.where(same.any(axis=1), same.argmax(axis=1), -1)


@pytest.mark.parametrize("reader", ["load", "stream"])
def test_training_draws_one_view_per_image_and_opposite_per_step(viewed, reader):
    data = CachedDataset.open(viewed, text_len=16)
    by_image = _group_items(data, False)

    def drawn(seed, views=True, epochs=3):
        batches = TrainBatches(data, by_image, 8, 2, reader, "cpu", views=views, seed=seed)
        rng, out, step = np.random.default_rng(0), [], 0
        for _ in range(epochs):
            for b in batches.epoch(rng, step):
                rows = np.array([data.dataset.items[i].image for i in b.items])
                opp = np.array([data.dataset.items[i].opposite for i in b.items])
                out.append((_which_view(viewed, b.tok, rows), _which_view(viewed, b.opp_tok, opp)))
                step += 1
        return out

    a, b, flat = drawn(0), drawn(1), drawn(0, views=False)
    assert all((img >= 0).all() and (opp >= 0).all() for img, opp in a)  # every image is one of its views
    assert set(np.concatenate([img for img, _ in a])) == set(range(K))  # every view is used
    assert set(np.concatenate([opp for _, opp in a])) == set(range(K))  # opposites draw their own
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, b))  # another seed, other views
    assert [x[0].tolist() for x in a] == [x[0].tolist() for x in drawn(0)]  # the same seed, the same ones
    assert all((img == 0).all() and (opp == 0).all() for img, opp in flat)  # views=False: view 0 only


def test_draws_depend_on_seed_and_step_only():
    a = draw_views(0, 5, 16, 4)
    assert np.array_equal(a, draw_views(0, 5, 16, 4)) and a.min() >= 0 and a.max() < 4
    assert not np.array_equal(a, draw_views(0, 6, 16, 4)) and not np.array_equal(a, draw_views(1, 5, 16, 4))


@pytest.mark.slow
def test_resumed_training_on_views_ends_with_the_uninterrupted_bytes(viewed, tmp_path, monkeypatch):
    from dcsm_cache import faults

    cfg = dict(steps=8, batch_size=8, text_len=16, buffer_chunks=2, checkpoint_every=4, device="cpu", progress=False)
    whole, flat = tmp_path / "whole.pt", tmp_path / "flat.pt"
    summary = train(viewed, whole, TrainConfig(**cfg))
    assert summary["views"] == K
    train(viewed, flat, TrainConfig(**cfg, views=False))
    assert flat.read_bytes() != whole.read_bytes()  # the views change what is learnt

    class Killed(Exception):
        pass

    hits = {"n": 0}

    def point(name):
        if name == "train.step":
            hits["n"] += 1
            if hits["n"] == 7:  # past the step-4 checkpoint, in the second epoch
                raise Killed

    out = tmp_path / "m.pt"
    monkeypatch.setattr(faults, "point", point)
    with pytest.raises(Killed):
        train(viewed, out, TrainConfig(**cfg))
    monkeypatch.undo()
    train(viewed, out, TrainConfig(**cfg, resume=True))
    assert out.read_bytes() == whole.read_bytes()
