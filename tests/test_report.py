"""The report (`tasks/report.py`, `results_table.py`, `report_html.py`, `figures/plots.py`) from a tiny run.

Results come from the tiny store scored by the cosine and a two-step scorer; every number the table,
CSV and JSON show is checked against those result files, the figures are opened as images, and a
result missing a key the schema declares is one error line naming the file and the key.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError
from dcsm_cache.pipeline.figures.plots import COLUMN_WIDTH_IN, DPI
from dcsm_cache.pipeline.tasks.choice import EvalConfig, evaluate
from dcsm_cache.pipeline.tasks.report import report
from dcsm_cache.pipeline.tasks.results import write_result
from dcsm_cache.pipeline.tasks.results_table import aro_macro, choice_table
from dcsm_cache.pipeline.tasks.schema import REQUIRED, ResultSchemaError, read_result, row_name


@pytest.fixture(scope="module")
def results(stores, tiny_scorer, tmp_path_factory):
    """{scorer: result file} for the tiny spatial store, named by a workflow key as the rules name them."""
    folder = tmp_path_factory.mktemp("results")
    paths = {}
    for scorer in ("cosine", "maxsim", "dcsm"):
        r = evaluate(stores["shapes_spatial"], scorer, EvalConfig(checkpoint=str(tiny_scorer), device="cpu"))
        paths[scorer] = write_result({**r, "backbone_name": "tiny-key"}, folder / f"{scorer}.json")
    return paths


@pytest.fixture(scope="module")
def made(results, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "summary.md"
    md = report(list(results.values()), out)
    return out, md


def _md_row(md: str, scorer: str) -> list[str]:
    line = next(x for x in md.splitlines() if x.startswith(f"| tiny-key | {scorer} |"))
    return [c.strip() for c in line.strip("|").split("|")][2:]


def test_table_numbers_are_the_result_files(results, made):
    out, md = made
    docs = {s: json.loads(p.read_text()) for s, p in results.items()}
    assert "### Spatial relations" in md and "| chance |" in md
    header = next(x for x in md.splitlines() if x.startswith("| backbone | scorer |"))
    cols = [c.strip() for c in header.strip("|").split("|")][2:]
    assert cols == ["shapes_spatial/test", "shapes_spatial/heldout"]  # test before heldout, not flat names
    best = {c: max(d["subsets"][c.split("/")[1]]["accuracy"] for d in docs.values()) for c in cols}
    for scorer, doc in docs.items():
        cells = _md_row(md, scorer)
        for col, cell in zip(cols, cells):
            acc = doc["subsets"][col.split("/")[1]]["accuracy"]
            assert cell.strip("*") == f"{100 * acc:.1f}"
            assert cell.startswith("**") == (acc == best[col])  # the best per column, and only it, in bold
    rows = list(csv.DictReader((out.with_suffix(".csv")).open()))
    assert len(rows) == 3 * 2
    for row in rows:
        doc = docs[row["scorer"]]
        sub = doc["subsets"][row["column"].split("/")[1]]
        assert row["backbone"] == "tiny-key" and row["family"] == "spatial relations"
        assert float(row["accuracy"]) == pytest.approx(sub["accuracy"], abs=5e-5)
        assert int(row["n_items"]) == sub["n_items"] and float(row["chance"]) == pytest.approx(sub["chance"], abs=5e-5)
        se = math.sqrt(sub["accuracy"] * (1 - sub["accuracy"]) / sub["n_items"])
        assert float(row["stderr"]) == pytest.approx(se, abs=5e-5)
        assert row["result"] == str(results[row["scorer"]])
        assert row["store_fingerprint"] == doc["store_fingerprint"] and row["config_hash"] == doc["config_hash"]
    summary = json.loads(out.with_suffix(".json").read_text())
    cells = {(r["scorer"], c): v for r in summary["choice"]["rows"] for c, v in r["cells"].items()}
    assert cells[("dcsm", "shapes_spatial/test")]["accuracy"] == docs["dcsm"]["subsets"]["test"]["accuracy"]
    assert [c["family"] for c in summary["choice"]["columns"]] == ["spatial relations"] * 2


def test_figures_are_column_sized_pngs_in_colour(made):
    out, _ = made
    for name in ("accuracy.png", "gain.png"):
        with Image.open(out.parent / name) as im:
            assert im.format == "PNG" and im.width == round(COLUMN_WIDTH_IN * DPI) and im.height > 150
            px = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
        colours = {tuple(c) for c in np.unique(px, axis=0)}
        assert len(colours) > 1
        # the DCSM's colour (tab10 green) in both figures: its bars were drawn
        assert any(abs(r - 44) < 3 and abs(g - 160) < 3 and abs(b - 44) < 3 for r, g, b in colours), name
    page = out.with_suffix(".html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<th colspan=2>spatial relations</th>" in page
    assert "## Linear probes" not in made[1]  # no probe results: no table, and shots.png says so


def test_a_result_missing_a_declared_key_is_one_error_line(results, tmp_path):
    doc = json.loads(results["cosine"].read_text())
    for key in REQUIRED["choice"]:
        broken = tmp_path / f"no_{key}.json"
        broken.write_text(json.dumps({k: v for k, v in doc.items() if k != key}))
        with pytest.raises(ResultSchemaError, match=f"{broken}.*'{key}'"):
            read_result(broken)
    res = CliRunner().invoke(main, ["report", str(tmp_path / "no_accuracy.json"), "--out", str(tmp_path / "s.md")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "no_accuracy.json" in lines[0] and "'accuracy'" in lines[0]
    sub = {**doc, "subsets": {"test": {"accuracy": 0.5, "chance": 0.5}}}
    (tmp_path / "sub.json").write_text(json.dumps(sub))
    with pytest.raises(ResultSchemaError, match="subsets.test.n_items"):
        read_result(tmp_path / "sub.json")


def test_a_report_never_overwrites_its_inputs(results, tmp_path):
    target = results["cosine"].with_suffix(".md")  # its .json beside it would be the summary
    with pytest.raises(BadInputError, match="would overwrite its input"):
        report([results["cosine"]], target)
    assert json.loads(results["cosine"].read_text())["scorer"] == "cosine"


def test_keys_not_declared_are_allowed_and_rows_are_named_by_key(results, tmp_path):
    doc = json.loads(results["dcsm"].read_text())
    extra = {**doc, "provenance": {"seed": 0, "torch": "2.x"}, "n_skipped_images": 0}
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    assert read_result(tmp_path / "extra.json")["provenance"]["seed"] == 0
    assert row_name(doc) == "tiny-key"
    bare = {k: v for k, v in doc.items() if k != "backbone_name"} | {"backbone": "shapes-clip@models/shapes-clip.pt"}
    assert row_name(bare) == "shapes-clip"  # never a file path


def test_the_table_counts_skipped_items(results, tmp_path):
    doc = json.loads(results["cosine"].read_text())
    assert doc["n_skipped"] == 0
    (tmp_path / "a.json").write_text(json.dumps({**doc, "n_skipped": 3}))
    md = report([tmp_path / "a.json"], tmp_path / "out" / "summary.md", figures=False)
    assert f"could not be read (`dcsm-cache parts STORE` lists them): {doc['dataset']} 3." in md
    assert "skipped" not in report([results["cosine"]], tmp_path / "out2" / "summary.md", figures=False)


def test_vg_attribution_shows_aros_macro_beside_the_micro_accuracy():
    pairs = {"attributes=a_b": (30, 0.9), "attributes=c_d": (25, 0.5), "attributes=e_f": (24, 0.0)}
    result = {
        "dataset": "vg_attr+paper",
        "backbone": "x",
        "scorer": "cosine",
        "accuracy": 0.6,
        "chance": 0.5,
        "n_items": 79,
        "subsets": {k: {"accuracy": a, "chance": 0.5, "n_items": n} for k, (n, a) in pairs.items()},
        "store_fingerprint": "f",
        "config_hash": "h",
        "code": "c",
    }
    macro = aro_macro(result)
    assert macro["accuracy"] == pytest.approx((0.9 + 0.5) / 2) and macro["n_items"] == 55  # pairs of < 25 left out
    table = choice_table([result])
    assert [c.id for c in table.columns] == ["vg_attr+paper/micro", "vg_attr+paper/ARO macro"]
    assert table.cells[("x", "cosine")]["vg_attr+paper/micro"]["accuracy"] == 0.6


def probe_result(shots, accuracy, stderr, test_acc, heldout_acc) -> dict:
    """A linear-probe result as `dcsm-cache linear-probe` writes it (the keys the report reads)."""
    return {
        "dataset": "objects_test",
        "train_dataset": "objects_train",
        "backbone": "tiny@models/tiny.pt",
        "backbone_name": "tiny-key",
        "scorer": "linear-probe",
        "task": "linear_probe",
        "features": "pooled",
        "metric": "top1",
        "shots": shots,
        "accuracy": accuracy,
        "stderr": stderr,
        "mean_per_class": accuracy - 0.01,
        "mean_per_class_stderr": stderr + 0.001,
        "chance": 1 / 6,
        "n_items": 300,
        "n_classes": 6,
        "C": 0.5 if shots is None else 1e-6,
        "n_train": 6 * (shots or 100),
        "subsets": {
            "test": {"accuracy": test_acc, "chance": 1 / 6, "n_items": 240},
            "heldout": {"accuracy": heldout_acc, "chance": 1 / 6, "n_items": 60},
        },
        "store_fingerprint": "test-fp",
        "train_store_fingerprint": "train-fp",
        "config_hash": f"h{shots}",
        "code": "c",
    }


def test_linear_probes_get_a_table_beside_their_zero_shot_and_a_shots_figure(tmp_path):
    probes = {None: (0.9, 0.02, 0.92, 0.82), 1: (0.41, 0.05, 0.42, 0.37), 4: (0.655, 0.03, 0.66, 0.63)}
    paths = []
    for shots, numbers in probes.items():
        paths.append(tmp_path / f"linear_probe-{shots or 'full'}.json")
        paths[-1].write_text(json.dumps(probe_result(shots, *numbers)))
    zeroshot = {
        **{k: v for k, v in probe_result(None, 0.5, 0, 0, 0).items() if k not in ("train_dataset", "shots")},
        "task": "zeroshot",
        "scorer": "cosine",
        "accuracy": 0.55,
        "top1": 0.55,
    }
    (tmp_path / "zeroshot.json").write_text(json.dumps(zeroshot))
    for path in paths:
        read_result(path)  # the schema's linear_probe keys
    md = report([*paths, tmp_path / "zeroshot.json"], tmp_path / "out" / "summary.md")
    section = md.split("## Linear probes", 1)[1]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if "| tiny-key |" in line]
    head = next(line for line in section.splitlines() if line.startswith("| test set |"))
    assert [c.strip() for c in head.strip("|").split("|")][5:9] == [
        "top-1",
        "mean per class",
        "top-1 test",
        "top-1 heldout",
    ]
    rule = next(line for line in section.splitlines() if line.startswith("|---"))
    assert rule.count("|") == head.count("|") and all(len(r) == head.count("|") - 1 for r in rows)
    assert [r[4] for r in rows] == ["1-shot", "4-shot", "all"]  # by shots, the whole train split last
    for row, shots in zip(rows, (1, 4, None)):
        acc, se, test_acc, held = probes[shots]
        assert row[:4] == ["objects_test", "objects_train", "tiny-key", "pooled"]
        assert row[5] == f"{100 * acc:.1f} ± {100 * se:.1f}" and row[7:9] == [
            f"{100 * test_acc:.1f}",
            f"{100 * held:.1f}",
        ]
        assert row[-1] == "55.0"  # the same backbone's zero-shot top-1 on the same test set
    csv_rows = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    probe_rows = {r["column"]: r for r in csv_rows if r["task"] == "linear_probe"}
    assert len(probe_rows) == 3 * 4
    full = probe_rows["objects_test/all/top1"]
    assert float(full["accuracy"]) == 0.9 and float(full["stderr"]) == 0.02 and full["config_hash"] == "hNone"
    assert float(probe_rows["objects_test/4-shot/mean_per_class"]["stderr"]) == pytest.approx(0.031)
    with Image.open(tmp_path / "out" / "shots.png") as im:
        assert im.width == round(COLUMN_WIDTH_IN * DPI)
        px = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    blue = (np.abs(px - (31, 119, 180)) < 3).all(axis=1).sum()  # the series' colour (tab10's first): line and points
    assert blue > 200
    assert "shots.png" in json.loads((tmp_path / "out" / "summary.json").read_text())["figures"]
