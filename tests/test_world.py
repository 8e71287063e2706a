"""The shapes world: determinism, truthful captions, held-out combos, and its loader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dcsm_cache.cli import main

from dcsm_cache.errors import ConfigError, InputNotFoundError, UnknownNameError
from dcsm_cache.pipeline.world import scenes as W
from dcsm_cache.pipeline.benchmarks import load_benchmark, shapes
from dcsm_cache.pipeline.world import files, generate
from dcsm_cache.pipeline.world.generate import generate_world
from dcsm_cache.pipeline.world.scenes import PALETTE, Obj, WorldConfig, caption_is_true, parse_caption

TINY = WorldConfig(seed=3, n_pretrain=30, n_train=24, n_val=6, n_test=8, n_heldout=6, n_heldout_val=9, noise=2.0)
EXPECTED = {"pretrain": 30, "train": 24, "val": 6, "test": 24, "heldout": 18, "heldout_val": 9}


def scenes(root: Path, split: str) -> list[dict]:
    return json.loads((root / "scenes" / f"{split}.json").read_text())["scenes"]


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_world(TINY, tmp_path_factory.mktemp("world") / "w")


def test_layout_and_counts(tiny):
    info = json.loads((tiny / "world.json").read_text())
    assert info["format"] == files.FORMAT and info["counts"] == EXPECTED
    assert WorldConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in info["config"].items()}) == TINY
    for split, n in EXPECTED.items():
        rows = scenes(tiny, split)
        assert [r["file"] for r in rows] == [f"images/{split}/{i:06d}.png" for i in range(n)]
        twins = 2 if split in ("train", "val", "heldout_val") else 1  # DCSM items' scenes have an opposite image each
        assert len(list((tiny / "images" / split).glob("*.png"))) == twins * n
    with Image.open(tiny / "images/test/000000.png") as im:
        assert im.mode == "RGB" and im.size == (64, 64)


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    again = all_files(generate_world(TINY, tmp_path / "again"))
    assert again == all_files(tiny)
    other = all_files(generate_world(WorldConfig(**{**TINY.__dict__, "seed": 4}), tmp_path / "other"))
    assert other.keys() == again.keys()
    assert other["scenes/train.json"] != again["scenes/train.json"]
    assert sum(other[k] != again[k] for k in again if k.endswith(".png")) > 0.9 * len(again)


@pytest.mark.parametrize("cores", [1, 3])
def test_splits_written_in_parallel_or_one_after_the_other_are_the_same_bytes(tiny, tmp_path, monkeypatch, cores):
    monkeypatch.setattr(generate, "cpu_cores", lambda: cores)
    assert all_files(generate_world(TINY, tmp_path / "w")) == all_files(tiny)


def test_the_world_command_takes_a_worker_count(tiny, tmp_path):
    sets = [a for k, v in TINY.__dict__.items() if not isinstance(v, tuple) for a in ("--set", f"{k}={v}")]
    for workers in ("1", "2"):
        out = tmp_path / workers
        result = CliRunner().invoke(main, ["world", "--out", str(out), "--workers", workers, *sets])
        assert result.exit_code == 0, result.output
        assert all_files(out) == all_files(tiny)
    assert CliRunner().invoke(main, ["world", "--out", str(tmp_path / "0"), "--workers", "0"]).exit_code == 2


def test_a_split_that_fails_in_a_worker_fails_the_world_and_leaves_no_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(generate, "cpu_cores", lambda: 2)
    monkeypatch.setattr(generate, "render", lambda *a: 1 / 0)  # (inherited by the forked workers)
    with pytest.raises(ZeroDivisionError):
        generate_world(TINY, tmp_path / "w")
    assert not (tmp_path / "w" / "world.json").exists()


def test_positives_true_and_every_negative_false(tiny):
    n_negatives = {"pretrain": 0, "train": 3, "val": 3, "test": 1, "heldout": 1, "heldout_val": 3}
    for split, n in n_negatives.items():
        for s in scenes(tiny, split):
            assert caption_is_true(s["objects"], s["positive"]), s
            assert len(s["negatives"]) == len(s["negative_kinds"]) == n
            for neg in s["negatives"]:
                assert not caption_is_true(s["objects"], neg), (neg, s)


def test_opposite_images_make_the_first_negative_true_and_keep_the_background(tiny):
    for split in ("train", "val", "heldout_val"):
        for s in scenes(tiny, split):
            opp = s["opposite"]
            assert opp["file"] == s["file"].replace(".png", "_opposite.png") and opp["caption"] == s["negatives"][0]
            assert caption_is_true(opp["objects"], opp["caption"]) and not caption_is_true(
                opp["objects"], s["positive"]
            )
            with Image.open(tiny / s["file"]) as a, Image.open(tiny / opp["file"]) as b:
                a, b = a.load(), b.load()
                if s["family"] != "negation":  # same draws in the same order: same background, jitter and noise
                    assert a[0, 0] == b[0, 0]
    s = next(s for s in scenes(tiny, "train") if s["family"] == "spatial")
    moved = [(o["x"], o["y"]) for o in s["opposite"]["objects"]]
    assert moved == [(o["x"], o["y"]) for o in reversed(s["objects"])]  # the relation flips by swapping places
    ds = load_benchmark("shapes_train", str(tiny))
    assert all(ds.images[it.opposite].path.endswith("_opposite.png") for it in ds.items)


def test_objects_inside_image_and_apart(tiny):
    for split in files.SPLITS:
        for s in scenes(tiny, split):
            objs = [Obj(**o) for o in s["objects"]]
            for i, a in enumerate(objs):
                assert a.size / 2 <= a.x <= 64 - a.size / 2 and a.size / 2 <= a.y <= 64 - a.size / 2
                assert TINY.min_size <= a.size <= TINY.max_size
                for b in objs[:i]:
                    assert max(abs(a.x - b.x), abs(a.y - b.y)) >= (a.size + b.size) / 2 + TINY.gap


def test_heldout_combos(tiny):
    held = {tuple(c) for c in json.loads((tiny / "world.json").read_text())["heldout"]}
    assert len(held) == round(0.2 * len(TINY.colours) * len(TINY.shapes))
    kept = {(c, s) for c in TINY.colours for s in TINY.shapes} - held
    assert {c for c, _ in kept} == set(TINY.colours) and {s for _, s in kept} == set(TINY.shapes)
    for split in ("pretrain", "train", "val", "test"):
        for s in scenes(tiny, split):
            assert not {(o["colour"], o["shape"]) for o in s["objects"]} & held
            for caption in [s["positive"], *s["negatives"]]:
                assert not set(parse_caption(caption)[1]) & held, caption
    for s in scenes(tiny, "heldout") + scenes(tiny, "heldout_val"):
        assert {(o["colour"], o["shape"]) for o in s["objects"]} & held
    assert W.heldout_combos(TINY) == sorted(held)


def test_pretrain_captions_only_list_objects(tiny):
    banned = re.compile(r"\b(above|below|left|right|with|without|not|no|under|over)\b")
    for s in scenes(tiny, "pretrain"):
        assert not banned.search(s["positive"]), s["positive"]
        kind, combos = parse_caption(s["positive"])
        assert kind == "list" and sorted(combos) == sorted((o["colour"], o["shape"]) for o in s["objects"])
        assert 1 <= len(s["objects"]) <= 3


def test_families_balanced(tiny):
    test = scenes(tiny, "test")
    assert [s["family"] for s in test] == list(W.FAMILIES) * TINY.n_test
    neg = [s["kind"] for s in test if s["family"] == "negation"]
    assert neg.count("with") == neg.count("without") == TINY.n_test // 2
    rel = [s["kind"] for s in test if s["family"] == "spatial"]
    assert sorted(set(rel)) == sorted(W.RELATIONS) and len(set(rel.count(r) for r in W.RELATIONS)) == 1


def test_caption_checker_by_hand():
    a, b = Obj("red", "circle", 20, 10, 16), Obj("blue", "square", 24, 50, 16)
    assert caption_is_true([a, b], "a red circle above a blue square")
    assert not caption_is_true([a, b], "a red circle below a blue square")
    assert not caption_is_true([a, b], "a blue square above a red circle")
    assert not caption_is_true([a, b], "a red circle to the left of a blue square")  # the vertical axis dominates
    assert caption_is_true([a, b], "a photo of a blue square and a red circle")
    assert caption_is_true([a, b], "blue square, red circle")
    assert not caption_is_true([a, b], "a blue circle and a red square")
    assert caption_is_true([a, b], "a red circle with a blue square")
    assert not caption_is_true([a, b], "a red circle without a blue square")
    assert caption_is_true([a], "a red circle without a blue square")
    assert not caption_is_true([b], "a red circle without a green square")
    assert parse_caption("an orange star to the right of a green cross") == (
        "to the right of",
        [("orange", "star"), ("green", "cross")],
    )
    with pytest.raises(ValueError):
        parse_caption("a red blob")


def test_bad_config():
    with pytest.raises(ConfigError, match="magenta"):
        WorldConfig(colours=("red", "green", "blue", "magenta"))
    with pytest.raises(ConfigError):
        WorldConfig(max_size=40)


@pytest.mark.parametrize(
    "family, subsets",
    [
        ("pretrain", {"pretrain": (30, 1)}),
        ("train", {"train": (24, 4), "val": (6, 4), "heldout_val": (9, 4)}),
        ("binding", {"test": (8, 2), "heldout": (6, 2)}),
        ("spatial", {"test": (8, 2), "heldout": (6, 2)}),
        ("negation", {"test": (8, 2), "heldout": (6, 2)}),
    ],
)
def test_loader(tiny, family, subsets):
    ds = load_benchmark(f"shapes_{family}", root=str(tiny))
    assert ds.name == f"shapes_{family}" and ds.root == str(tiny) and ds.subsets == sorted(subsets)
    for subset, (count, n_candidates) in subsets.items():
        items = [it for it in ds.items if it.subset == subset]
        assert len(items) == count
        assert all(len(it.candidates) == n_candidates and it.correct == 0 for it in items)
    for it in ds.items:
        assert not Path(ds.images[it.image].path).is_absolute() and ds.image_path(it.image).is_file()
        if family in W.FAMILIES:
            assert it.tags["family"] == family and it.tags["negative"] in ("swap", "flip")
    assert len(set(ds.captions)) == len(ds.captions)


def test_loader_missing_world(tmp_path):
    with pytest.raises(InputNotFoundError, match=r"dcsm-cache world --out .*nowhere"):
        shapes.load(tmp_path / "nowhere", family="binding")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match=r"world\.json missing.*dcsm-cache world --out"):
        shapes.load(tmp_path / "empty", family="spatial")
    with pytest.raises(UnknownNameError, match="negation"):
        shapes.load(tmp_path / "empty", family="colour")


def test_crash_leaves_no_complete_marker(tmp_path, monkeypatch):
    small = WorldConfig(n_pretrain=2, n_train=3, n_val=0, n_test=1, n_heldout=1, n_heldout_val=1)
    root = generate_world(small, tmp_path / "w")
    assert (root / "world.json").is_file()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(generate, "render", broken)
    with pytest.raises(OSError, match="disk full"):
        generate_world(small, root)
    assert not (root / "world.json").exists()
    with pytest.raises(InputNotFoundError):
        shapes.load(root, family="binding")


def test_another_draw_shades_and_blurs_the_same_scenes(tmp_path):
    from dcsm_cache.pipeline.world.generate import shades

    base = dict(seed=7, n_pretrain=0, n_train=0, n_val=0, n_test=3, n_heldout=0, n_heldout_val=0)
    plain = generate_world(WorldConfig(**base, shade=30), tmp_path / "plain", workers=1)
    other = generate_world(WorldConfig(**base, shade=30, blur=0.8), tmp_path / "other", workers=1)
    assert scenes(plain, "test") == scenes(other, "test")  # the same scenes and captions, drawn otherwise
    moved = shades(WorldConfig(**base, shade=30))
    assert all(np.abs(moved[c] - np.array(PALETTE[c])).max() <= 30 for c in PALETTE)
    assert any(np.abs(moved[c] - np.array(PALETTE[c])).max() > 5 for c in PALETTE)
    for s in scenes(plain, "test"):
        with Image.open(plain / s["file"]) as a, Image.open(other / s["file"]) as b:
            a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
        o = s["objects"][0]
        assert np.abs(a[o["y"], o["x"]] - moved[o["colour"]]).max() <= 12  # its shade, and its jitter
        edges = lambda im: np.abs(np.diff(im, axis=1)).mean()  # noqa: E731
        assert edges(b) < edges(a)  # blurred
    with pytest.raises(ConfigError, match="shade=99"):
        WorldConfig(shade=99)
