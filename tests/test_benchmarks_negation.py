"""NegBench, CC-Neg and SugarCREPE loaders on tiny folders in their native layouts."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest
import torch

from dcsm_cache.errors import BadInputError, InputNotFoundError
from dcsm_cache.pipeline.benchmarks import load_benchmark

from test_benchmarks import candidates, image_of, write_image, write_json

# ---------------------------------------------------------------- NegBench

NEG_HEADER = [
    "correct_answer",
    "caption_0",
    "caption_1",
    "caption_2",
    "caption_3",
    "correct_answer_template",
    "image_path",
]
NEG_ROWS = [  # (captions, template, image file); the third image is never written
    (
        [
            "This image features a dog and a frisbee",
            "This image features a cat, but not a frisbee",
            "This image features a cat",
            "This image does not feature a dog",
        ],
        "positive",
        "000000000139.jpg",
    ),
    (
        [
            "This image does not feature a cat",
            "This image features a cat, but not a dog",
            "This image features a cat",
            "This image does not feature a dog",
        ],
        "negative",
        "000000000285.jpg",
    ),
    (
        [
            "This image features a car, but not a bus",
            "This image features a bus, but not a car",
            "This image features a bus",
            "This image does not feature a car",
        ],
        "hybrid",
        "000000000632.jpg",
    ),
    (["Ein Café mit Stühlen – keine Tische", "x", "y", "z"], "hybrid", "000000000724.jpg"),
]
MISSING = "000000000632.jpg"


def make_negbench(root: Path, csv_dir: Path, csv_name: str, image_dir: str, writer_path: str) -> None:
    csv_dir.mkdir(parents=True, exist_ok=True)
    with open(csv_dir / csv_name, "w", newline="", encoding="utf-8-sig") as f:  # NegBench writes a BOM
        w = csv.writer(f)
        w.writerow(NEG_HEADER)
        for caps, template, image in NEG_ROWS:
            w.writerow([0, *caps, template, f"{writer_path}/{image}"])
    for _, _, image in NEG_ROWS:
        if image != MISSING:
            write_image(root / image_dir / image)


def test_negbench_coco_literal_backslash_folder_drops_missing_rows(tmp_path, caplog):
    csv_dir = tmp_path / "NegBench\\evaluation data\\images"  # one directory name on Linux
    make_negbench(tmp_path, csv_dir, "COCO_val_mcq_llama3.1_rephrased.csv", "val2017", "/data/coco/val2017")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("NegBench")] == [
        "NegBench\\evaluation data\\images"
    ]
    with caplog.at_level(logging.WARNING):
        ds = load_benchmark("negbench_coco", str(tmp_path))
    kept = [r for r in NEG_ROWS if r[2] != MISSING]
    assert len(ds.items) == 3
    assert [candidates(ds, it) for it in ds.items] == [r[0] for r in kept]
    assert [image_of(ds, it) for it in ds.items] == [f"val2017/{r[2]}" for r in kept]
    assert [it.tags["template"] for it in ds.items] == ["positive", "negative", "hybrid"]
    assert all(it.correct == 0 and it.subset == "" for it in ds.items)
    assert all(it.tags["missing_images_dropped"] == "1/4" for it in ds.items)
    assert "dropped 1 of 4 rows" in caplog.text
    assert ds.captions[ds.items[2].candidates[0]] == "Ein Café mit Stühlen – keine Tische"  # BOM gone, utf-8 kept
    with open(csv_dir / "COCO_val_mcq_llama3.1_rephrased.csv", encoding="utf-8-sig") as f:
        assert next(csv.reader(f))[0] == "correct_answer"


def test_negbench_voc_normalised_folder(tmp_path):
    write_image(tmp_path / "VOC2007" / "JPEGImages" / MISSING)  # here every image exists
    make_negbench(
        tmp_path,
        tmp_path / "NegBench" / "evaluation data" / "images",
        "VOC2007_mcq_llama3.1_rephrased.csv",
        "VOC2007/JPEGImages",
        "C:\\voc\\JPEGImages",
    )
    ds = load_benchmark("negbench_voc", str(tmp_path))
    assert len(ds.items) == 4 and all("missing_images_dropped" not in it.tags for it in ds.items)
    assert [image_of(ds, it) for it in ds.items] == [f"VOC2007/JPEGImages/{r[2]}" for r in NEG_ROWS]


def test_negbench_missing_column_is_named(tmp_path):
    csv_dir = tmp_path / "NegBench\\evaluation data\\images"
    csv_dir.mkdir()
    (tmp_path / "val2017").mkdir()
    (csv_dir / "COCO_val_mcq_llama3.1_rephrased.csv").write_text("caption_0,caption_1\na,b\n")
    with pytest.raises(BadInputError, match=r"COCO_val_mcq_llama3\.1_rephrased\.csv lacks column"):
        load_benchmark("negbench_coco", str(tmp_path))


# ---------------------------------------------------------------- CC-Neg


def ccneg_entries(n: int):
    paths = [f"/workspace/datasets/cc3m/cc3m_subset_images_extracted_final/{1000 + i}.jpg" for i in range(n)]
    anns = [
        {
            "json": {"caption": f"a dog number {i} on the grass", "key": str(1000 + i)},
            "sop_data": {"negative-prompt": f"a dog number {i}, but no grass, in sight", "sop_chosen_object": "grass"},
        }
        for i in range(n)
    ]
    return paths, anns


def make_ccneg(root: Path, n: int = 5) -> tuple[list, list]:
    paths, anns = ccneg_entries(n)
    (root / "ccneg_dataset").mkdir(parents=True)
    torch.save({"image_paths": paths, "annotations": anns}, root / "ccneg_dataset" / "ccneg_preprocessed.pt")
    for p in paths:
        write_image(root / "ccneg_dataset" / "ccneg_images" / p[len("/workspace/datasets/cc3m/") :])
    return paths, anns


def test_ccneg_last_n_eval_entries(tmp_path):
    paths, anns = make_ccneg(tmp_path)
    ds = load_benchmark("ccneg", str(tmp_path), n_eval=3)
    assert len(ds.items) == 3
    for item, path, ann in zip(ds.items, paths[-3:], anns[-3:]):
        assert candidates(ds, item) == [ann["json"]["caption"], ann["sop_data"]["negative-prompt"].replace(",", "")]
        assert image_of(ds, item) == (
            "ccneg_dataset/ccneg_images/cc3m_subset_images_extracted_final/" + path.rsplit("/", 1)[1]
        )
        assert item.correct == 0 and item.subset == "eval" and ds.image_path(item.image).is_file()
    assert "," not in candidates(ds, ds.items[0])[1]
    assert len(load_benchmark("ccneg", str(tmp_path)).items) == 5  # default 40,000 > 5: all of them


def test_ccneg_images_elsewhere_is_one_line(tmp_path):
    make_ccneg(tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "ccneg_dataset" / "ccneg_images")
    with pytest.raises(
        InputNotFoundError, match=r"^ccneg: expected image cc3m_subset_images_extracted_final/1000\.jpg"
    ):
        load_benchmark("ccneg", str(tmp_path))


def test_ccneg_malformed_annotation_is_named(tmp_path):
    paths, anns = ccneg_entries(3)
    del anns[2]["sop_data"]
    torch.save({"image_paths": paths, "annotations": anns}, tmp_path / "ccneg_preprocessed.pt")
    for p in paths:
        write_image(tmp_path / p[len("/workspace/datasets/cc3m/") :])
    with pytest.raises(BadInputError, match=r"annotations\[2\] lacks"):
        load_benchmark("ccneg", str(tmp_path))


# ---------------------------------------------------------------- SugarCREPE

SUGAR = {
    "add_att": [
        (
            "000000085329.jpg",
            "A drawing of a young woman with many facial piercings.",
            "A drawing of a tattooed young woman with many facial piercings.",
        )
    ],
    "add_obj": [
        ("000000000139.jpg", "A room with a tv.", "A room with a tv and a piano."),
        ("000000000285.jpg", "A bear sitting.", "A bear sitting next to a fish."),
    ],
    "replace_att": [("000000000139.jpg", "A small room.", "A large room.")],
    "replace_obj": [("000000000632.jpg", "A bed in a room.", "A sofa in a room.")],
    "replace_rel": [("000000000724.jpg", "A stop sign on a pole.", "A stop sign under a pole.")],
    "swap_att": [("000000000285.jpg", "A brown bear on green grass.", "A green bear on brown grass.")],
    "swap_obj": [
        ("000000000632.jpg", "A cat on a bed.", "A bed on a cat."),
        ("000000085329.jpg", "A woman holding a cup.", "A cup holding a woman."),
    ],
}


def make_sugarcrepe(root: Path) -> None:
    for subset, recs in SUGAR.items():
        write_json(
            root / "data" / f"{subset}.json",
            {str(i): {"filename": f, "caption": c, "negative_caption": n} for i, (f, c, n) in enumerate(recs)},
        )
        for f, _, _ in recs:
            write_image(root / "val2017" / f)


def test_sugarcrepe_all_subsets_strict(tmp_path):
    make_sugarcrepe(tmp_path)
    ds = load_benchmark("sugarcrepe", str(tmp_path))
    want = [(s, r) for s, recs in SUGAR.items() for r in recs]
    assert ds.metric == "strict" and len(ds.items) == len(want) == 9
    assert ds.subsets == sorted(SUGAR)
    for item, (subset, (f, c, n)) in zip(ds.items, want):
        assert item.subset == subset and candidates(ds, item) == [c, n] and item.correct == 0
        assert image_of(ds, item) == f"val2017/{f}"
    assert len(ds.images) == len({f for recs in SUGAR.values() for f, _, _ in recs})


def test_sugarcrepe_subsets_option_and_missing_file(tmp_path):
    make_sugarcrepe(tmp_path)
    ds = load_benchmark("sugarcrepe", str(tmp_path), subsets="swap_obj,add_att")
    assert [it.subset for it in ds.items] == ["add_att", "swap_obj", "swap_obj"]
    (tmp_path / "data" / "replace_rel.json").unlink()
    with pytest.raises(InputNotFoundError, match=r"^sugarcrepe: expected replace_rel\.json in .*data "):
        load_benchmark("sugarcrepe", str(tmp_path))
