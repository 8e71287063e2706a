"""The Zarr feature store: schema, round trip against a direct model run, dedup, parts, mismatches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import zarr
from zarr.codecs import Crc32cCodec

from dcsm_cache.errors import IncompleteStoreError, StoreMismatchError, StoreNotFoundError
from dcsm_cache.pipeline.tokens.backbones import load_backbone
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import open_image, read_manifest
from dcsm_cache.stores import raw_rows
from dcsm_cache.stores.chunk_files import raw_layout
from dcsm_cache.stores.feature_store import FeatureStore, StoreShape, part_ranges

from conftest import TINY_BACKBONE


def test_schema_and_attrs(stores, manifests):
    store = FeatureStore.open(stores["shapes_spatial"])
    assert store.attrs["backbone"] == TINY_BACKBONE
    assert FeatureStore.open(stores["shapes_spatial"], backbone_id=store.attrs["backbone_id"]).path == store.path
    ds = read_manifest(manifests["shapes_spatial"])
    n, p, d = store.image_tokens.shape
    assert n == len(ds.images) and store.image_pooled.shape == (n, d) and store.image_valid.shape == (n,)
    m, length, d2 = store.text_tokens.shape
    assert m == len(ds.captions) and d2 == d
    assert store.text_ids.shape == (m, length) and store.text_length.shape == (m,)
    assert int(store.text_length[:].max()) == length  # L = longest caption
    assert store.image_tokens.dtype == np.float16 and store.text_ids.dtype == np.int32
    assert store.image_tokens.compressors == (Crc32cCodec(),)  # fp16 does not compress; a checksum per chunk
    assert store.image_tokens.chunks[1:] == (p, d)  # chunks along the first axis only
    a = store.attrs
    for key in (
        "schema_version",
        "backbone",
        "weights",
        "open_clip_version",
        "torch_version",
        "preprocess",
        "tokens",
        "fingerprint",
        "dataset",
        "complete",
    ):
        assert key in a, key
    assert a["tokens"]["image"]["projected"] is True and a["dataset"] == "shapes_spatial"
    assert a["fingerprint"] == json.loads(manifests["shapes_spatial"].read_text())["fingerprint"]


def test_round_trip_matches_a_direct_model_run(stores, manifests):
    """Stored tokens equal the model's own normalised tokens; the pooled row equals encode_image."""
    store = FeatureStore.open(stores["shapes_spatial"])
    ds = read_manifest(manifests["shapes_spatial"])
    bb = load_backbone(TINY_BACKBONE, "cpu")
    pixels = torch.stack([bb.preprocess(open_image(ds, r)) for r in range(3)])
    pooled = bb.model.encode_image(pixels)
    np.testing.assert_allclose(store.image_pooled[0:3].astype(np.float32), pooled.numpy(), atol=2e-3, rtol=1e-2)
    norms = np.linalg.norm(store.image_tokens[0:3].astype(np.float32), axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)
    ids = bb.tokenizer(list(ds.captions[:4]))
    np.testing.assert_allclose(
        store.text_pooled[0:4].astype(np.float32), bb.model.encode_text(ids).numpy(), atol=2e-3, rtol=1e-2
    )
    # the mean of the projected patch tokens is the pooled embedding (average pooling, linear head)
    fmap = bb.model.visual.trunk.forward_features(pixels).flatten(2).transpose(1, 2)
    raw = bb.model.visual.head(fmap)
    np.testing.assert_allclose(raw.mean(1).detach().numpy(), pooled.detach().numpy(), atol=1e-5)


def test_captions_are_stored_once(world, tmp_path):
    from dcsm_cache.pipeline.items import DatasetBuilder, write_manifest

    b = DatasetBuilder("dups", root=world)
    b.add("images/test/000000.png", ["a red circle", "a blue square"])
    b.add("images/test/000001.png", ["a blue square", "a red circle", "a green star"])
    b.add("images/test/000000.png", ["a green star", "a red circle"])
    write_manifest(b.build(), tmp_path / "m.json")
    store = extract(
        tmp_path / "m.json", TINY_BACKBONE, tmp_path / "d.zarr", ExtractConfig(device="cpu", progress=False)
    )
    assert store.text_tokens.shape[0] == 3 and store.image_tokens.shape[0] == 2
    ds = read_manifest(tmp_path / "m.json")
    assert [ds.captions[c] for c in ds.items[1].candidates] == ["a blue square", "a red circle", "a green star"]


def test_open_checks_backbone_and_existence(stores, tmp_path):
    with pytest.raises(StoreMismatchError, match="another backbone .*0123456789abcdef"):
        FeatureStore.open(stores["shapes_spatial"], backbone_id="0123456789abcdef")
    with pytest.raises(StoreNotFoundError, match="dcsm-cache extract"):
        FeatureStore.open(tmp_path / "nope.zarr")


def test_schema_version_mismatch(stores, tmp_path):
    import shutil

    copy = tmp_path / "old.zarr"
    shutil.copytree(stores["shapes_spatial"], copy)
    zarr.open_group(copy, mode="r+").attrs["schema_version"] = 0
    with pytest.raises(StoreMismatchError, match="schema 0"):
        FeatureStore.open(copy)


def test_part_ranges_are_chunk_aligned_and_cover():
    ranges = part_ranges(103, 8, 4)
    assert ranges[0][0] == 0 and ranges[-1][1] == 103
    assert all(a % 8 == 0 for a, _ in ranges) and all(b == c for (_, b), (c, _) in zip(ranges, ranges[1:]))


def test_parts_resume_after_a_crash(manifests, tmp_path, monkeypatch):
    """Two parts: a crashed part is redone, a finished part is never rewritten."""
    from dcsm_cache.stores import feature_store

    monkeypatch.setattr(feature_store, "CHUNK_BYTES", 4096)  # several chunks even for a tiny store
    out = tmp_path / "parts.zarr"
    cfg = ExtractConfig(batch_size=8, device="cpu", progress=False, nparts=2)
    extract(manifests["shapes_spatial"], TINY_BACKBONE, out, ExtractConfig(**{**cfg.__dict__, "part": 0}))
    with pytest.raises(IncompleteStoreError, match=r"part\(s\) \[1\]"):
        FeatureStore.open(out)
    marker = out / "zarr.json"  # the group's attributes record the finished parts
    stamp = marker.stat().st_mtime_ns
    assert FeatureStore(out, zarr.open_group(out, mode="r")).part_done(0)
    chunk_file = sorted(p for p in (out / "image" / "tokens").rglob("*") if p.is_file() and p.name != "zarr.json")[0]
    before = chunk_file.stat().st_mtime_ns
    extract(manifests["shapes_spatial"], TINY_BACKBONE, out, ExtractConfig(**{**cfg.__dict__, "part": 0}))
    assert marker.stat().st_mtime_ns == stamp and chunk_file.stat().st_mtime_ns == before
    extract(manifests["shapes_spatial"], TINY_BACKBONE, out, ExtractConfig(**{**cfg.__dict__, "part": 1}))
    whole = FeatureStore.open(out)
    assert whole.attrs["complete"] and whole.image_valid[:].all()


def test_two_part_store_equals_one_part_store(stores, manifests, tmp_path, monkeypatch):
    from dcsm_cache.stores import feature_store

    monkeypatch.setattr(feature_store, "CHUNK_BYTES", 4096)
    out = tmp_path / "two.zarr"
    for part in (0, 1):
        extract(
            manifests["shapes_spatial"],
            TINY_BACKBONE,
            out,
            ExtractConfig(batch_size=8, device="cpu", progress=False, nparts=2, part=part),
        )
    a, b = FeatureStore.open(out), FeatureStore.open(stores["shapes_spatial"])
    for name in ("image/tokens", "image/pooled", "text/tokens", "text/ids", "text/length"):
        np.testing.assert_allclose(a[name][:].astype(np.float32), b[name][:].astype(np.float32), atol=1e-3)


def test_store_from_other_settings_keeps_finished_parts(manifests, tmp_path):
    out = tmp_path / "s.zarr"
    extract(manifests["shapes_spatial"], TINY_BACKBONE, out, ExtractConfig(device="cpu", progress=False))
    with pytest.raises(StoreMismatchError, match="--overwrite"):
        extract(manifests["shapes_train"], TINY_BACKBONE, out, ExtractConfig(device="cpu", progress=False))
    assert FeatureStore.open(out).attrs["dataset"] == "shapes_spatial"  # nothing lost
    extract(manifests["shapes_train"], TINY_BACKBONE, out, ExtractConfig(device="cpu", progress=False, overwrite=True))
    assert FeatureStore.open(out).attrs["dataset"] == "shapes_train"


def test_corrupt_image_is_marked_invalid_not_fatal(world, tmp_path, caplog):
    import shutil
    from dcsm_cache.pipeline.benchmarks import load_benchmark
    from dcsm_cache.pipeline.items import write_manifest

    root = tmp_path / "w"
    shutil.copytree(world, root)
    ds = load_benchmark("shapes_spatial", str(root))
    bad = ds.image_path(5)
    bad.write_bytes(b"not a png")
    write_manifest(ds, tmp_path / "m.json")
    store = extract(
        tmp_path / "m.json", TINY_BACKBONE, tmp_path / "c.zarr", ExtractConfig(device="cpu", progress=False)
    )
    valid = store.image_valid[:]
    assert not valid[5] and valid.sum() == len(valid) - 1
    assert str(bad) in caplog.text
    assert [(r["row"], r["path"]) for r in store.bad_images()] == [(5, ds.images[5].path)]
    assert zarr.open_group(store.path, mode="r").attrs["bad_images"] == store.bad_images()


def test_a_store_with_a_bad_image_is_a_clean_zarr_hierarchy(world, tmp_path):
    """Nothing but Zarr nodes inside: zarr-python opens and walks it with warnings as errors."""
    import shutil
    import subprocess
    import sys

    from click.testing import CliRunner

    from dcsm_cache.cli import main
    from dcsm_cache.pipeline.benchmarks import load_benchmark
    from dcsm_cache.pipeline.items import write_manifest

    root = tmp_path / "w"
    shutil.copytree(world, root)
    ds = load_benchmark("shapes_spatial", str(root))
    ds.image_path(2).write_bytes(b"not a png")
    write_manifest(ds, tmp_path / "m.json")
    out = tmp_path / "c.zarr"
    extract(tmp_path / "m.json", TINY_BACKBONE, out, ExtractConfig(device="cpu", progress=False, nparts=2, part=1))
    extract(tmp_path / "m.json", TINY_BACKBONE, out, ExtractConfig(device="cpu", progress=False, nparts=2, part=0))
    walk = (
        "import sys, zarr; g = zarr.open_group(sys.argv[1], mode='r'); "
        "print(sorted(k for k, _ in g.members(max_depth=None))); print(g.attrs['bad_images'][0]['row'])"
    )
    proc = subprocess.run([sys.executable, "-W", "error", "-c", walk, str(out)], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    names = ["image", "image/pooled", "image/tokens", "image/valid", "text", "text/ids", "text/length", "text/pooled"]
    assert proc.stdout.splitlines() == [str([*names, "text/tokens"]), "2"]
    files = [p.relative_to(out).parts for p in out.rglob("*") if p.is_file()]
    assert all(f[-1] == "zarr.json" or "c" in f for f in files), files  # metadata and chunks, nothing else
    attrs = zarr.open_group(out, mode="r").attrs.asdict()
    assert attrs["complete"] is True and "finished_parts" not in attrs  # the bookkeeping of parts is gone
    res = CliRunner().invoke(main, ["parts", str(out)])
    assert res.exit_code == 0 and "unreadable image, row 2 marked invalid" in res.output, res.output


def test_an_unfinished_part_is_recorded_with_its_bad_images_only_once_marked(tmp_path):
    shape = StoreShape(n_images=8, n_tokens=2, n_captions=4, text_len=2, dim=3)
    store = FeatureStore.create(tmp_path / "p.zarr", shape, {"backbone": "b"}, nparts=2, chunk_rows=4)
    store.write_bad_images(1, [{"row": 6, "path": "x.png", "reason": "image x.png is missing"}])
    assert store.bad_images() == [] and not store.part_done(1)  # nothing recorded before the marker
    store.mark_done(1)
    assert store.part_done(1) and not store.part_done(0) and [r["row"] for r in store.bad_images()] == [6]
    with pytest.raises(IncompleteStoreError, match=r"part\(s\) \[0\]"):
        FeatureStore.open(store.path)
    store.write_bad_images(0, [{"row": 1, "path": "y.png", "reason": "image y.png cannot be read"}])
    store.mark_done(0)
    done = FeatureStore.open(store.path)
    assert [r["row"] for r in done.bad_images()] == [1, 6] and done.attrs["complete"] is True
    assert "finished_parts" not in done.attrs


def test_xarray_opens_each_group_as_one_dataset(stores):
    """Every array names its dimensions (Zarr v3 dimension_names), so xarray reads a group as a Dataset."""
    xr = pytest.importorskip("xarray")
    store = FeatureStore.open(stores["shapes_spatial"])
    image = xr.open_zarr(store.path, group="image", consolidated=False)
    text = xr.open_dataset(store.path, group="text", engine="zarr", consolidated=False, chunks=None)
    assert image["tokens"].dims == ("image", "image_token", "dim")
    assert image.sizes["image"] == store.image_tokens.shape[0]
    assert text["ids"].dims == ("caption", "text_token") and text.sizes["dim"] == image.sizes["dim"]
    np.testing.assert_array_equal(image["tokens"].isel(image=3).values, store.image_tokens[3])
    np.testing.assert_array_equal(image["valid"].values, store.image_valid[:])
    np.testing.assert_array_equal(text["tokens"][5].values, store.read_rows("text/tokens", np.array([5]))[0])
    assert text["length"].dtype == np.int32 and text["tokens"].dtype == np.float16


def test_store_shape_is_created_full_size(tmp_path):
    shape = StoreShape(n_images=10, n_tokens=4, n_captions=7, text_len=5, dim=3)
    store = FeatureStore.create(tmp_path / "x.zarr", shape, {"backbone": "b"}, nparts=3)
    assert store.image_tokens.shape == (10, 4, 3) and store.text_ids.shape == (7, 5)
    assert not store.attrs.get("complete")


def test_read_rows_maps_the_chunk_files_and_equals_zarr(tmp_path):
    """Any order, repeats, the edge chunk and a chunk never written (the fill value); 1-D arrays too."""
    shape = StoreShape(n_images=21, n_tokens=3, n_captions=4, text_len=2, dim=5)
    store = FeatureStore.create(tmp_path / "r.zarr", shape, {"backbone": "b"}, chunk_rows=4)
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((21, 3, 5)).astype(np.float16)
    tokens[8:12] = 0  # chunk 2 is all fill value: zarr writes no file for it
    store.write("image/tokens", 0, tokens)
    store.write("image/valid", 0, np.arange(21) % 3 > 0)
    assert not (tmp_path / "r.zarr" / "image" / "tokens" / "c" / "2" / "0" / "0").exists()
    rows = np.array([20, 3, 9, 3, 0, 17, 11])
    got = store.read_rows("image/tokens", rows)
    assert got.dtype == np.float16 and np.array_equal(got, tokens[rows])
    assert np.array_equal(store.read_rows("image/valid", rows), np.arange(21)[rows] % 3 > 0)
    assert store.read_rows("image/tokens", np.array([], dtype=np.int64)).shape == (0, 3, 5)
    many = rng.integers(0, 21, 100)  # more rows than a minibatch: grouped by chunk
    assert np.array_equal(store.read_rows("image/tokens", many), tokens[many])


def test_a_store_extract_made_is_read_the_raw_way_never_through_zarr_selection(stores, monkeypatch):
    """Every array `extract` writes is raw rows and a crc32c (`chunk_files.raw_layout`), so `read_rows` maps its
    chunk files. A zarr-python release that named its codecs otherwise would fall back to zarr's selection, at
    0.013 times the speed (benchmarks/RESULTS.md): it fails here instead."""
    store = FeatureStore.open(stores["shapes_spatial"])
    names = [f"{g}/{n}" for g in ("image", "text") for n in sorted(store.group[g].array_keys())]
    assert [n for n in names if not raw_layout(store[n])] == []
    rows = {n: np.array([store[n].shape[0] - 1, 0, 2, 0]) for n in names}
    want = {n: store[n][:][rows[n]] for n in names}

    def refuse(*args, **kwargs):
        raise AssertionError("read through zarr-python's selection, not the chunk files")

    fresh = FeatureStore.open(stores["shapes_spatial"])
    monkeypatch.setattr(raw_rows, "select_rows", refuse)
    for method in ("__getitem__", "get_orthogonal_selection", "get_basic_selection", "get_coordinate_selection"):
        monkeypatch.setattr(zarr.Array, method, refuse)
    for n in names:
        got = fresh.read_rows(n, rows[n])
        assert got.dtype == want[n].dtype and np.array_equal(got, want[n]), n
