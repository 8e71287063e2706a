"""Training recipes (dcsm_cache/workflow/recipes.py): configs checked on construction, and a tiny config through the
real `snakemake` where one recipe's training folders are present (it trains from its stores together and is
evaluated under its own name) and the other's are absent (listed as missing; strict mode stops with it listed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_dcsm_train import write_training_sets
from test_snakemake import SNAKEMAKE, missing_lines, planned_jobs, snakemake

from dcsm_cache.errors import ConfigError
from dcsm_cache.workflow import Recipe, plan, recipes

REPO = Path(__file__).resolve().parent.parent
NEEDS_SNAKEMAKE = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH")
TINY = {"steps": 3, "batch_size": 8, "eval_every": 3, "text_len": 16, "progress": False}


def config(world: str = "data/world") -> dict:
    """dcsm-synth on the spatial and colour sets (data/objaverse), dcsm-coco on the negation pairs (data/coco)."""
    return {
        "name": "recipes",
        "world": {"root": "data/world"},
        "backbones": {"tiny": {"model": "shapes-clip-tiny"}},
        "datasets": {
            "shapes_spatial": {"root": str(world)},
            "dcsm_train_spatial": {"root": "data/objaverse"},
            "dcsm_train_colour": {"root": "data/objaverse"},
            "dcsm_train_negation": {"root": "data/coco"},
        },
        "extract": {"device": "cpu", "settings": {"batch_size": 16, "progress": False}},
        "train": {
            "device": "cpu",
            "recipes": {
                "dcsm-synth": {
                    "datasets": ["dcsm_train_spatial", "dcsm_train_colour"],
                    "settings": {**TINY, "loss": "reference", "lr": 0.001},
                },
                "dcsm-coco": {"datasets": ["dcsm_train_negation"], "backbones": ["tiny"], "settings": TINY},
            },
        },
        "evaluate": {
            "backbones": ["tiny"],
            "benchmarks": {"shapes_spatial": {"scorers": ["cosine", "dcsm-synth", "dcsm-coco"], "settings": {}}},
        },
    }


def test_the_default_recipe_is_train_dataset_and_named_recipes_come_beside_it():
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert recipes(default) == {
        "dcsm": Recipe("dcsm", ("shapes_train",), None, default["train"]["settings"]),
    }
    r = recipes(config())
    assert list(r) == ["dcsm-synth", "dcsm-coco"]  # no train: dataset:, so no default recipe
    assert r["dcsm-synth"].datasets == ("dcsm_train_spatial", "dcsm_train_colour")
    assert r["dcsm-synth"].checkpoint("tiny") == "models/tiny/dcsm-synth.pt"
    assert r["dcsm-synth"].trains("any") and r["dcsm-coco"].trains("tiny") and not r["dcsm-coco"].trains("other")


def test_paper_config_trains_synth_and_coco_on_vit_b_16_beside_the_reference_checkpoint():
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    r = recipes(paper)
    assert set(r) == {"dcsm", "dcsm-synth", "dcsm-coco"}
    assert set(r["dcsm-synth"].datasets) == {"dcsm_train_spatial", "dcsm_train_colour", "dcsm_train_negation"}
    assert r["dcsm-coco"].datasets == ("dcsm_train_negation",)
    for name in ("dcsm-synth", "dcsm-coco"):
        assert r[name].backbones == ("vit-b-16-openai",) and r[name].settings["loss"] == "reference"
    for bench, cfg in paper["evaluate"]["benchmarks"].items():  # scored wherever the reference's checkpoint is
        assert ("dcsm-paper" in cfg["scorers"]) == ("dcsm-synth" in cfg["scorers"]) == ("dcsm-coco" in cfg["scorers"])


def test_a_recipe_is_planned_where_all_its_training_folders_are(tmp_path):
    cfg = config()  # shapes_spatial reads the world, which the workflow builds: always there
    before = plan(cfg, tmp_path)
    assert before.targets == ("results/recipes/tiny/shapes_spatial/cosine.json",) and before.requested == 3
    assert {(m.path, m.name) for m in before.missing} == {
        ("data/objaverse/objaverse_train_composite_newrelations_withbg", "dcsm_train_spatial"),
        ("data/objaverse/objaverse_attributes_overlay_withbg", "dcsm_train_colour"),
        ("data/coco/negated_pairs_cocotrain_v1.json", "dcsm_train_negation"),
    }
    write_training_sets(tmp_path / "data" / "objaverse", ("spatial",))  # one of dcsm-synth's two: not yet
    assert plan(cfg, tmp_path).targets == before.targets
    write_training_sets(tmp_path / "data" / "objaverse", ("colour",))
    after = plan(cfg, tmp_path)
    assert after.targets == (*before.targets, "results/recipes/tiny/shapes_spatial/dcsm-synth.json")
    assert [m.name for m in after.missing] == ["dcsm_train_negation"]
    cfg["train"]["recipes"]["dcsm-coco"]["backbones"] = ["other"]  # trained for another backbone only: not asked
    cfg["backbones"]["other"] = {"model": "shapes-clip-tiny"}
    assert plan(cfg, tmp_path).requested == 2


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["train"]["recipes"]["dcsm-coco"].update(datasets=["coco_train"]),
            "train: recipes: dcsm-coco: dataset 'coco_train' is not under datasets: add it there (known: ",
        ),
        (
            lambda c: c["train"]["recipes"]["dcsm-coco"].update(backbones=["vit-b-16"]),
            "train: recipes: dcsm-coco: backbone 'vit-b-16' is not under backbones: add it there (known: tiny)",
        ),
        (
            lambda c: c["train"]["recipes"]["dcsm-coco"].update(datasets=[]),
            "train: recipes: dcsm-coco: datasets: name at least one dataset to train on",
        ),
        (
            lambda c: c["train"]["recipes"].update(cosine={"datasets": ["dcsm_train_spatial"]}),
            "train: recipes: cosine: 'cosine' is a scorer's name",
        ),
        (
            lambda c: c["train"]["recipes"].update(zeroshot={"datasets": ["dcsm_train_spatial"]}),
            "train: recipes: zeroshot: 'zeroshot' is a task's name",
        ),
        (
            lambda c: c["evaluate"]["benchmarks"]["shapes_spatial"].update(scorers=["dcsm-sinth"]),
            "evaluate: shapes_spatial: scorer 'dcsm-sinth' is neither a scorer (cosine, ",
        ),
        (
            lambda c: c["evaluate"]["benchmarks"]["shapes_spatial"].update(scorers=["dcsm"]),
            "evaluate: shapes_spatial: scorer dcsm is the scorer train: dataset: trains, and train names no dataset",
        ),
        (
            lambda c: c["train"].update(dataset="shapes_spatial", recipes={"dcsm": {"datasets": ["shapes_spatial"]}}),
            "train: recipes: dcsm: the default recipe `train: dataset:` is named dcsm",
        ),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_key(tmp_path, edit, message):
    cfg = config()
    edit(cfg)
    with pytest.raises(ConfigError) as err:
        plan(cfg, tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)


@NEEDS_SNAKEMAKE
def test_snakemake_stops_on_a_bad_recipe_with_its_line(tmp_path):
    cfg = config()
    cfg["train"]["recipes"]["dcsm-coco"]["datasets"] = ["coco_train"]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, [tmp_path / "bad.yaml"], "-n", ok=False)
    assert proc.returncode != 0
    assert "train: recipes: dcsm-coco: dataset 'coco_train' is not under datasets" in proc.output


@pytest.mark.slow
@NEEDS_SNAKEMAKE
def test_a_present_recipe_trains_and_is_evaluated_and_an_absent_one_is_listed(world, tmp_path):
    from dcsm_cache.pipeline.dcsm import read_meta
    from dcsm_cache.stores.feature_store import FeatureStore

    write_training_sets(tmp_path / "data" / "objaverse", ("spatial", "colour"))
    (tmp_path / "recipes.yaml").write_text(yaml.safe_dump(config(world)))
    files = [tmp_path / "recipes.yaml"]
    run = snakemake(tmp_path, files).output

    results = tmp_path / "results" / "recipes" / "tiny" / "shapes_spatial"
    assert {p.name for p in results.iterdir()} == {"cosine.json", "dcsm-synth.json"}, run[-3000:]
    result = json.loads((results / "dcsm-synth.json").read_text())
    assert result["scorer"] == "dcsm-synth" and result["backbone_name"] == "tiny"
    meta = read_meta(tmp_path / "models" / "tiny" / "dcsm-synth.pt")
    stores = [FeatureStore.open(tmp_path / "stores" / "tiny" / f"dcsm_train_{s}.zarr") for s in ("spatial", "colour")]
    assert meta["store_fingerprint"] == [s.attrs["fingerprint"] for s in stores]  # trained on both, in order
    assert meta["train_config"]["loss"] == "reference" and meta["summary"]["steps"] == 3
    assert not (tmp_path / "models" / "tiny" / "dcsm-coco.pt").exists()
    summary = (tmp_path / "results" / "recipes" / "summary.md").read_text()
    assert "| tiny | dcsm-synth |" in summary and "dcsm-coco" not in summary

    listed = missing_lines(run)
    assert "data/coco/negated_pairs_cocotrain_v1.json  dcsm_train_negation" in listed, run[-3000:]
    assert " 2 of 3 " in run
    strict = snakemake(tmp_path, files, "--config", "strict=true", ok=False)
    assert strict.returncode != 0 and "strict: true" in strict.output
    assert missing_lines(strict.output) == listed
    assert planned_jobs(snakemake(tmp_path, files, "-n").output) == {}

    write_training_sets(tmp_path / "data" / "coco", ("negation",))  # its folder arrives: it is planned, alone
    dry = snakemake(tmp_path, files, "-n").output
    assert planned_jobs(dry) == {
        "items": 1,
        "extract_part": 1,
        "extract": 1,
        "train_recipe": 1,
        "evaluate_recipe": 1,
        "report": 1,
        "all": 1,
    }, dry
