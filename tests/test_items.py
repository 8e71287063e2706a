"""The item form: dedup, manifest round trip, fingerprint, image errors."""
from __future__ import annotations

import os

import pytest
from PIL import Image

from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.items import DatasetBuilder, ImageRef, fingerprint, open_image, read_manifest, write_manifest


def _dataset(root):
    Image.new("RGB", (20, 10), (255, 0, 0)).save(root / "a.png")
    Image.new("RGB", (20, 10), (0, 0, 255)).save(root / "b.png")
    b = DatasetBuilder("toy", root)
    b.add("a.png", ["red", "blue"], subset="s1", template="positive")
    b.add(ImageRef("b.png", (0, 0, 5, 5)), ["blue", "red"], subset="s2")
    b.add("a.png", ["red", "green"], correct=1, subset="s1")
    return b.build()


def test_builder_deduplicates_images_and_captions(tmp_path):
    ds = _dataset(tmp_path)
    assert ds.captions == ("red", "blue", "green")
    assert len(ds.images) == 2 and ds.items[2].image == 0 and ds.items[2].candidates == (0, 2)
    assert ds.subsets == ["s1", "s2"] and ds.items[0].tags == {"template": "positive"}


def test_manifest_round_trip(tmp_path):
    ds = _dataset(tmp_path)
    fp = write_manifest(ds, tmp_path / "m.json")
    back = read_manifest(tmp_path / "m.json")
    assert back == ds and fp == fingerprint(ds)


def test_fingerprint_follows_image_files(tmp_path):
    ds = _dataset(tmp_path)
    before = fingerprint(ds)
    st = os.stat(tmp_path / "a.png")
    os.utime(tmp_path / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert fingerprint(ds) != before


def test_crop_box_and_image_errors(tmp_path):
    ds = _dataset(tmp_path)
    assert open_image(ds, 1).size == (5, 5)
    (tmp_path / "a.png").write_bytes(b"garbage")
    with pytest.raises(BadInputError, match="a.png cannot be read"):
        open_image(ds, 0)
    (tmp_path / "a.png").unlink()
    with pytest.raises(InputNotFoundError, match="a.png is missing"):
        open_image(ds, 0)


def test_bad_manifest_and_correct_index(tmp_path):
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(BadInputError, match="not a dcsm-cache manifest"):
        read_manifest(tmp_path / "m.json")
    with pytest.raises(InputNotFoundError, match="dcsm-cache items"):
        read_manifest(tmp_path / "none.json")
    with pytest.raises(BadInputError, match="correct index 3"):
        DatasetBuilder("x", tmp_path).add("a.png", ["a", "b"], correct=3)


def test_canvas_keeps_the_crop_unscaled_on_its_background(tmp_path):
    im = Image.new("RGB", (30, 30), (200, 210, 220))
    im.paste((255, 0, 0), (12, 12, 18, 18))  # a 6 px red square, centred at (15, 15)
    im.save(tmp_path / "scene.png")
    b = DatasetBuilder("cut", tmp_path)
    b.add(ImageRef("scene.png", (8, 8, 14, 14), canvas=40), ["a red square"])
    ds = b.build()
    write_manifest(ds, tmp_path / "m.json")
    assert read_manifest(tmp_path / "m.json").images == ds.images
    out = open_image(ds, 0)
    assert out.size == (40, 40) and out.getpixel((0, 0)) == out.getpixel((39, 39)) == (200, 210, 220)
    red = [(x, y) for x in range(40) for y in range(40) if out.getpixel((x, y)) == (255, 0, 0)]
    assert len(red) == 36 and min(red) == (17, 17) and max(red) == (22, 22)  # 6 px, at the canvas centre
