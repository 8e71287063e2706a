"""The item form: dedup, manifest round trip and layouts, fingerprint, images in files and tar shards."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import google_crc32c
import pytest
from PIL import Image

from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.items import (
    DatasetBuilder,
    ImageRef,
    fingerprint,
    manifest_fingerprint,
    open_image,
    read_manifest,
    write_manifest,
)


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


def test_fingerprint_follows_image_bytes_not_times_or_place(tmp_path):
    (tmp_path / "here").mkdir()
    ds = _dataset(tmp_path / "here")
    before = fingerprint(ds)
    st = os.stat(tmp_path / "here" / "a.png")
    os.utime(tmp_path / "here" / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert fingerprint(ds) == before  # a copy, a checkout or `touch` changes times, not features
    shutil.copytree(tmp_path / "here", tmp_path / "there")  # (copytree keeps times; a move changes nothing)
    assert fingerprint(dataclasses.replace(ds, root=str(tmp_path / "there"))) == before
    data = bytearray((tmp_path / "here" / "a.png").read_bytes())
    data[-20] ^= 1  # one bit, the same size, the same time
    (tmp_path / "here" / "a.png").write_bytes(bytes(data))
    os.utime(tmp_path / "here" / "a.png", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fingerprint(ds) != before
    (tmp_path / "here" / "b.png").unlink()
    assert fingerprint(ds) not in (before, fingerprint(dataclasses.replace(ds, root=str(tmp_path / "there"))))


def test_the_root_is_recorded_relative_to_the_manifest_and_resolved_from_anywhere(tmp_path, monkeypatch):
    (tmp_path / "proj" / "data").mkdir(parents=True)
    ds = _dataset(tmp_path / "proj" / "data")
    monkeypatch.chdir(tmp_path / "proj")
    fp = write_manifest(dataclasses.replace(ds, root="data"), "manifests/m.json")  # as `items --root data` gives it
    assert json.loads(Path("manifests/m.json").read_text())["root"] == "../data"
    monkeypatch.chdir(tmp_path)
    back = read_manifest("proj/manifests/m.json")
    assert back.root == "proj/data" and back.image_path(0).is_file() and fingerprint(back) == fp
    shutil.move(tmp_path / "proj", tmp_path / "moved")  # the project moved whole: its manifests still read
    back = read_manifest(tmp_path / "moved" / "manifests" / "m.json")
    assert Path(back.root) == tmp_path / "moved" / "data" and open_image(back, 1).size == (5, 5)
    assert fingerprint(back) == fp
    write_manifest(back, tmp_path / "abs.json")  # an absolute root stays absolute
    assert json.loads((tmp_path / "abs.json").read_text())["root"] == str(tmp_path / "moved" / "data")


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


def _reference_fingerprint(ds) -> str:
    """The fingerprint as defined: sha256 of the manifest content but its root, dumped with sorted keys, then
    each image file's size and the crc32c of its bytes."""
    content = {
        "schema": 2,
        "name": ds.name,
        "metric": ds.metric,
        "images": [
            {"path": r.path, **({"box": list(r.box)} if r.box else {}), **({"member": r.member} if r.member else {})}
            for r in ds.images
        ],
        "captions": list(ds.captions),
        "items": [
            {
                "image": it.image,
                "candidates": list(it.candidates),
                "correct": it.correct,
                "subset": it.subset,
                **({"tags": dict(it.tags)} if it.tags else {}),
                **({"opposite": it.opposite} if it.opposite is not None else {}),
            }
            for it in ds.items
        ],
    }
    h = hashlib.sha256(json.dumps(content, sort_keys=True).encode())
    for row in range(len(ds.images)):
        p = ds.image_path(row)
        stamp = f"{p.stat().st_size}:{google_crc32c.value(p.read_bytes()):08x}" if p.exists() else "missing"
        h.update(f"{row}:{stamp};".encode())
    return h.hexdigest()[:16]


def _awkward(root):
    Image.new("RGB", (20, 10), (255, 0, 0)).save(root / "a.png")
    b = DatasetBuilder('naïve "set"', root)
    b.add("a.png", ["red ☃", 'a "quoted"\\ caption'], subset="s/ü", template="pos", k="v")
    b.add(ImageRef("b.png", (0, 1.5, 5, 5)), ["line\nbreak"], subset="s2")
    b.add(ImageRef("s.tar", None, "0001.jpg"), ["red ☃"])
    b.add(ImageRef("s.tar", None, "0002.jpg"), ["line\nbreak", "z"], correct=1)
    b.add("a.png", ["z", "red ☃"], subset="pair", opposite="b2.png")  # an image-side hard negative
    return b.build()


def test_fingerprint_is_unchanged_by_streaming_and_members_round_trip(tmp_path):
    ds = _awkward(tmp_path)
    assert fingerprint(ds) == _reference_fingerprint(ds)
    fp = write_manifest(ds, tmp_path / "m.json")
    assert fp == _reference_fingerprint(ds) == manifest_fingerprint(tmp_path / "m.json")
    assert read_manifest(tmp_path / "m.json") == ds
    doc = json.loads((tmp_path / "m.json").read_text())  # still one plain JSON document
    assert doc["fingerprint"] == fp and doc["images"][2] == {"path": "s.tar", "member": "0001.jpg"}
    assert len((tmp_path / "m.json").read_text().splitlines()) == 1 + 3 * 2 + 4 + 5 + 5  # one record a line


def test_manifest_of_the_earlier_layout_still_reads(tmp_path):
    ds = _dataset(tmp_path)
    fp = fingerprint(ds)
    old = {
        "schema": 1,
        "name": "toy",
        "root": str(tmp_path),
        "metric": "argmax",
        "images": [{"path": "a.png"}, {"path": "b.png", "box": [0, 0, 5, 5]}],
        "captions": ["red", "blue", "green"],
        "items": [
            {"image": 0, "candidates": [0, 1], "correct": 0, "subset": "s1", "tags": {"template": "positive"}},
            {"image": 1, "candidates": [1, 0], "correct": 0, "subset": "s2"},
            {"image": 0, "candidates": [0, 2], "correct": 1, "subset": "s1"},
        ],
        "fingerprint": fp,
    }
    (tmp_path / "old.json").write_text(json.dumps(old, indent=1))
    assert read_manifest(tmp_path / "old.json") == ds and manifest_fingerprint(tmp_path / "old.json") == fp


def test_manifest_edited_by_hand_still_reads(tmp_path):
    ds = _dataset(tmp_path)
    write_manifest(ds, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    assert '{"candidates": [0, 1], ' in text
    (tmp_path / "m.json").write_text(text.replace('{"candidates": [0, 1], ', '{"candidates": [0,\n  1], '))
    assert read_manifest(tmp_path / "m.json") == ds


def test_truncated_manifest_is_bad_input(tmp_path):
    write_manifest(_dataset(tmp_path), tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    (tmp_path / "m.json").write_text(text[: len(text) - 40])
    with pytest.raises(BadInputError, match="not a dcsm-cache manifest"):
        read_manifest(tmp_path / "m.json")
    (tmp_path / "h.json").write_text('{"schema": 1, "name": "x"}')
    with pytest.raises(BadInputError, match="no recorded fingerprint.*items manifest"):
        manifest_fingerprint(tmp_path / "h.json")


def test_open_image_reads_a_tar_member(tmp_path):
    for i, color in enumerate([(255, 0, 0), (0, 255, 0)]):
        Image.new("RGB", (8, 6), color).save(tmp_path / f"{i}.png")
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        tar.add(tmp_path / "0.png", "k0.png")
        tar.add(tmp_path / "1.png", "k1.png")
    b = DatasetBuilder("tar", tmp_path)
    b.add(ImageRef("s.tar", member="k0.png"), ["red"])
    b.add(ImageRef("s.tar", member="k1.png"), ["green"])
    ds = b.build()
    assert open_image(ds, 1).getpixel((3, 3)) == (0, 255, 0) and open_image(ds, 0).getpixel((0, 0)) == (255, 0, 0)
    bad = DatasetBuilder("tar", tmp_path)
    bad.add(ImageRef("s.tar", member="k9.png"), ["red"])
    with pytest.raises(InputNotFoundError, match="s.tar has no member k9.png"):
        open_image(bad.build(), 0)


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


def test_image_size_reads_the_header_and_gives_open_images_size(tmp_path):
    from dcsm_cache.pipeline.items import ImageRef, image_size, open_image

    Image.new("RGB", (90, 50), (1, 2, 3)).save(tmp_path / "a.png")
    b = DatasetBuilder("sizes", tmp_path)
    refs = ["a.png", ImageRef("a.png", box=(2.5, 3.5, 40.5, 20.4)), ImageRef("a.png", box=(0, 0, 30, 30), canvas=64)]
    for i, ref in enumerate(refs):
        b.add(ref, [f"caption {i}"])
    ds = b.build()
    assert [image_size(ds, r) for r in range(3)] == [open_image(ds, r).size for r in range(3)]
    assert image_size(ds, 1) == (41, 20)  # 43 - round(2.5), round(23.9) - round(3.5): Python's (PIL's) rounding
