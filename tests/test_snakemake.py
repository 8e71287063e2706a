"""The real `snakemake` binary runs the real Snakefile on a tiny config, through every stage.

Then editing one benchmark's evaluation settings plans only that benchmark's evaluations and the
report (`snakemake -n`), and a second run with nothing changed plans nothing.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = shutil.which("snakemake")

TINY = {
    "world": {"root": "data/world", "settings": {"seed": 0, "n_pretrain": 64, "n_train": 48, "n_val": 12,
                                                 "n_test": 12, "n_heldout": 6}},
    "pretrain": {"shapes-clip": {"arch": "shapes-clip-tiny", "dataset": "shapes_pretrain",
                                 "settings": {"steps": 2, "batch_size": 16, "progress": False}}},
    "backbones": {"shapes-clip": {"model": "shapes-clip-tiny@models/shapes-clip.pt"}},
    "extract": {"device": "cpu", "settings": {"batch_size": 16, "progress": False}},
    "train": {"dataset": "shapes_train", "device": "cpu",
              "settings": {"steps": 3, "batch_size": 8, "eval_every": 3, "text_len": 16, "progress": False}},
}


def full_config(overrides: dict) -> dict:
    """config/config.yaml with `overrides` merged in (a --configfile is a whole configuration)."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for key, value in overrides.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "tiny.yaml"), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> count from the 'Job stats' table of a dry run."""
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m[1] != "total"}


@pytest.mark.slow
@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH")
def test_workflow_end_to_end_then_only_the_edited_benchmark_reruns(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(full_config(TINY)))
    snakemake(tmp_path)
    summary = (tmp_path / "results" / "summary.md").read_text()
    for bench in ("shapes_binding", "shapes_spatial", "shapes_negation"):
        assert f"{bench}/heldout" in summary
    for path in ["models/shapes-clip.pt", "models/shapes-clip/dcsm.pt", "stores/shapes-clip/shapes_train.zarr",
                 "results/shapes-clip/shapes_spatial/dcsm.json", "logs/extract/shapes-clip/shapes_spatial.log"]:
        assert (tmp_path / path).exists(), path
    result = json.loads((tmp_path / "results/shapes-clip/shapes_spatial/dcsm.json").read_text())
    assert result["backbone"] == "shapes-clip-tiny@models/shapes-clip.pt" and result["n_items"] == 18

    assert planned_jobs(snakemake(tmp_path, "-n")) == {}  # nothing changed, nothing to do

    edited = {**TINY, "evaluate": {"backbones": ["shapes-clip"], "benchmarks": {
        "shapes_binding": {"scorers": ["cosine", "dcsm"], "settings": {}},
        "shapes_spatial": {"scorers": ["cosine", "dcsm"], "settings": {"batch_size": 7}},
        "shapes_negation": {"scorers": ["cosine", "dcsm"], "settings": {}}}}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(full_config(edited)))
    dry = snakemake(tmp_path, "-n")
    assert planned_jobs(dry) == {"all": 1, "evaluate": 2, "report": 1}, dry
    outputs = set(re.findall(r"output: (results/\S+\.json)", dry))
    assert outputs == {"results/shapes-clip/shapes_spatial/cosine.json", "results/shapes-clip/shapes_spatial/dcsm.json"}
    assert re.search(r"[Pp]arams have changed", dry)


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH")
def test_config_is_validated(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(full_config({"extract": {"devise": "cpu"}})))
    proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                           str(tmp_path / "tiny.yaml"), "-n"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "devise" in proc.stdout + proc.stderr


@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH")
def test_paper_config_names_every_benchmark_and_plans(tmp_path):
    from dcsm_cache.pipeline import paper
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    keys = {k.split("+")[0] for k in cfg["evaluate"]["benchmarks"]}
    assert {k for c in paper.COLUMNS for k in c.keys} | {"ccneg", "sugarcrepe"} <= keys
    (tmp_path / "weights" / "dcsm").mkdir(parents=True)
    (tmp_path / "weights" / "dcsm" / "dcsm_obja_ckpt.pt").touch()
    proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                           str(REPO / "config" / "paper.yaml"), "-n"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = planned_jobs(proc.stdout + proc.stderr)
    n_backbones = len(cfg["backbones"])
    assert jobs["train"] == n_backbones and jobs["evaluate"] == n_backbones * 2 * 16 + 14  # + dcsm-paper on ViT-B/16


@pytest.mark.slow
@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH")
def test_a_table_of_ones_own_runs_through_items_extract_eval(tmp_path):
    from PIL import Image
    data = tmp_path / "data" / "mine"
    data.mkdir(parents=True)
    rows = [("red.png", (220, 20, 20), "a red square", "a blue square", 0),
            ("blue.png", (20, 20, 220), "a red square", "a blue square", 1)]
    for file, rgb, *_ in rows:
        Image.new("RGB", (32, 32), rgb).save(data / file)
    (data / "data.csv").write_text("image,caption_0,caption_1,correct\n"
                                   + "".join(f"{f},{a},{b},{k}\n" for f, _, a, b, k in rows))
    cfg = full_config({**TINY, "backbones": {"tiny": {"model": "shapes-clip-tiny"}},
                       "datasets": {"my_set": {"benchmark": "table", "root": "data/mine",
                                               "options": {"file": "data.csv"}}},
                       "evaluate": {"backbones": ["tiny"], "benchmarks": {"my_set": {"scorers": ["cosine"]}}}})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "results/tiny/my_set/cosine.json")
    assert "rule world" not in out and "rule pretrain" not in out  # nothing of the shapes world is needed
    result = json.loads((tmp_path / "results/tiny/my_set/cosine.json").read_text())
    assert result["dataset"] == "data" and result["n_items"] == 2 and result["chance"] == 0.5
    assert json.loads((tmp_path / "manifests/my_set.json").read_text())["root"] == "data/mine"
    assert planned_jobs(snakemake(tmp_path, "results/tiny/my_set/cosine.json", "-n")) == {}
    (data / "data.csv").write_text((data / "data.csv").read_text() + "red.png,a green square,a red square,1\n")
    dry = snakemake(tmp_path, "results/tiny/my_set/cosine.json", "-n")
    assert planned_jobs(dry) == {"items": 1, "extract": 1, "evaluate": 1}, dry  # an edited table is read again
