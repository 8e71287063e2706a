"""Benchmark loaders read tiny folders written in each benchmark's native layout (docs/benchmarks.md).

Expected values are computed here from the fixture rows, not from the loaders. NegBench, CC-Neg
and SugarCREPE are in test_benchmarks_negation.py; the shared helpers are in this file.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from dcsm_cache.errors import BadInputError, ConfigError, InputNotFoundError, UnknownNameError
from dcsm_cache.pipeline import paper
from dcsm_cache.pipeline.benchmarks import BENCHMARKS, load_benchmark
from dcsm_cache.pipeline.items import open_image, read_manifest, write_manifest

PAPER_KEYS = [
    "clevr_bind_2obj_train",
    "clevr_bind_2obj_valid",
    "clevr_bind_2obj_gen",
    "ncd_subset1",
    "ncd_subset2",
    "vg_attr",
    "whatsUp_A",
    "whatsUp_B",
    "coco_spatial1",
    "coco_spatial2",
    "vg_subset1",
    "vg_subset2",
    "negbench_coco",
    "negbench_voc",
    "ccneg",
    "sugarcrepe",
]


def write_image(path: Path, size=(32, 24), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    Image.new("RGB", size, color).save(path, fmt)
    return path


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def candidates(ds, item) -> list[str]:
    return [ds.captions[c] for c in item.candidates]


def image_of(ds, item) -> str:
    return ds.images[item.image].path


# ---------------------------------------------------------------- registry and errors


def test_registry_has_the_reference_keys():
    assert set(PAPER_KEYS) <= set(BENCHMARKS)
    assert {k for c in paper.COLUMNS for k in c.keys} <= set(BENCHMARKS)


def test_unknown_benchmark_lists_valid_names(tmp_path):
    with pytest.raises(UnknownNameError) as err:
        load_benchmark("whatsup_a", str(tmp_path))
    assert "whatsUp_A" in str(err.value) and "negbench_voc" in str(err.value) and "sugarcrepe" in str(err.value)


@pytest.mark.parametrize("key", PAPER_KEYS)
def test_wrong_folder_names_the_expected_file_in_one_line(tmp_path, key):
    (tmp_path / "something_else.txt").write_text("not a benchmark")
    with pytest.raises(InputNotFoundError) as err:
        load_benchmark(key, str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{key}: expected ") and str(tmp_path) in msg and "layout" in msg


def test_unknown_option_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="aro_order"):
        load_benchmark("vg_attr", str(tmp_path), nonsense=1)


# ---------------------------------------------------------------- CLEVR-bind

CLEVR_ROWS = {
    "train": [
        ("img_000001.png", "red cube", "blue cube", "red sphere", "green cube", "red cylinder"),
        ("img_000001.png", "blue sphere", "red sphere", "blue cube", "gray sphere", "blue cylinder"),
    ],
    "val": [("img_000010.png", "cyan cylinder", "gray cylinder", "cyan cube", "brown cylinder", "cyan sphere")],
    "gen": [
        ("img_000020.png", "yellow sphere", "purple sphere", "yellow cube", "red sphere", "yellow cylinder"),
        ("img_000021.png", "green cube", "brown cube", "green sphere", "gray cube", "green cylinder"),
        ("img_000022.png", "purple cylinder", "red cylinder", "purple cube", "blue cylinder", "purple sphere"),
    ],
}


def make_clevr(root: Path) -> None:
    base = root / "clevr_bind" / "two_object"
    for split, rows in CLEVR_ROWS.items():
        base.mkdir(parents=True, exist_ok=True)
        with open(base / f"{split}.csv", "w", newline="") as f:  # as pandas.to_csv writes it: index first
            w = csv.writer(f)
            w.writerow(["", "file_name", "pos", "neg_0", "neg_1", "neg_2", "neg_3"])
            for i, row in enumerate(rows):
                w.writerow([i, *row])
        for row in rows:
            write_image(base / "images" / split / row[0])


@pytest.mark.parametrize(
    "key,split", [("clevr_bind_2obj_train", "train"), ("clevr_bind_2obj_valid", "val"), ("clevr_bind_2obj_gen", "gen")]
)
def test_clevr_bind_csv(tmp_path, key, split):
    make_clevr(tmp_path)
    ds = load_benchmark(key, str(tmp_path))
    rows = CLEVR_ROWS[split]
    assert ds.name == key and ds.metric == "argmax" and len(ds.items) == len(rows)
    for item, row in zip(ds.items, rows):
        assert candidates(ds, item) == list(row[1:]) and item.correct == 0 and item.subset == split
        assert image_of(ds, item) == f"clevr_bind/two_object/images/{split}/{row[0]}"
        assert ds.image_path(item.image).is_file()
    assert len(ds.images) == len({r[0] for r in rows})  # two rows of one image share it


def test_clevr_bind_json_form(tmp_path):
    make_clevr(tmp_path)
    base = tmp_path / "clevr_bind" / "two_object"
    (base / "gen.csv").unlink()
    doc = {r[0]: {"pos": r[1], "neg": list(r[2:])} for r in CLEVR_ROWS["gen"]}
    write_json(base / "gen.json", doc)
    ds = load_benchmark("clevr_bind_2obj_gen", str(tmp_path))
    assert [candidates(ds, it) for it in ds.items] == [[d["pos"], *d["neg"]] for d in doc.values()]


def test_clevr_bind_missing_column_names_file(tmp_path):
    make_clevr(tmp_path)
    path = tmp_path / "clevr_bind" / "two_object" / "val.csv"
    path.write_text("file_name,pos,neg_0\nimg_000010.png,red cube,blue cube\n")
    with pytest.raises(BadInputError, match=r"val\.csv lacks column\(s\) neg_1, neg_2, neg_3"):
        load_benchmark("clevr_bind_2obj_valid", str(tmp_path))


# ---------------------------------------------------------------- NCD

NCD_FILES = ["yellow_banana_red_apple.png", "green_pear_purple_grape.jpg", "orange_carrot_white_onion.jpeg"]


def make_ncd(root: Path) -> Path:
    folder = root / "NCD_colorful_composite_squares"
    for f in NCD_FILES + ["MIRROR_yellow_banana_red_apple.png"]:
        write_image(folder / f)
    (folder / "readme.txt").write_text("not an image")
    return folder


@pytest.mark.parametrize("key,settype", [("ncd_subset1", 0), ("ncd_subset2", 1)])
def test_ncd(tmp_path, key, settype):
    make_ncd(tmp_path)
    ds = load_benchmark(key, str(tmp_path))
    names = sorted(NCD_FILES)
    assert [image_of(ds, it) for it in ds.items] == [f"NCD_colorful_composite_squares/{f}" for f in names]
    for item, f in zip(ds.items, names):
        c1, a, c2, b = f.rsplit(".", 1)[0].split("_")
        want = (
            [f"A picture of a {c1} {a} and a {c2} {b}", f"A picture of a {c2} {a} and a {c1} {b}"]
            if settype == 0
            else [f"A picture of a {c2} {b} and a {c1} {a}", f"A picture of a {c1} {b} and a {c2} {a}"]
        )
        assert candidates(ds, item) == want and item.correct == 0 and item.subset == f"settype{settype}"


def test_ncd_bad_name_is_named(tmp_path):
    write_image(make_ncd(tmp_path) / "red_apple_green.png")
    with pytest.raises(BadInputError, match="red_apple_green.png"):
        load_benchmark("ncd_subset1", str(tmp_path))


# ---------------------------------------------------------------- VG-Attribution

VG_RECORDS = [
    {
        "image_id": "2375429",
        "image_path": "2375429.jpg",
        "bbox_x": 10,
        "bbox_y": 20,
        "bbox_w": 300,
        "bbox_h": 200,
        "attributes": ["white", "brown"],
        "true_caption": "the white plate and the brown table",
        "false_caption": "the brown plate and the white table",
    },
    {
        "image_id": "2375430",
        "image_path": "2375430.jpg",
        "bbox_x": 0,
        "bbox_y": 5.5,
        "bbox_w": 64,
        "bbox_h": 48,
        "attributes": ["small", "big"],
        "true_caption": "the small dog and the big cat",
        "false_caption": "the big dog and the small cat",
    },
    {
        "image_id": "2375429",
        "image_path": "2375429.jpg",
        "bbox_x": 100,
        "bbox_y": 50,
        "bbox_w": 30,
        "bbox_h": 40,
        "attributes": ["red", "open"],
        "true_caption": "the red door is open",
        "false_caption": "the open door is red",
    },
]


def make_vg_attr(root: Path, folder: str = "VG_100K") -> None:
    write_json(root / "visual_genome_attribution.json", VG_RECORDS)
    for rec in VG_RECORDS:
        write_image(root / folder / rec["image_path"], size=(400, 300))


def test_vg_attribution(tmp_path):
    make_vg_attr(tmp_path)
    ds = load_benchmark("vg_attr", str(tmp_path))
    assert len(ds.items) == 3 and len(ds.images) == 3  # same file, different boxes: different image rows
    for item, rec in zip(ds.items, VG_RECORDS):
        ref = ds.images[item.image]
        assert ref.path == f"VG_100K/{rec['image_path']}"
        assert ref.box == (rec["bbox_x"], rec["bbox_y"], rec["bbox_w"], rec["bbox_h"])
        assert candidates(ds, item) == [rec["true_caption"], rec["false_caption"]] and item.correct == 0
        assert item.tags == {"attributes": "_".join(rec["attributes"][:2])}
    assert open_image(ds, ds.items[0].image).size == (300, 200)
    write_manifest(ds, tmp_path / "m.json")
    again = read_manifest(tmp_path / "m.json")
    assert again.images == ds.images and again.items[1].tags == ds.items[1].tags


def test_vg_attribution_aro_order_and_images_folder(tmp_path):
    make_vg_attr(tmp_path, folder="images")
    ds = load_benchmark("vg_attr", str(tmp_path), aro_order=True)
    for item, rec in zip(ds.items, VG_RECORDS):
        assert candidates(ds, item) == [rec["false_caption"], rec["true_caption"]] and item.correct == 1
        assert image_of(ds, item) == f"images/{rec['image_path']}"


def test_vg_attribution_malformed_record_is_named(tmp_path):
    make_vg_attr(tmp_path)
    bad = [dict(VG_RECORDS[0]), {k: v for k, v in VG_RECORDS[1].items() if k != "bbox_w"}]
    write_json(tmp_path / "visual_genome_attribution.json", bad)
    with pytest.raises(BadInputError, match=r"visual_genome_attribution\.json row 1: missing field 'bbox_w'"):
        load_benchmark("vg_attr", str(tmp_path))


# ---------------------------------------------------------------- What'sUp Controlled A / B


def whatsup_caps(obj: str, ref: str, preps: list[str]) -> list[str]:
    return [f"A {obj} {p} a {ref}" for p in preps]


A_PREPS = ["on", "under", "to the left of", "to the right of"]
A_RECORDS = [  # (file name in the JSON, file name on disk, correct preposition index)
    ("beer-bottle_on_armchair.jpeg", "beer-bottle_on_armchair.jpeg", 0),  # pristine download
    ("mug_under_table.jpeg", "mug_below_table.jpeg", 1),  # renamed by the reference
    ("knife_on_onion.jpeg", "knife_above_onion.jpeg", 0),  # renamed, name contains "on"
    ("remote_left_of_sofa.jpeg", "remote_left_of_sofa.jpeg", 2),
]


def make_whatsup_a(root: Path) -> list[dict]:
    recs = []
    for json_name, disk_name, k in A_RECORDS:
        obj, ref = json_name.split("_")[0], json_name.rsplit("_", 1)[1][:-5]
        preps = A_PREPS[k:] + A_PREPS[:k]  # the correct relation first
        recs.append(
            {
                "image_path": f"data/controlled_images/{json_name}",
                "caption_options": whatsup_caps(obj.replace("-", " "), ref, preps),
            }
        )
        write_image(root / "controlled_images" / disk_name)
    write_json(root / "controlled_images_dataset.json", recs)
    return recs


def test_whatsup_a_resolves_renamed_files_without_renaming(tmp_path):
    recs = make_whatsup_a(tmp_path)
    before = sorted(os.listdir(tmp_path / "controlled_images"))
    ds = load_benchmark("whatsUp_A", str(tmp_path))
    assert sorted(os.listdir(tmp_path / "controlled_images")) == before
    assert len(ds.items) == 4
    for item, rec, (json_name, disk_name, _) in zip(ds.items, recs, A_RECORDS):
        assert image_of(ds, item) == f"controlled_images/{disk_name}"
        assert candidates(ds, item) == rec["caption_options"] and item.correct == 0 and item.subset == "A"
    assert [it.tags["preposition"] for it in ds.items] == ["on", "under", "on", "left_of"]
    assert candidates(ds, ds.items[0])[0] == "A beer bottle on a armchair"  # raw: no " on"->" above" here


def test_whatsup_missing_image_is_reported(tmp_path):
    make_whatsup_a(tmp_path)
    (tmp_path / "controlled_images" / "mug_below_table.jpeg").unlink()
    with pytest.raises(InputNotFoundError, match=r"1 of 4 images missing, e\.g\. controlled_images/mug_under_table"):
        load_benchmark("whatsUp_A", str(tmp_path))


def test_whatsup_b(tmp_path):
    preps = ["behind", "in front of", "to the left of", "to the right of"]
    names = [("cube_behind_sphere.jpeg", 0), ("cylinder_in-front_of_cube.jpeg", 1), ("sphere_right_of_cube.jpeg", 3)]
    recs = []
    for n, k in names:
        write_image(tmp_path / "controlled_clevr" / n)
        parts = n[:-5].split("_")
        recs.append(
            {
                "image_path": f"data/controlled_clevr/{n}",
                "caption_options": whatsup_caps(parts[0], parts[-1], preps[k:] + preps[:k]),
            }
        )
    write_json(tmp_path / "controlled_clevr_dataset.json", recs)
    ds = load_benchmark("whatsUp_B", str(tmp_path))
    assert [candidates(ds, it) for it in ds.items] == [r["caption_options"] for r in recs]
    assert [image_of(ds, it) for it in ds.items] == [f"controlled_clevr/{n}" for n, _ in names]
    assert [it.tags["preposition"] for it in ds.items] == ["behind", "in-front_of", "right_of"]
    assert {it.subset for it in ds.items} == {"B"}


# ---------------------------------------------------------------- COCO-spatial and VG-spatial

QA = {
    ("coco", "one"): [
        [139, "A photo of a dog on the left", "A photo of a dog on the right"],
        [285, "A photo of a bear on the top", "A photo of a bear on the bottom"],
    ],
    ("coco", "two"): [
        [632, "A photo of a cup to the left of a plate", "A photo of a cup to the right of a plate"],
        [724, "A photo of a lamp above a table", "A photo of a lamp below a table"],
        [139, "A photo of a cat below a shelf", "A photo of a cat above a shelf"],
    ],
    ("vg", "one"): [[2375429, "A photo of a car on the right", "A photo of a car on the left"]],
    ("vg", "two"): [
        [1, "A photo of a man in front of a bus", "A photo of a man behind a bus"],
        [2, "A photo of a hat on top of a head", "A photo of a hat under a head"],
    ],
}
QA_KEYS = {
    ("coco", "one"): "coco_spatial1",
    ("coco", "two"): "coco_spatial2",
    ("vg", "one"): "vg_subset1",
    ("vg", "two"): "vg_subset2",
}
QA_PREPS = {
    ("coco", "one"): ["left", "top"],
    ("coco", "two"): ["left", "above", "below"],
    ("vg", "one"): ["right"],
    ("vg", "two"): ["front", "top"],
}


@pytest.mark.parametrize("source,subset", list(QA))
def test_whatsup_qa(tmp_path, source, subset):
    recs = QA[(source, subset)]
    write_json(tmp_path / f"{source}_qa_{subset}_obj.json", recs)
    folder = "val2017" if source == "coco" else "vg_images"
    paths = [f"{folder}/{r[0]:012d}.jpg" if source == "coco" else f"{folder}/{r[0]}.jpg" for r in recs]
    for p in paths:
        write_image(tmp_path / p)
    ds = load_benchmark(QA_KEYS[(source, subset)], str(tmp_path))
    assert len(ds.items) == len(recs)
    assert [candidates(ds, it) for it in ds.items] == [r[1:] for r in recs]
    assert [image_of(ds, it) for it in ds.items] == paths
    assert all(it.correct == 0 and it.subset == subset for it in ds.items)
    assert [it.tags["preposition"] for it in ds.items] == QA_PREPS[(source, subset)]


def test_whatsup_qa_annotation_option_reads_v2_file(tmp_path):
    recs = [[7, "A photo of a cup on the left", "A photo of a cup on the right"]]
    write_json(tmp_path / "vg_qa_one_obj_v2.json", recs)
    write_image(tmp_path / "vg_images" / "7.jpg")
    ds = load_benchmark("vg_subset1", str(tmp_path), annotation="vg_qa_one_obj_v2.json")
    assert [candidates(ds, it) for it in ds.items] == [recs[0][1:]]


def test_whatsup_qa_bad_record_is_named(tmp_path):
    write_json(tmp_path / "vg_qa_two_obj.json", [[1, "a", "b"], [2, "only one caption"]])
    (tmp_path / "vg_images").mkdir()
    with pytest.raises(BadInputError, match=r"vg_qa_two_obj\.json row 1"):
        load_benchmark("vg_subset2", str(tmp_path))


# ---------------------------------------------------------------- paper table


def test_paper_columns_and_caption_rules():
    assert [c.name for c in paper.COLUMNS] == [
        "CLEVR-bind",
        "NCD",
        "VG-attr",
        "WhatsUp",
        "COCO-spatial",
        "VG-spatial",
        "NegBench-COCO",
        "NegBench-VOC",
    ]
    assert {c.name: c.chance for c in paper.COLUMNS}["CLEVR-bind"] == pytest.approx(0.2)
    assert paper.caption_prefix("clevr_bind_2obj_gen") == "An image of a "
    assert paper.caption_prefix("whatsUp_B") == paper.caption_prefix("vg_attr") == "An image of "
    assert paper.caption_prefix("vg_subset1") == paper.caption_prefix("negbench_coco") == ""
    assert paper.reference_caption("whatsUp_A", "A mug under a table", dcsm=False) == "An image of A mug below a table"
    assert paper.reference_caption("vg_subset2", "A hat on top of a head", dcsm=True) == "A hat on above of a head"
    assert paper.reference_caption("vg_subset2", "A man in front of a bus", dcsm=False) == "A man in front of a bus"
    assert paper.reference_caption("coco_spatial1", "a pizza topping", dcsm=True) == "a pizza aboveping"
    scores = paper.column_scores({"ncd_subset1": 0.9, "ncd_subset2": 0.8, "vg_attr": 0.6, "whatsUp_A": 0.5})
    assert scores == {"NCD": pytest.approx(0.85), "VG-attr": 0.6}
    assert paper.REPORTED["DCSM-coco"]["NegBench-VOC"] == 49.0
