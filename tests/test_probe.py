"""probe: a linear classifier of each object's colour and shape from the image tokens around it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from dcsm_cache.cli import main
from dcsm_cache.errors import DcsmCacheError
from dcsm_cache.pipeline.items import read_manifest
from dcsm_cache.pipeline.tasks.probe import probe
from dcsm_cache.pipeline.world.files import world_images


def _planted(store, world, tmp_path, name, plant, seed=0) -> str:
    """A copy of `store` whose image tokens are noise (from `seed`), plus `plant(obj)` at each object's patch."""
    path = tmp_path / f"{name}.zarr"
    shutil.copytree(store, path)
    group = zarr.open_group(path, mode="r+")
    cfg, objects = world_images(world)
    rng = np.random.default_rng(seed)
    tokens = rng.normal(size=group["image/tokens"].shape).astype(np.float32)
    side = int(np.sqrt(tokens.shape[1]))
    cell = cfg["image_size"] / side
    for row, ref in enumerate(read_manifest(group.attrs["manifest"]).images):
        for o in objects[ref.path][2]:
            tokens[row, min(int(o["y"] // cell), side - 1) * side + min(int(o["x"] // cell), side - 1)] += plant(o)
    group["image/tokens"][:] = tokens.astype(group["image/tokens"].dtype)
    return str(path)


def _code_of(attr: str, stores, world):
    """A random token per value of `attr` (colour or shape): `plant` for `_planted`."""
    values = world_images(world)[0][f"{attr}s"]
    dim = zarr.open_group(stores["shapes_train"], mode="r")["image/tokens"].shape[-1]
    codes = np.random.default_rng(len(attr)).normal(size=(len(values), dim)).astype(np.float32) * 4
    return lambda o: codes[values.index(o[attr])]


def test_planted_shape_is_read_and_noise_is_chance(stores, world, tmp_path):
    """Tokens that carry the shape (and not the colour) at each object: shape near 100%, colour near chance."""
    cfg, _ = world_images(world)
    plant = _code_of("shape", stores, world)
    train = _planted(stores["shapes_train"], world, tmp_path, "train", plant)
    test = _planted(stores["shapes_spatial"], world, tmp_path, "test", plant)
    report = probe(train, test, world)
    manifest = json.loads((stores["shapes_spatial"] / "zarr.json").read_text())["attributes"]["manifest"]
    assert report["n_test"] == 2 * len(read_manifest(manifest).images)  # two objects per spatial scene
    assert report["shape"]["accuracy"] >= 0.95
    assert report["colour"]["accuracy"] <= 0.5  # 7 colours, chance 1/7, nothing to read
    assert all(v >= 0.9 for v in report["shape"]["pairs"].values())
    rows = report["shape"]["confusion"]
    assert set(rows) == set(cfg["shapes"])
    assert all(abs(sum(r.values()) - 1) < 1e-6 for r in rows.values() if any(r.values()))
    assert report["binding_ceiling"]["n_scenes"] == 0  # the spatial store has no binding scenes
    again = _planted(stores["shapes_train"], world, tmp_path, "again", plant, seed=1)  # same scenes, other noise
    on_train = probe(train, again, world)  # its binding scenes: the probe tells the true assignment from the swap
    assert on_train["binding_ceiling"]["n_scenes"] > 5 and on_train["binding_ceiling"]["accuracy"] >= 0.95
    assert set(on_train["binding_ceiling"]["splits"]) <= {"train", "val", "heldout_val"}


def test_binding_ceiling_is_chance_without_shape(stores, world, tmp_path):
    """Tokens that carry only the colour: the probe cannot tell a shape assignment from its swap."""
    plant = _code_of("colour", stores, world)
    train = _planted(stores["shapes_train"], world, tmp_path, "colours", plant)
    report = probe(train, _planted(stores["shapes_train"], world, tmp_path, "again", plant, seed=1), world)
    assert report["colour"]["accuracy"] >= 0.95 and report["shape"]["accuracy"] <= 0.6
    assert report["binding_ceiling"]["accuracy"] <= 0.8


def test_cli_writes_the_report_and_names_a_wrong_world(stores, world, tmp_path):
    out = tmp_path / "probe.json"
    args = ["probe", "--train", str(stores["shapes_train"]), "--test", str(stores["shapes_spatial"])]
    res = CliRunner().invoke(main, [*args, "--world", str(world), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "shape" in res.output and "hardest pairs" in res.output
    report = json.loads(out.read_text())
    assert set(report) >= {"colour", "shape", "binding_ceiling", "n_train", "n_test"}
    assert 0 <= report["colour"]["accuracy"] <= 1 and report["n_train"] > 0
    other = tmp_path / "world"
    shutil.copytree(world, other)
    for split in ("pretrain", "train", "val", "test", "heldout"):
        doc = json.loads((other / "scenes" / f"{split}.json").read_text())
        doc["scenes"] = []
        (other / "scenes" / f"{split}.json").write_text(json.dumps(doc))
    with pytest.raises(DcsmCacheError, match="none of its images is a scene of this world"):
        probe(stores["shapes_train"], stores["shapes_spatial"], other)
    res = CliRunner().invoke(main, [*args, "--world", str(other)])
    assert res.exit_code == 2 and "none of its images" in res.output
