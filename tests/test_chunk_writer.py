"""The store's chunk writer: the bytes zarr-python writes, whole chunks only, errors never lost."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from dcsm_cache.stores import FeatureStore, StoreShape
from dcsm_cache.stores.chunk_files import partial_files, raw_layout
from dcsm_cache.stores.chunk_writer import ChunkWriter

SHAPE = StoreShape(n_images=23, n_tokens=5, n_captions=11, text_len=4, dim=6)  # 23 rows: an edge chunk of 7


def arrays(shape: StoreShape, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, m = shape.n_images, shape.n_captions
    return {
        "image/tokens": rng.standard_normal((n, shape.n_tokens, shape.dim)).astype(np.float16),
        "image/pooled": rng.standard_normal((n, shape.dim)).astype(np.float16),
        "image/valid": rng.random(n) < 0.8,
        "text/tokens": rng.standard_normal((m, shape.text_len, shape.dim)).astype(np.float16),
        "text/pooled": rng.standard_normal((m, shape.dim)).astype(np.float16),
        "text/ids": rng.integers(0, 1000, (m, shape.text_len)).astype(np.int32),
        "text/length": rng.integers(1, 5, m).astype(np.int32),
    }


def files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("batch", [1, 3, 8, 64])
def test_the_same_bytes_as_zarr_python_in_any_batch_size(tmp_path, batch):
    data = arrays(SHAPE)
    by_zarr = FeatureStore.create(tmp_path / "zarr.zarr", SHAPE, {"backbone": "b"}, chunk_rows=8)
    ours = FeatureStore.create(tmp_path / "ours.zarr", SHAPE, {"backbone": "b"}, chunk_rows=8)
    for name, values in data.items():
        by_zarr.write(name, 0, values)
    with ChunkWriter(ours.path, ours.group, threads=3) as chunks:
        for name, values in data.items():
            assert raw_layout(ours[name])
            for s in range(0, len(values), batch):
                chunks.write(name, s, values[s : s + batch])
    assert files(ours.path) == files(by_zarr.path)
    assert len(list((ours.path / "image" / "tokens" / "c").iterdir())) == 3  # 8 + 8 + the edge chunk of 7, padded
    again = zarr.open_group(ours.path, mode="r")  # zarr-python reads them back, checksums checked
    for name, values in data.items():
        np.testing.assert_array_equal(again[name][:], values)
        np.testing.assert_array_equal(ours.read_rows(name, np.arange(len(values))[::-1]), values[::-1])


def test_a_chunk_is_written_only_when_every_row_of_it_is_in(tmp_path):
    store = FeatureStore.create(tmp_path / "s.zarr", SHAPE, {"backbone": "b"}, chunk_rows=8)
    tokens = arrays(SHAPE)["image/tokens"]
    chunks = ChunkWriter(store.path, store.group, threads=1)
    chunks.write("image/tokens", 0, tokens[:5])
    chunks.write("image/tokens", 8, tokens[8:16])  # the second chunk whole, out of order
    chunks.write("image/tokens", 5, tokens[5:7])
    chunks._pool.shutdown(wait=True)  # (so what is on disk now is what was submitted)
    written = sorted(p.relative_to(store.path / "image" / "tokens").as_posix() for p in store.path.rglob("c/*/*/*"))
    assert written == ["c/1/0/0"]
    with pytest.raises(RuntimeError, match=r"chunks \[\('image/tokens', 0\)\] were left with rows unwritten"):
        chunks.close()
    assert not (store.path / "image" / "tokens" / "c" / "0").exists()


def test_an_error_in_a_writing_thread_reaches_the_caller_and_nothing_is_half_written(tmp_path, monkeypatch):
    store = FeatureStore.create(tmp_path / "s.zarr", SHAPE, {"backbone": "b"}, chunk_rows=8)
    tokens = arrays(SHAPE)["image/tokens"]

    def full_disk(fd, parts):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("dcsm_cache.stores.chunk_writer._write_all", full_disk)
    with pytest.raises(OSError, match="No space left"):
        with ChunkWriter(store.path, store.group, threads=2) as chunks:
            for s in range(0, 16, 4):
                chunks.write("image/tokens", s, tokens[s : s + 4])
    assert not list(partial_files(store.path, "image/tokens"))  # temporary files removed
    assert not [p for p in (store.path / "image" / "tokens").rglob("c/*/*/*") if p.is_file()]  # no chunk file


def test_a_caller_that_fails_leaves_its_unfinished_chunks_unwritten(tmp_path):
    store = FeatureStore.create(tmp_path / "s.zarr", SHAPE, {"backbone": "b"}, chunk_rows=8)
    tokens = arrays(SHAPE)["image/tokens"]
    with pytest.raises(KeyError):
        with ChunkWriter(store.path, store.group) as chunks:
            chunks.write("image/tokens", 0, tokens[:12])
            raise KeyError("the caller's own error")
    assert sorted(p.name for p in (store.path / "image" / "tokens" / "c").iterdir()) == ["0"]  # chunk 1 had 4 of 8


def test_an_array_stored_another_way_is_written_through_zarr(tmp_path):
    group = zarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=3)
    arr = group.create_array("x", shape=(10, 3), dtype="float32", chunks=(4, 3))  # zarr's default codecs: zstd
    assert not raw_layout(arr)
    values = np.arange(30, dtype=np.float32).reshape(10, 3)
    with ChunkWriter(tmp_path / "g.zarr", group) as chunks:
        chunks.write("x", 0, values[:7])
        chunks.write("x", 7, values[7:])
    np.testing.assert_array_equal(zarr.open_group(tmp_path / "g.zarr", mode="r")["x"][:], values)
