"""The DCSM paper's training sets (benchmarks/dcsm_train.py), each from a tiny folder in exactly the native
layout of docs/benchmarks.md §4; expected captions are spelled out here, not built with the loader's code."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from PIL import Image

from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.benchmarks import expected_files, load_benchmark
from dcsm_cache.pipeline.items import read_manifest, write_manifest


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (len(path.name) * 7 % 255, 0, 0)).save(path)


def _pairs(ds):
    """{(image path, version): (caption, opposite caption, opposite image path)}"""
    return {
        (ds.images[it.image].path, it.tags["version"]): (
            ds.captions[it.candidates[0]],
            ds.captions[it.candidates[1]],
            ds.images[it.opposite].path,
        )
        for it in ds.items
    }


def write_training_sets(root, sources=("spatial", "colour", "negation")):
    """The three training sources at `root`, tiny, in their native layout (tests/test_recipes.py uses it too)."""
    if "spatial" in sources:
        _write_spatial(root)
    if "colour" in sources:
        _write_colour(root)
    if "negation" in sources:
        _write_negation(root)
    return root


@pytest.fixture
def data(tmp_path):
    return write_training_sets(tmp_path)


def _write_spatial(tmp_path):
    sp = tmp_path / "objaverse_train_composite_newrelations_withbg"
    for name in ("chair_above_lamp.png", "dog_leftof_car.jpg"):
        _png(sp / name)
        _png(sp / f"CUTMIX_{name}")


def _write_colour(tmp_path):
    co = tmp_path / "objaverse_attributes_overlay_withbg"
    _png(co / "red_chair_blue_lamp.png")
    _png(co / "MIRROR_red_chair_blue_lamp.png")
    sb = tmp_path / "objaverse_smallbig_withbg"
    _png(sb / "small_dog_big_car.png")
    _png(sb / "MIRROR_small_dog_big_car.png")


def _write_negation(tmp_path):
    for p in ("train2014/a.jpg", "train2014/b.jpg"):
        _png(tmp_path / p)
    records = [
        {
            "img1_path": "train2014/a.jpg",
            "img2_path": "train2014/b.jpg",
            "img1_obj": ["cat", "kitten"],
            "img2_obj": ["dog", "puppy"],
        }
    ]
    (tmp_path / "negated_pairs_cocotrain_v1.json").write_text(json.dumps(records))


def test_spatial_composites_both_versions_with_cutmix_opposites(data):
    ds = load_benchmark("dcsm_train_spatial", str(data))
    f = "objaverse_train_composite_newrelations_withbg/"
    assert _pairs(ds) == {
        (f + "chair_above_lamp.png", "v0"): (
            "A picture of a chair above a lamp",
            "A picture of a lamp above a chair",
            f + "CUTMIX_chair_above_lamp.png",
        ),
        (f + "chair_above_lamp.png", "v1"): (
            "A picture of a lamp below a chair",
            "A picture of a chair below a lamp",
            f + "CUTMIX_chair_above_lamp.png",
        ),
        (f + "dog_leftof_car.jpg", "v0"): (
            "A picture of a dog to the left of a car",
            "A picture of a car to the left of a dog",
            f + "CUTMIX_dog_leftof_car.jpg",
        ),
        (f + "dog_leftof_car.jpg", "v1"): (
            "A picture of a car to the right of a dog",
            "A picture of a dog to the right of a car",
            f + "CUTMIX_dog_leftof_car.jpg",
        ),
    }
    assert {it.subset for it in ds.items} == {"train"} and {it.correct for it in ds.items} == {0}
    assert expected_files("dcsm_train_spatial") == ("objaverse_train_composite_newrelations_withbg",)


def test_colour_overlays_and_the_small_big_sibling_with_mirror_opposites(data):
    ds = load_benchmark("dcsm_train_colour", str(data), versions=[1])
    assert _pairs(ds) == {
        ("objaverse_attributes_overlay_withbg/red_chair_blue_lamp.png", "v1"): (
            "A picture of a blue lamp and a red chair",
            "A picture of a red lamp and a blue chair",
            "objaverse_attributes_overlay_withbg/MIRROR_red_chair_blue_lamp.png",
        ),
        ("objaverse_smallbig_withbg/small_dog_big_car.png", "v1"): (
            "A picture of a big car and a small dog",
            "A picture of a small car and a big dog",
            "objaverse_smallbig_withbg/MIRROR_small_dog_big_car.png",
        ),
    }
    v0 = _pairs(load_benchmark("dcsm_train_colour", str(data), versions=0))
    assert v0[("objaverse_attributes_overlay_withbg/red_chair_blue_lamp.png", "v0")][:2] == (
        "A picture of a red chair and a blue lamp",
        "A picture of a blue chair and a red lamp",
    )


def test_negation_pairs_phrases_are_the_references_and_seeded(data):
    ds = load_benchmark("dcsm_train_negation", str(data))
    pairs = _pairs(ds)
    phrases = ("and not", "but no", "without")
    cap, opp, other = pairs[("train2014/a.jpg", "v0")]
    assert other == "train2014/b.jpg"
    assert any(cap == f"An image of a cat {n} a dog" for n in phrases)
    assert any(opp == f"An image of a dog {n} a cat" for n in phrases)
    cap1, opp1, _ = pairs[("train2014/a.jpg", "v1")]
    assert any(cap1 == f"An image of a kitten {n} a puppy" for n in phrases)
    assert any(opp1 == f"An image of a puppy {n} a kitten" for n in phrases)
    assert _pairs(load_benchmark("dcsm_train_negation", str(data))) == pairs  # same seed, same manifest


def test_negation_draws_every_phrase_over_many_pairs(tmp_path):
    for p in ("a.jpg", "b.jpg"):
        _png(tmp_path / p)
    rec = {"img1_path": "a.jpg", "img2_path": "b.jpg", "img1_obj": ["cat", "cat"], "img2_obj": ["dog", "dog"]}
    (tmp_path / "negated_pairs_cocotrain_v1.json").write_text(json.dumps([rec] * 60))
    ds = load_benchmark("dcsm_train_negation", str(tmp_path), versions=[0], seed=3)
    used = Counter(ds.captions[it.candidates[0]].split(" cat ")[1].rsplit(" a dog")[0] for it in ds.items)
    assert set(used) == {"and not", "but no", "without"}


def test_the_three_sources_in_one_set_keep_their_links_and_tags(data):
    every = _pairs(load_benchmark("dcsm_train_synth", str(data)))
    parts = {}
    for key in ("spatial", "colour", "negation"):
        parts.update(_pairs(load_benchmark(f"dcsm_train_{key}", str(data))))
    assert every == parts
    sources = Counter(it.tags["source"] for it in load_benchmark("dcsm_train_synth", str(data)).items)
    assert sources == {"spatial": 4, "colour": 4, "negation": 2}


def test_opposite_links_survive_the_manifest(data, tmp_path):
    ds = load_benchmark("dcsm_train_spatial", str(data))
    write_manifest(ds, tmp_path / "m.json")
    back = read_manifest(tmp_path / "m.json")
    assert back == ds and all(it.opposite is not None for it in back.items)


SP = "objaverse_train_composite_newrelations_withbg"
NEG = "negated_pairs_cocotrain_v1.json"


@pytest.mark.parametrize(
    "key, breakage, error, match",
    [
        ("spatial", lambda d: (d / SP / "CUTMIX_dog_leftof_car.jpg").unlink(), InputNotFoundError, "CUTMIX_dog"),
        ("spatial", lambda d: _png(d / SP / "big_chair_above_lamp.png"), BadInputError, "A_rel_B"),
        ("spatial", lambda d: _png(d / SP / "chair_under_lamp_above.png"), BadInputError, "A_rel_B"),
        ("colour", lambda d: _png(d / "objaverse_attributes_overlay_withbg" / "red_chair.png"), BadInputError, "c1_A"),
        ("negation", lambda d: (d / NEG).write_text('[{"img1_path": "x"'), BadInputError, "not valid JSON"),
        ("negation", lambda d: (d / NEG).write_text('[{"img1_path": "train2014/a.jpg"}]'), BadInputError, "img2_path"),
        ("negation", lambda d: (d / NEG).write_text("{}"), BadInputError, "non-empty list"),
        ("negation", lambda d: (d / "train2014" / "b.jpg").unlink(), InputNotFoundError, "train2014/b.jpg"),
        ("negation", lambda d: (d / NEG).unlink(), InputNotFoundError, NEG),
    ],
)
def test_bad_folders_are_one_line(data, key, breakage, error, match):
    breakage(data)
    with pytest.raises(error, match=match) as err:
        load_benchmark(f"dcsm_train_{key}", str(data))
    assert "\n" not in str(err.value)
