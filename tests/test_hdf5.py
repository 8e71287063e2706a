"""HDF5 export and import: a bit-identical round trip, attributes and chunks included."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError
from dcsm_cache.pipeline.tasks import EvalConfig, evaluate
from dcsm_cache.stores import FeatureStore, export_hdf5, import_hdf5


def test_round_trip_is_bit_identical(stores, tmp_path):
    src = FeatureStore.open(stores["shapes_spatial"])
    h5 = export_hdf5(src.path, tmp_path / "s.h5")
    with h5py.File(h5, "r") as f:
        assert f["image/tokens"].chunks == src.image_tokens.chunks and f["image/tokens"].dtype == np.float16
        assert f.attrs["backbone"] == src.attrs["backbone"]
    back = import_hdf5(h5, tmp_path / "back.zarr")
    assert back.attrs == src.attrs
    for g in ("image", "text"):
        for name in src.group[g].array_keys():
            a, b = src[f"{g}/{name}"], back[f"{g}/{name}"]
            assert a.dtype == b.dtype and a.chunks == b.chunks and np.array_equal(a[:], b[:]), name
            assert a[:].tobytes() == b[:].tobytes()
    cfg = EvalConfig(device="cpu")
    assert evaluate(back.path, "cosine", cfg)["accuracy"] == evaluate(src.path, "cosine", cfg)["accuracy"]


def test_cli_and_foreign_files(stores, tmp_path):
    r = CliRunner().invoke(main, ["export", str(stores["shapes_spatial"]), str(tmp_path / "s.h5")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["import", str(tmp_path / "s.h5"), str(tmp_path / "s.zarr")])
    assert r.exit_code == 0 and FeatureStore.open(tmp_path / "s.zarr").attrs["complete"]
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(BadInputError, match="was not written by `dcsm-cache export`"):
        import_hdf5(tmp_path / "other.h5", tmp_path / "o.zarr")
    (tmp_path / "text.h5").write_text("nope")
    r = CliRunner().invoke(main, ["import", str(tmp_path / "text.h5"), str(tmp_path / "t.zarr")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "is not an HDF5 file" in r.output
