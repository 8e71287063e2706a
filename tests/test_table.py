"""The `table` loader: CSV, TSV and JSONL of the user's own, both kinds, bad rows, then the CLI end to end.

Expected items are the rows written here, not what the loader computes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_BACKBONE
from PIL import Image

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError, ConfigError, InputNotFoundError
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.items import read_manifest

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "grey": (128, 128, 128)}

# (image, candidates, correct, subset, family): a numbered choice set; row 2 leaves caption_2 empty.
NUMBERED = [
    ("img/red.png", ["a red square", "a blue square", "a green square"], 0, "colour", "binding"),
    ("img/blue.png", ["a red square", "a blue square"], 1, "colour", "binding"),
    ("img/green.png", ["a grey square", "a red square", "a green square"], 2, "shade", "binding"),
]
# (image, pos, negs): a choice set scored like the paper's (pos is candidate 0, correct 0).
POS_NEG = [
    ("img/red.png", "a red square", ["a blue square"]),
    ("img/grey.png", "a grey square, not red", ["a red square, not grey", "a blue square", "nothing"]),
]
CAPTIONED = [("img/red.png", "a red square"), ("img/blue.png", "a blue square"), ("img/red.png", "crimson, in a box")]


@pytest.fixture
def root(tmp_path) -> Path:
    (tmp_path / "img").mkdir()
    for colour, rgb in COLOURS.items():
        Image.new("RGB", (40, 40), rgb).save(tmp_path / "img" / f"{colour}.png")
    return tmp_path


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def numbered_csv(root: Path) -> Path:
    header = ["image", "caption_0", "caption_1", "caption_2", "correct", "subset", "family"]
    return write_csv(
        root / "choice.csv",
        header,
        [[img, *caps, *[""] * (3 - len(caps)), str(k), sub, fam] for img, caps, k, sub, fam in NUMBERED],
    )


def items_of(ds) -> list[tuple]:
    return [(ds.images[it.image].path, [ds.captions[c] for c in it.candidates], it.correct) for it in ds.items]


def test_csv_with_numbered_candidates_and_correct(root):
    numbered_csv(root)
    ds = load_benchmark("table", str(root), file="choice.csv", tags=["family"])
    assert ds.name == "choice" and ds.metric == "argmax"
    assert items_of(ds) == [(img, caps, k) for img, caps, k, _, _ in NUMBERED]
    assert [it.subset for it in ds.items] == ["colour", "colour", "shade"]
    assert [dict(it.tags) for it in ds.items] == [{"family": "binding"}] * 3
    assert len(ds.captions) == 4 and len(ds.images) == 3  # each distinct caption and image once


def test_jsonl_with_pos_and_negatives(root):
    write_jsonl(
        root / "mine.jsonl",
        [
            {"image": img, "pos": pos, **{f"neg_{i}": n for i, n in enumerate(negs)}, "subset": "s"}
            for img, pos, negs in POS_NEG
        ],
    )
    ds = load_benchmark("table", str(root), file="mine.jsonl", name="my_set")
    assert ds.name == "my_set" and load_benchmark("table", str(root), file="mine.jsonl", name=2024).name == "2024"
    assert items_of(ds) == [(img, [pos, *negs], 0) for img, pos, negs in POS_NEG]


def test_csv_pos_neg_with_a_short_row(root):
    write_csv(
        root / "pn.csv",
        ["image", "pos", "neg_0", "neg_1", "neg_2"],
        [[img, pos, *negs, *[""] * (3 - len(negs))] for img, pos, negs in POS_NEG],
    )
    ds = load_benchmark("table", str(root), file="pn.csv")
    assert items_of(ds) == [(img, [pos, *negs], 0) for img, pos, negs in POS_NEG]


def test_captioned_csv_and_jsonl_give_one_candidate_each(root):
    write_csv(root / "cap.csv", ["image", "caption"], [list(r) for r in CAPTIONED])
    write_jsonl(root / "cap.jsonl", [{"image": img, "caption": cap, "extra": 1} for img, cap in CAPTIONED])
    expected = [(img, [cap], 0) for img, cap in CAPTIONED]
    for file in ("cap.csv", "cap.jsonl"):
        ds = load_benchmark("table", str(root), file=file)
        assert items_of(ds) == expected and len(ds.images) == 2


def test_tsv_with_renamed_columns_and_absolute_paths(root):
    rows = [
        [str(root / "img" / "blue.png"), "blue, like the sea", "a red square", "0"],  # commas stay in the text
        ["img/grey.png", "a red square", "grey, mostly", "1"],
    ]
    write_csv(root / "t.tsv", ["file", "option_0", "option_1", "answer"], rows, delimiter="\t")
    ds = load_benchmark("table", str(root), file="t.tsv", image="file", captions="option_", correct="answer")
    assert items_of(ds) == [(rows[0][0], rows[0][1:3], 0), ("img/grey.png", rows[1][1:3], 1)]


@pytest.mark.parametrize(
    "file, text, needle",
    [
        ("a.csv", "image,caption\nimg/red.png,ok\n,no image here\n", "a.csv:3: no value for 'image'"),
        ("b.csv", "image,caption\nimg/red.png\n", "b.csv:2: 1 fields, the header has 2"),
        (
            "c.csv",
            "image,caption_0,caption_1,correct\nimg/red.png,x,y,0\nimg/red.png,x,y,one\n",
            "c.csv:3: correct should be an integer index, got 'one'",
        ),
        ("d.csv", "image,caption_0,caption_1,correct\nimg/red.png,x,y,2\n", "d.csv:2: correct 2 is not one of"),
        (
            "e.jsonl",
            '{"image": "img/red.png", "caption": "x"}\n{"image": "img/red.png", "capt',
            "e.jsonl:2: not a complete JSON",
        ),
        ("f.csv", "picture,caption\nimg/red.png,x\n", "f.csv:1: no column 'image'"),
        ("g.csv", "image,caption_0,caption_1,caption_2,correct\nimg/red.png,x,,z,0\n", "g.csv:2: caption_1 is empty"),
        ("h.csv", "image,pos,neg_0\nimg/red.png,x,\n", "h.csv:2: a choice row needs at least two candidates"),
        ("i.csv", "image,caption\nimg/red.png,x\nimg/purple.png,y\n", "i.csv:3: image img/purple.png not found"),
        ("j.jsonl", '{"image": "img/red.png", "caption": 7}\n', "j.jsonl:1: caption should be text, got 7"),
    ],
)
def test_bad_rows_are_one_line_errors_with_file_and_line(root, file, text, needle):
    (root / file).write_text(text)
    with pytest.raises((BadInputError, InputNotFoundError)) as err:
        load_benchmark("table", str(root), file=file)
    msg = str(err.value)
    assert "\n" not in msg and needle in msg and str(root / file) in msg, msg


def test_options_are_checked(root):
    with pytest.raises(ConfigError, match="set file="):
        load_benchmark("table", str(root))
    (root / "x.txt").write_text("image,caption\n")
    with pytest.raises(ConfigError, match=r"\.csv, \.tsv or \.jsonl"):
        load_benchmark("table", str(root), file="x.txt")
    with pytest.raises(ConfigError, match="unknown option sep"):
        load_benchmark("table", str(root), file="x.csv", sep=";")
    with pytest.raises(ConfigError, match="unknown option name"):  # benchmarks of the registry keep their names
        load_benchmark("vg_attr", str(root), name="mine")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_items_extract_eval_with_cosine(root, tmp_path):
    numbered_csv(root)
    m, store, out = tmp_path / "m" / "choice.json", tmp_path / "s.zarr", tmp_path / "r.json"
    r = run("items", "table", "--root", root, "--set", "file=choice.csv", "--set", 'tags=["family"]', "--out", m)
    assert r.exit_code == 0 and "3 items" in r.output, r.output
    r = run(
        "extract",
        "--items",
        m,
        "--backbone",
        TINY_BACKBONE,
        "--out",
        store,
        "--device",
        "cpu",
        "--set",
        "batch_size=8",
        "--set",
        "progress=false",
    )
    assert r.exit_code == 0 and "store complete" in r.output, r.output
    r = run("eval", "--store", store, "--scorer", "cosine", "--out", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    assert result["dataset"] == "choice" and result["n_items"] == 3 and result["n_skipped"] == 0
    assert result["chance"] == pytest.approx(np.mean([1 / len(caps) for _, caps, _, _, _ in NUMBERED]))
    assert set(result["subsets"]) == {"colour", "shade", "family=binding"}
    # The accuracy, recomputed from the store's pooled embeddings and the rows written above.
    import zarr

    g, ds = zarr.open_group(store, mode="r"), read_manifest(m)
    img, txt = g["image/pooled"][:].astype(np.float32), g["text/pooled"][:].astype(np.float32)
    row = {c: i for i, c in enumerate(ds.captions)}
    hits = []
    for image, caps, k, _, _ in NUMBERED:
        v = img[[r.path for r in ds.images].index(image)]
        t = txt[[row[c] for c in caps]]
        cos = t @ v / np.linalg.norm(t, axis=1) / np.linalg.norm(v)
        hits.append(int(np.argmax(cos)) == k)
    assert result["accuracy"] == pytest.approx(np.mean(hits))


def test_correct_written_by_pandas_as_floats(root, tmp_path):
    """pandas writes an integer column holding a gap as floats (0.0, 1.0): whole numbers are indices, 0.5 is not."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "image": [img for img, *_ in NUMBERED],
            **{f"caption_{k}": [caps[k] if k < len(caps) else None for _, caps, *_ in NUMBERED] for k in range(3)},
            "correct": [float(k) for _, _, k, *_ in NUMBERED],
        }
    )
    frame.to_csv(root / "pd.csv", index=False)
    assert "img/blue.png,a red square,a blue square,,1.0" in (root / "pd.csv").read_text()
    frame.to_json(root / "pd.jsonl", orient="records", lines=True)
    for file in ("pd.csv", "pd.jsonl"):
        ds = load_benchmark("table", str(root), file=file)
        assert items_of(ds) == [(img, caps, k) for img, caps, k, *_ in NUMBERED], file
    frame.loc[1, "correct"] = 0.5
    frame.to_csv(root / "half.csv", index=False)
    r = run("items", "table", "--root", root, "--set", "file=half.csv", "--out", tmp_path / "m.json")
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "half.csv:3: correct should be an integer index, got 0.5 (not a whole number)" in lines[0]
    assert not (tmp_path / "m.json").exists()


def test_cli_bad_row_is_one_line_and_exit_2(root, tmp_path):
    (root / "bad.csv").write_text("image,caption_0,caption_1,correct\nimg/red.png,x,y,first\n")
    r = run("items", "table", "--root", root, "--set", "file=bad.csv", "--out", tmp_path / "m.json")
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "bad.csv:2: correct should be an integer" in lines[0], r.output
    assert not (tmp_path / "m.json").exists()
