"""HDF5 export and import: a bit-identical round trip (chunk rows, unreadable images, cached views and
every attribute included) that `verify` passes; a damaged or incomplete file is refused in one line,
exit 2, with no store left behind and the one already there untouched."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError, DcsmCacheError, StoreMismatchError
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.tasks import EvalConfig, evaluate
from dcsm_cache.stores import FeatureStore, export_hdf5, import_hdf5
from dcsm_cache.stores.verify import verify_store

from conftest import TINY_BACKBONE


@pytest.fixture(scope="module")
def views_store(world, tmp_path_factory) -> Path:
    """A store with 8 rows a chunk (not the default), two views per image and one unreadable image."""
    from dcsm_cache.pipeline.benchmarks import load_benchmark
    from dcsm_cache.pipeline.items import write_manifest

    folder = tmp_path_factory.mktemp("views")
    shutil.copytree(world, folder / "w")
    ds = load_benchmark("shapes_spatial", str(folder / "w"))
    ds.image_path(3).write_bytes(b"not a png")
    write_manifest(ds, folder / "m.json")
    cfg = ExtractConfig(batch_size=8, device="cpu", progress=False, chunk_rows=8, views=2)
    return extract(folder / "m.json", TINY_BACKBONE, folder / "v.zarr", cfg).path


@pytest.fixture(scope="module")
def exported(views_store, tmp_path_factory) -> Path:
    return export_hdf5(views_store, tmp_path_factory.mktemp("h5") / "v.h5")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode() + (p.read_bytes() if p.is_file() else b""))
    return h.hexdigest()


def assert_same_store(a: FeatureStore, b: FeatureStore) -> None:
    assert a.attrs == b.attrs
    for g in ("image", "text"):
        assert sorted(a.group[g].array_keys()) == sorted(b.group[g].array_keys())
        for name in a.group[g].array_keys():
            x, y = a[f"{g}/{name}"], b[f"{g}/{name}"]
            assert x.dtype == y.dtype and x.chunks == y.chunks and x[:].tobytes() == y[:].tobytes(), name
            assert x.metadata.dimension_names == y.metadata.dimension_names, name


def test_round_trip_keeps_chunk_rows_bad_images_views_and_attributes(views_store, exported, tmp_path):
    src = FeatureStore.open(views_store)
    assert src.image_tokens.chunks[0] == 8 and "image/views" in src.group and src.bad_images()[0]["row"] == 3
    with h5py.File(exported, "r") as f:
        assert f["image/tokens"].chunks == src.image_tokens.chunks and f["image/tokens"].dtype == np.float16
        assert all(f[n].fletcher32 for n in ("image/tokens", "image/views", "text/ids", "image/valid"))
        assert list(f["image/views"].attrs["dimension_names"]) == ["image", "view", "image_token", "dim"]
        assert f.attrs["backbone"] == src.attrs["backbone"]
    back = import_hdf5(exported, tmp_path / "back.zarr")
    assert_same_store(src, back)
    assert back.bad_images() == src.bad_images() and back.image_tokens.chunks[0] == 8
    assert verify_store(back.path) == verify_store(src.path) and verify_store(back.path)[1] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".back.zarr.lock", "back.zarr"]  # no temporary folder
    cfg = EvalConfig(device="cpu")
    assert evaluate(back.path, "cosine", cfg)["accuracy"] == evaluate(src.path, "cosine", cfg)["accuracy"]


def test_cli_and_foreign_files(stores, tmp_path):
    r = run("export", stores["shapes_spatial"], tmp_path / "s.h5")
    assert r.exit_code == 0, r.output
    r = run("import", tmp_path / "s.h5", tmp_path / "s.zarr")
    assert r.exit_code == 0 and FeatureStore.open(tmp_path / "s.zarr").attrs["complete"]
    assert_same_store(FeatureStore.open(stores["shapes_spatial"]), FeatureStore.open(tmp_path / "s.zarr"))
    before = folder_hash(tmp_path / "s.zarr")
    r = run("import", tmp_path / "s.h5", tmp_path / "s.zarr")  # a store is there: replaced only with --overwrite
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "--overwrite" in r.stderr
    assert run("import", tmp_path / "s.h5", tmp_path / "s.zarr", "--overwrite").exit_code == 0
    assert folder_hash(tmp_path / "s.zarr") == before
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(BadInputError, match="was not written by `dcsm-cache export`"):
        import_hdf5(tmp_path / "other.h5", tmp_path / "o.zarr")
    (tmp_path / "text.h5").write_text("nope")
    r = run("import", tmp_path / "text.h5", tmp_path / "t.zarr")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "is not an HDF5 file" in r.output


def refused(res, out: Path, *needles: str) -> None:
    """Exit 2, one line naming each needle, and no store (nor a temporary folder) left at `out`."""
    assert res.exit_code == 2, (res.output, res.exception)
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("dcsm-cache: error: "), res.stderr
    for needle in needles:
        assert needle in res.stderr, (needle, res.stderr)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*ing"))


def test_a_missing_dataset_is_one_line_and_leaves_no_store(exported, views_store, tmp_path):
    h5 = tmp_path / "cut.h5"
    shutil.copy(exported, h5)
    with h5py.File(h5, "r+") as f:
        del f["image/views"]
    refused(run("import", h5, tmp_path / "s.zarr"), tmp_path / "s.zarr", str(h5), "image/views")
    shutil.copytree(views_store, tmp_path / "kept.zarr")
    before = folder_hash(tmp_path / "kept.zarr")
    res = run("import", h5, tmp_path / "kept.zarr", "--overwrite")  # the store there is kept as it was
    assert res.exit_code == 2 and "image/views" in res.stderr and folder_hash(tmp_path / "kept.zarr") == before


def flipped(src: Path, dst: Path, offset: int) -> Path:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x10
    dst.write_bytes(bytes(data))
    return dst


def test_a_flipped_byte_is_refused_on_import(exported, tmp_path):
    with h5py.File(exported, "r") as f:
        chunk = f["image/tokens"].id.get_chunk_info(1)  # the chunk of rows 8-15
    bad = flipped(exported, tmp_path / "data.h5", chunk.byte_offset + chunk.size // 2)
    with h5py.File(bad, "r") as f, pytest.raises(OSError):  # HDF5's own checksum, for every reader
        f["image/tokens"][8:16]
    refused(run("import", bad, tmp_path / "s.zarr"), tmp_path / "s.zarr", str(bad), "image/tokens rows 8-15")
    at = exported.read_bytes().find(b'"dataset": "shapes_spatial"')
    bad = flipped(exported, tmp_path / "attrs.h5", at + len('"dataset": "shapes_sp'))  # still valid JSON
    refused(run("import", bad, tmp_path / "s.zarr"), tmp_path / "s.zarr", str(bad), "attributes fail their sha256")


def test_any_flipped_byte_is_refused_or_changes_nothing(views_store, exported, tmp_path):
    """A flip anywhere in the file: refused (nothing left) or harmless (padding, unused space)."""
    src, size, outcomes = FeatureStore.open(views_store), exported.stat().st_size, set()
    for i in range(24):
        offset = (i * 7919 + 11) % size
        bad, out = flipped(exported, tmp_path / "f.h5", offset), tmp_path / f"{i}.zarr"
        try:
            back = import_hdf5(bad, out)
        except DcsmCacheError as err:
            assert "\n" not in str(err) and str(bad) in str(err) and not out.exists(), (offset, err)
            outcomes.add("refused")
            continue
        assert_same_store(src, back)
        outcomes.add("harmless")
    assert "refused" in outcomes


def test_an_older_schema_is_refused(exported, tmp_path):
    import json

    bad = tmp_path / "old.h5"
    shutil.copy(exported, bad)
    with h5py.File(bad, "r+") as f:
        attrs = json.loads(f.attrs["dcsm_cache_attrs"])
        text = json.dumps({**attrs, "schema_version": 3}, sort_keys=True)
        f.attrs["dcsm_cache_attrs"] = text
        f.attrs["dcsm_cache_attrs_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    with pytest.raises(StoreMismatchError, match="schema 3.*re-extract"):
        import_hdf5(bad, tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()
