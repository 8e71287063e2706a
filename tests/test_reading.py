"""The one way the science reads a store (pipeline/reading.py): the store with its manifest, checked; normalising."""

from __future__ import annotations

import ast
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from dcsm_cache.errors import InputNotFoundError, StoreMismatchError
from dcsm_cache.pipeline.items import read_manifest, write_manifest
from dcsm_cache.pipeline.reading import normalise, open_store, read_pooled, read_rows
from dcsm_cache.stores.feature_store import FeatureStore

PIPELINE = Path(__file__).resolve().parents[1] / "src" / "dcsm_cache" / "pipeline"


def test_a_store_opens_with_the_manifest_it_records_or_the_one_given(stores, manifests, tmp_path):
    opened = open_store(stores["shapes_spatial"])
    assert opened.path == Path(stores["shapes_spatial"])
    assert opened.dataset == read_manifest(manifests["shapes_spatial"])
    assert opened.store.attrs["fingerprint"] == FeatureStore.open(stores["shapes_spatial"]).attrs["fingerprint"]
    moved = tmp_path / "elsewhere.json"
    shutil.copy(manifests["shapes_spatial"], moved)
    assert open_store(stores["shapes_spatial"], items=moved).dataset == opened.dataset


def test_a_missing_or_changed_manifest_is_an_error_that_says_what_to_do(stores, manifests, tmp_path):
    with pytest.raises(InputNotFoundError, match=r"manifest .*nope\.json of store .* is missing: .*--items"):
        open_store(stores["shapes_spatial"], items=tmp_path / "nope.json")
    ds = read_manifest(manifests["shapes_spatial"])
    changed = tmp_path / "changed.json"
    write_manifest(dataclasses.replace(ds, captions=(ds.captions[0] + " (edited)", *ds.captions[1:])), changed)
    with pytest.raises(StoreMismatchError, match="another version of dataset"):
        open_store(stores["shapes_spatial"], items=changed)
    with pytest.raises(StoreMismatchError, match="another backbone"):
        open_store(stores["shapes_spatial"], backbone_id="0123456789abcdef")


def test_pooled_rows_and_the_rows_a_path_reads_are_the_stores(stores):
    store = FeatureStore.open(stores["shapes_spatial"])
    pooled = read_pooled(stores["shapes_spatial"])
    np.testing.assert_array_equal(pooled.images(2, 5), normalise(store.image_pooled[2:5]))
    np.testing.assert_array_equal(pooled.text, normalise(store.text_pooled[:]))
    np.testing.assert_array_equal(pooled.valid, store.image_valid[:])
    rows = [4, 0, 4]
    np.testing.assert_array_equal(read_rows(stores["shapes_spatial"], "text/tokens", rows), store.text_tokens[:][rows])


def test_normalise_gives_float32_unit_rows_and_keeps_zero_rows_zero():
    x = np.array([[3, 4], [0, 0], [1e-3, 0]], dtype=np.float16)
    got = normalise(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, [[0.6, 0.8], [0, 0], [1, 0]], rtol=1e-6)
    x32 = np.random.default_rng(0).standard_normal((4, 3, 8)).astype(np.float32)
    np.testing.assert_array_equal(normalise(x32), x32 / np.linalg.norm(x32, axis=-1, keepdims=True))


def _opens_a_store(path: Path) -> list[str]:
    """The calls in `path` that open a store or its arrays some other way than reading.py."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        call = ast.unparse(node.func)
        if call in ("FeatureStore.open", "FeatureStore", "open_with_manifest") or call.startswith("zarr."):
            found.append(call)
        if call.endswith(("from_zarr", "get_orthogonal_selection")) or (
            isinstance(node.func, ast.Attribute) and node.func.attr == "check_fingerprint"
        ):
            found.append(call)
    return found


def test_nothing_in_the_pipeline_but_reading_opens_a_store_for_reading():
    """One way into a store: extract/ writes them (FeatureStore.create); analysis hands dask the store's path."""
    allowed = {"reading.py": {"FeatureStore.open", "store.check_fingerprint"}, "analysis/arrays.py": {"da.from_zarr"}}
    found = {}
    for path in sorted(PIPELINE.rglob("*.py")):
        rel = path.relative_to(PIPELINE).as_posix()
        if rel.startswith("extract/"):
            continue
        calls = set(_opens_a_store(path)) - allowed.get(rel, set())
        if calls:
            found[rel] = sorted(calls)
    assert found == {}
