"""docs/stores.md: every snippet runs against a store made by `extract` (and its HDF5 export), with warnings
as errors, and reads image 0's token rows equal to `FeatureStore`'s; one snippet per tool the page names."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from dcsm_cache.stores import FeatureStore, export_hdf5

PAGE = Path(__file__).resolve().parent.parent / "docs" / "stores.md"
STORE, H5 = "stores/shapes-clip/shapes_spatial.zarr", "shapes_spatial.h5"


def snippets() -> dict[str, str]:
    """`## tool` -> its ```python block."""
    text = PAGE.read_text()
    return {m[1].strip(): m[2] for m in re.finditer(r"^## (.+?)\n.*?```python\n(.*?)```", text, re.S | re.M)}


def test_the_page_has_one_snippet_per_tool_and_names_the_shell_step():
    assert set(snippets()) == {"zarr-python", "tensorstore", "xarray", "dask", "h5py"}
    assert f"dcsm-cache export {STORE} {H5}" in PAGE.read_text()


@pytest.fixture(scope="module")
def exported(stores, tmp_path_factory) -> Path:
    return export_hdf5(stores["shapes_spatial"], tmp_path_factory.mktemp("h5") / "s.h5")


@pytest.mark.parametrize("tool", ["zarr-python", "tensorstore", "xarray", "dask", "h5py"])
def test_each_snippet_reads_what_the_feature_store_reads(tool, stores, exported):
    code = snippets()[tool].replace(STORE, str(stores["shapes_spatial"])).replace(H5, str(exported))
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no tool warns about the store
        exec(compile(code, f"{PAGE.name}:{tool}", "exec"), namespace)  # noqa: S102  (the page's own code)
    expected = FeatureStore.open(stores["shapes_spatial"]).image_tokens[0]
    tokens = np.asarray(namespace["tokens"])
    assert tokens.dtype == np.float16 and np.array_equal(tokens, expected), tool
