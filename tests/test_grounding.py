"""grounding: a word's best-matching patch against where the world put its object."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import zarr
from click.testing import CliRunner

from dcsm_cache.cli import main
from dcsm_cache.errors import DcsmCacheError
from dcsm_cache.pipeline.tokens.backbones import load_backbone
from dcsm_cache.pipeline.tasks.grounding import grounding
from dcsm_cache.pipeline.items import read_manifest

from conftest import TINY_BACKBONE


def _scenes(world) -> dict:
    return {
        s["file"]: s["objects"]
        for split in ("test", "heldout")
        for s in json.loads((world / "scenes" / f"{split}.json").read_text())["scenes"]
    }


def test_report_shape_and_chance(stores, world):
    report = grounding(stores["shapes_spatial"], world, alone=False)
    n_items = sum(
        1
        for _ in read_manifest(
            json.loads((stores["shapes_spatial"] / "zarr.json").read_text())["attributes"]["manifest"]
        ).items
    )
    assert report["n_objects"] == 2 * n_items  # every spatial caption names both objects
    assert report["chance"] == pytest.approx(0.5)
    assert set(report["in_context"]) == {"colour", "shape"} and "alone" not in report
    assert all(0 <= v <= 1 for v in report["in_context"].values())


def test_planted_colours_are_found_alone(stores, world, tmp_path):
    """Image tokens set to each object's colour-word embedding at its patch: 'alone' colour finds them."""
    path = tmp_path / "planted.zarr"
    shutil.copytree(stores["shapes_spatial"], path)
    group = zarr.open_group(path, mode="r+")
    bb = load_backbone(TINY_BACKBONE, "cpu")
    manifest = read_manifest(group.attrs["manifest"])
    tokens = np.zeros(group["image/tokens"].shape, dtype=np.float32)
    side = int(np.sqrt(tokens.shape[1]))
    cell = json.loads((world / "world.json").read_text())["config"]["image_size"] / side
    scenes = _scenes(world)
    with torch.no_grad():
        for row, ref in enumerate(manifest.images):
            for o in scenes[ref.path]:
                e = torch.nn.functional.normalize(bb.model.encode_text(bb.tokenizer([o["colour"]])), dim=-1)[0]
                tokens[row, int(o["y"] // cell) * side + int(o["x"] // cell)] = e.numpy()
    group["image/tokens"][:] = tokens.astype(group["image/tokens"].dtype)
    report = grounding(path, world, alone=True)
    assert report["alone"]["colour"] >= 0.9  # chance is 0.5
    assert report["in_context"]["colour"] != report["alone"]["colour"]


def test_cli_and_wrong_world(stores, world, tmp_path):
    out = tmp_path / "g.json"
    res = CliRunner().invoke(
        main,
        ["grounding", "--store", str(stores["shapes_spatial"]), "--world", str(world), "--no-alone", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert "in_context colour" in res.output and json.loads(out.read_text())["n_objects"] > 0
    other = tmp_path / "world"
    shutil.copytree(world, other)
    for split in ("train", "val", "test", "heldout"):
        doc = json.loads((other / "scenes" / f"{split}.json").read_text())
        doc["scenes"] = []
        (other / "scenes" / f"{split}.json").write_text(json.dumps(doc))
    with pytest.raises(DcsmCacheError, match="no item's image is a scene of the world"):
        grounding(stores["shapes_spatial"], other, alone=False)
