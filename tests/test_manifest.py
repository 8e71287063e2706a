"""The `manifest` loader: a hand-written manifest is checked, deduplicated, fingerprinted, then extracts."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_BACKBONE
from PIL import Image

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.items import ImageRef, fingerprint, manifest_fingerprint, read_manifest

HAND = {
    "name": "mine",
    "images": [
        "a.png",
        {"path": "b.png", "box": [0, 0, 10, 8]},
        "never_used.png",
        {"path": "s.tar", "member": "k.png"},
    ],
    "captions": ["a red square", "a blue square", "a red square", "an unused caption"],
    "items": [
        {"image": 0, "candidates": [0, 1]},
        {"image": 1, "candidates": [2, 1], "correct": 1, "subset": "crops", "tags": {"family": "colour"}},
        {"image": 3, "candidates": [1, 0], "subset": "tar"},
    ],
}
# What the items are, written out: (image, candidate texts, correct, subset, tags).
EXPECTED = [
    (ImageRef("a.png"), ["a red square", "a blue square"], 0, "", {}),
    (ImageRef("b.png", (0, 0, 10, 8)), ["a red square", "a blue square"], 1, "crops", {"family": "colour"}),
    (ImageRef("s.tar", member="k.png"), ["a blue square", "a red square"], 0, "tar", {}),
]


@pytest.fixture
def root(tmp_path) -> Path:
    Image.new("RGB", (24, 24), (220, 20, 20)).save(tmp_path / "a.png")
    Image.new("RGB", (24, 24), (20, 20, 220)).save(tmp_path / "b.png")
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), (20, 200, 20)).save(buf, "PNG")
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        info = tarfile.TarInfo("k.png")
        info.size = len(buf.getvalue())
        tar.addfile(info, io.BytesIO(buf.getvalue()))
    return tmp_path


def write(root: Path, doc, name="my.json") -> Path:
    (root / name).write_text(json.dumps(doc, indent=2))
    return root / name


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_valid_manifest_is_deduplicated(root):
    write(root, HAND)
    ds = load_benchmark("manifest", str(root), file="my.json")
    assert ds.name == "mine" and ds.root == str(root)
    got = [
        (ds.images[it.image], [ds.captions[c] for c in it.candidates], it.correct, it.subset, dict(it.tags))
        for it in ds.items
    ]
    assert got == EXPECTED
    assert ds.captions == ("a red square", "a blue square") and len(ds.images) == 3  # duplicates and unused dropped
    assert load_benchmark("manifest", str(root), file="my.json", name="other").name == "other"


def test_hand_written_manifest_gets_its_fingerprint_and_extracts(root, tmp_path):
    write(root, HAND)
    r = run("extract", "--items", root / "my.json", "--backbone", TINY_BACKBONE, "--out", tmp_path / "x.zarr")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "dcsm-cache items manifest --root" in r.output, r.output
    out = tmp_path / "manifests" / "mine.json"
    r = run("items", "manifest", "--root", root, "--set", "file=my.json", "--out", out)
    assert r.exit_code == 0 and "3 items, 3 images, 2 captions" in r.output, r.output
    assert manifest_fingerprint(out) == fingerprint(read_manifest(out)) and manifest_fingerprint(out) in r.output
    r = run(
        "extract",
        "--items",
        out,
        "--backbone",
        TINY_BACKBONE,
        "--out",
        tmp_path / "s.zarr",
        "--device",
        "cpu",
        "--set",
        "batch_size=8",
        "--set",
        "progress=false",
    )
    assert r.exit_code == 0 and "store complete" in r.output, r.output
    import zarr

    g = zarr.open_group(tmp_path / "s.zarr", mode="r")
    assert g["image/valid"][:].tolist() == [True, True, True] and g.attrs["fingerprint"] == manifest_fingerprint(out)


def test_out_of_range_index_is_one_line_naming_the_item_exit_2(root, tmp_path):
    bad = json.loads(json.dumps(HAND))
    bad["items"][2]["candidates"] = [1, 7]
    write(root, bad)
    r = run("items", "manifest", "--root", root, "--set", "file=my.json", "--out", tmp_path / "m.json")
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "my.json item 2: candidate 7 is out of range (0-3)" in lines[0]
    assert not (tmp_path / "m.json").exists()


def _with(path, value):
    doc = json.loads(json.dumps(HAND))
    *keys, last = path
    target = doc
    for k in keys:
        target = target[k]
    target[last] = value
    return doc


@pytest.mark.parametrize(
    "doc, error, needle",
    [
        (_with(["items", 0, "image"], 4), BadInputError, "item 0: image 4 is out of range (0-3)"),
        (_with(["items", 1, "correct"], 2), BadInputError, "item 1: correct 2 is out of range (0-1)"),
        (_with(["items", 1, "correct"], "1"), BadInputError, "item 1: correct should be an integer index, got '1'"),
        (_with(["items", 0, "candidate"], [0]), BadInputError, "item 0: fields are image, candidates"),
        (_with(["items", 2, "candidates"], []), BadInputError, "item 2: candidates should be a non-empty list"),
        (_with(["images", 0], "gone.png"), InputNotFoundError, "item 0: image 0 (gone.png) not found under"),
        (_with(["images", 3, "member"], "x.png"), InputNotFoundError, "item 2: image 3 (s.tar:x.png) not found"),
        (_with(["images", 1, "box"], [0, 0]), BadInputError, "image 1: box should be [x, y, w, h]"),
        (_with(["captions", 1], None), BadInputError, "caption 1 should be text, got None"),
        (_with(["metric"], "top5"), BadInputError, "metric 'top5' is not one of argmax, strict"),
        (_with(["root"], "/somewhere/else"), BadInputError, "root '/somewhere/else' is not --root"),
        (_with(["item"], []), BadInputError, "unknown field(s) item"),
    ],
)
def test_bad_manifests_name_what_is_wrong(root, doc, error, needle):
    write(root, doc)
    with pytest.raises(error) as err:
        load_benchmark("manifest", str(root), file="my.json")
    assert "\n" not in str(err.value) and needle in str(err.value) and "my.json" in str(err.value), str(err.value)


def test_not_json_names_the_line(root):
    (root / "my.json").write_text('{"images": ["a.png"],\n "captions": [oops]}')
    with pytest.raises(BadInputError, match=r"my.json:2: not valid JSON"):
        load_benchmark("manifest", str(root), file="my.json")


def test_a_written_manifest_reads_back_as_a_hand_written_one(root, tmp_path, monkeypatch):
    """Schema 2 records the root relative to the manifest's folder: checked against --root from anywhere."""
    from dcsm_cache.pipeline.items import write_manifest

    write(root, HAND)
    monkeypatch.chdir(root.parent)
    ds = load_benchmark("manifest", root.name, file="my.json")  # a relative --root
    write_manifest(ds, root / "sub" / "written.json")
    assert json.loads((root / "sub" / "written.json").read_text())["root"] == ".."
    monkeypatch.chdir(root / "sub")
    again = load_benchmark("manifest", str(root), file="sub/written.json")
    assert again.items == ds.items and again.images == ds.images and again.captions == ds.captions
