"""Feeding the model: DataLoader workers decode ahead in order, bad images keep their rows, the writer never drops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_BACKBONE
from PIL import Image

from dcsm_cache.pipeline.extract import ExtractConfig, StoreWriter, extract, image_batches
from dcsm_cache.pipeline.items import DatasetBuilder, open_image, write_manifest
from dcsm_cache.stores.feature_store import FeatureStore


def _preprocess(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1) / 255


@pytest.fixture()
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    b = DatasetBuilder("feed", tmp_path)
    for i in range(11):
        name = f"{i}.png"
        if i == 4:
            (tmp_path / name).write_bytes(b"\x89PNG not really")  # corrupt
        elif i != 7:  # 7 is missing
            Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(tmp_path / name)
        b.add(name, [f"caption {i}", "other"])
    write_manifest(ds := b.build(), tmp_path / "m.json")
    return ds


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_in_order_with_bad_rows_kept(dataset, workers):
    got = list(image_batches(dataset, _preprocess, (2, 11), batch_size=4, workers=workers, pixel_shape=(3, 8, 8)))
    assert [start for start, *_ in got] == [2, 6, 10]
    valid = np.concatenate([v for _, _, v, _ in got])
    assert valid.tolist() == [r not in (4, 7) for r in range(2, 11)]
    errors = [e for *_, errs in got for e in errs]
    assert len(errors) == 2 and "4.png" in errors[0] and "7.png" in errors[1]
    pixels = torch.cat([p for _, p, _, _ in got])
    for i, row in enumerate(range(2, 11)):
        want = _preprocess(open_image(dataset, row)) if valid[i] else torch.zeros(3, 8, 8)
        assert torch.equal(pixels[i], want)


def test_writer_raises_what_failed_and_writes_the_rest():
    class Store:
        def __init__(self):
            self.rows = []

        def write(self, name, start, values):
            if start == 2:
                raise OSError("disk full")
            self.rows.append(start)

    store = Store()
    with pytest.raises(OSError, match="disk full"):
        with StoreWriter(store, depth=1) as write:
            for start in range(5):
                write(start, {"x": np.zeros(1)})
    assert store.rows[:2] == [0, 1]


def test_workers_do_not_change_a_single_byte(dataset, tmp_path):
    stores = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}.zarr"
        extract(
            tmp_path / "m.json",
            TINY_BACKBONE,
            out,
            ExtractConfig(batch_size=3, workers=workers, device="cpu", progress=False),
        )
        stores[workers] = FeatureStore.open(out)
    for name in ("image/tokens", "image/pooled", "image/valid", "text/tokens"):
        assert np.array_equal(stores[0][name][:], stores[2][name][:]), name
    assert stores[2].image_valid[:].tolist() == [i not in (4, 7) for i in range(11)]
