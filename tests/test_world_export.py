"""The shapes world's probe sets exported as What'sUp, CLEVR-bind and SugarCREPE, read back by their loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dcsm_cache.cli import main
from dcsm_cache.errors import InputNotFoundError, UnknownNameError
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.tasks.choice import evaluate
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import write_manifest
from dcsm_cache.pipeline.world import WorldConfig, caption_is_true, generate_world
from dcsm_cache.pipeline.world.export import export_world
from dcsm_cache.stores.feature_store import FeatureStore

TINY = WorldConfig(seed=5, n_pretrain=0, n_train=0, n_val=0, n_test=4, n_heldout=3, n_heldout_val=0)
KEYS = {
    "test": ("whatsUp_A", "clevr_bind_2obj_valid", "sugarcrepe"),
    "heldout": ("whatsUp_A", "clevr_bind_2obj_gen", "sugarcrepe"),
}
SUGARCREPE = {
    ("binding", "swap"): "swap_att",
    ("spatial", "flip"): "replace_rel",
    ("spatial", "swap"): "swap_obj",
    ("negation", "flip"): "replace_rel",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wx")
    world = generate_world(TINY, tmp / "world")
    doc = export_world(world, tmp / "export")
    return tmp, world, doc


def scenes(world: Path, split: str) -> dict[str, dict]:
    rows = json.loads((world / "scenes" / f"{split}.json").read_text())["scenes"]
    return {Path(s["file"]).stem: s for s in rows}


def stem_of(path: str) -> str:
    """The world's scene number from an exported file name (…-000012.jpeg, 000012.png, 000000000012.jpg)."""
    return f"{int(Path(path).stem.rsplit('-', 1)[-1]):06d}"


@pytest.mark.parametrize("split", ["test", "heldout"])
def test_every_export_loads_with_the_correct_caption_first(exported, split):
    tmp, world, doc = exported
    by_stem = scenes(world, split)
    families = {f: [s for s in by_stem.values() if s["family"] == f] for f in ("binding", "spatial", "negation")}
    info = doc["splits"][split]
    assert info["dropped"] == 0 and set(info["benchmarks"]) == set(KEYS[split])
    root = str(tmp / "export" / split)
    for key in KEYS[split]:
        ds = load_benchmark(key, root)
        assert len(ds.items) == info["benchmarks"][key]
        for it in ds.items:
            scene = by_stem[stem_of(ds.images[it.image].path)]
            caps = [ds.captions[c] for c in it.candidates]
            assert caption_is_true(scene["objects"], caps[it.correct])
            assert not any(caption_is_true(scene["objects"], c) for i, c in enumerate(caps) if i != it.correct)
            if key == "whatsUp_A":
                assert it.correct == 0 and len(caps) == 4 and caps[0] == scene["positive"]
                assert scene["family"] == "spatial" and ds.images[it.image].path.endswith(".jpeg")
                assert it.tags["preposition"] in ("above", "below", "left_of", "right_of")
            elif key.startswith("clevr"):
                assert len(caps) == 5 and all(len(c.split()) == 2 for c in caps) and scene["family"] == "binding"
            else:
                assert caps == [scene["positive"], scene["negatives"][0]] and ds.metric == "strict"
                assert it.subset == SUGARCREPE[(scene["family"], scene["negative_kinds"][0])]
    assert info["benchmarks"]["whatsUp_A"] == len(families["spatial"])
    assert info["benchmarks"][KEYS[split][1]] == 2 * len(families["binding"])
    assert info["benchmarks"]["sugarcrepe"] == len(by_stem)
    with Image.open(next((tmp / "export" / split / "val2017").iterdir())) as im:
        assert im.format == "JPEG" and im.size == (TINY.image_size, TINY.image_size)


def test_test_split_names_no_heldout_combo(exported):
    tmp, world, _ = exported
    held = {" ".join(c) for c in json.loads((world / "world.json").read_text())["heldout"]}
    ds = load_benchmark("clevr_bind_2obj_valid", str(tmp / "export" / "test"))
    assert not held & set(ds.captions)


def test_cosine_eval_end_to_end(exported):
    tmp, _, _ = exported
    ds = load_benchmark("whatsUp_A", str(tmp / "export" / "test"))
    write_manifest(ds, tmp / "whatsup.json")
    extract(
        tmp / "whatsup.json",
        "shapes-clip-tiny",
        tmp / "whatsup.zarr",
        ExtractConfig(device="cpu", progress=False, workers=1),
    )
    result = evaluate(tmp / "whatsup.zarr", "cosine")
    fs = FeatureStore.open(tmp / "whatsup.zarr")
    img, txt = (a[:].astype(np.float32) for a in (fs.image_pooled, fs.text_pooled))
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    hits = [int(np.argmax(txt[list(it.candidates)] @ img[it.image])) == it.correct for it in ds.items]
    assert result["n_items"] == len(ds.items) and result["chance"] == pytest.approx(0.25)
    assert result["accuracy"] == pytest.approx(np.mean(hits))


def test_cli_is_deterministic_and_errors(exported, tmp_path):
    tmp, world, _ = exported
    res = CliRunner().invoke(
        main,
        ["export-world", "--world", str(world), "--out", str(tmp_path / "again"), "--formats", "clevr_bind,sugarcrepe"],
    )
    assert res.exit_code == 0, res.output
    for rel in (
        "test/clevr_bind/two_object/val.csv",
        "heldout/clevr_bind/two_object/gen.csv",
        "test/data/swap_att.json",
        "heldout/data/replace_rel.json",
    ):
        assert (tmp_path / "again" / rel).read_bytes() == (tmp / "export" / rel).read_bytes()
    assert not (tmp_path / "again" / "test" / "controlled_images_dataset.json").exists()
    with pytest.raises(UnknownNameError, match="unknown export format or split coco"):
        export_world(world, tmp_path / "x", formats=("coco",))
    with pytest.raises(InputNotFoundError, match="world.json missing"):
        export_world(tmp_path / "nowhere", tmp_path / "x")
    res = CliRunner().invoke(main, ["export-world", "--world", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "world.json missing" in res.output
