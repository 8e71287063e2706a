"""The real `snakemake` binary runs the real Snakefile on the tiny configs of tests/workflow/.

The embedded default at tiny size runs through every stage once, into results/default/ (the shared
fixture `default_run`, tests/conftest.py). In that folder, then: nothing changed plans nothing; the
same config written back with sorted keys in flow style plans nothing; one benchmark's setting
edited plans that benchmark's evaluations and the report; a changed evaluation, scorer or report
module plans exactly the jobs it feeds. The paper's configuration at tiny size, in a copy of that
folder that also holds two backbones' weights and three benchmark folders (tiny stand-ins in their
native layouts and checkpoint forms), plans its own jobs, runs exactly those results, lists what is
missing and writes results/paper/summary.md; with strict=true it stops with the same list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dcsm_cache.workflow import code_fingerprint
from snakemake_run import DEFAULT, PAPER, REPO, SNAKEMAKE, merged, planned_jobs, snakemake

pytestmark = [
    pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH"),
    pytest.mark.xdist_group("default_run"),  # one pytest-xdist worker runs these while the other runs the rest
]


@pytest.mark.slow
def test_default_runs_every_stage_into_results_of_its_name(default_run):
    summary = (default_run / "results" / "default" / "summary.md").read_text()
    for bench in ("shapes_binding", "shapes_spatial", "shapes_negation"):
        assert f"{bench}/heldout" in summary
    assert "## Zero-shot classification" in summary and "| shapes_objects/heldout |" in summary
    assert "## Linear probes" in summary
    for path in [
        "models/shapes-clip.pt",
        "models/shapes-clip/dcsm.pt",
        "stores/shapes-clip/shapes_train.zarr",
        "results/default/shapes-clip/shapes_spatial/dcsm.json",
        "logs/extract/shapes-clip/shapes_spatial.log",
        "results/default/summary.csv",
    ]:
        assert (default_run / path).exists(), path
    assert not (default_run / "results" / "summary.md").exists()
    # warm starts (src/dcsm_cache/warm.py): jobs forked from one server, none refused (the first ones ran fresh)
    warm = (default_run / ".snakemake" / "dcsm-cache-warm.log").read_text()
    if "not serving" not in warm:  # (it does not serve where CUDA could be used)
        assert "serving on" in warm and "refused" not in warm and warm.count(": pid ") >= 30, warm[-2000:]
    result = json.loads((default_run / "results/default/shapes-clip/shapes_spatial/dcsm.json").read_text())
    assert result["backbone"] == "shapes-clip-tiny@models/shapes-clip.pt" and result["n_items"] == 18
    assert result["code"] == code_fingerprint("evaluate")
    zs = json.loads((default_run / "results/default/shapes-clip/shapes_objects/zeroshot.json").read_text())
    world = json.loads((default_run / "data/world/world.json").read_text())
    objects = sum(
        len(s["objects"])
        for split in ("test", "heldout")
        for s in json.loads((default_run / f"data/world/scenes/{split}.json").read_text())["scenes"]
    )
    assert zs["n_items"] == objects and zs["n_classes"] == len(world["colours"]) * len(world["shapes"])
    assert set(zs["subsets"]) == {"test", "heldout"} and zs["code"] == code_fingerprint("zeroshot")
    probes = {
        label: json.loads((default_run / f"results/default/shapes-clip/shape_classes_test/{name}.json").read_text())
        for label, name in [
            ("all", "linear_probe-full"),
            *((f"{k}-shot", f"linear_probe-{k}shot") for k in (1, 2, 4, 8, 16)),
        ]
    }
    for label, probe in probes.items():  # objects classed by shape, fit on the validation scenes' objects
        assert probe["n_classes"] == len(world["shapes"]) and probe["code"] == code_fingerprint("linear_probe")
        assert probe["train_dataset"] == "shape_classes_train" and set(probe["subsets"]) == {"test", "heldout"}
        assert [r["seed"] for r in probe["runs"]] == ([0] if label == "all" else [0, 1, 2])
        assert f"| shape_classes_test | shape_classes_train | shapes-clip | pooled | {label} |" in summary
    scenes = json.loads((default_run / "data/world/scenes/heldout.json").read_text())["scenes"]
    assert probes["all"]["n_items"] == sum(len(s["objects"]) for s in scenes)  # the held-out probe scenes' objects
    assert probes["1-shot"]["n_train"] == len(world["shapes"])
    assert "| shape_classes_test | shapes-clip |" in summary  # its zero-shot, the probes' baseline
    assert (default_run / "results/default/shots.png").stat().st_size > 10_000
    gallery = json.loads((default_run / "results/default/gallery-shapes-clip/index.json").read_text())["stores"]
    drawn = [len(s[f"{kind}_files"]) for s in gallery for kind in ("dcsm_right", "cosine_right")]
    assert len(gallery) == 3 and max(drawn) == 1  # report: gallery_per_kind: 1 (tests/workflow/default.yaml)
    assert planned_jobs(snakemake(default_run, DEFAULT, "-n").output) == {}  # nothing changed, nothing to do


@pytest.mark.slow
def test_config_in_another_yaml_style_plans_nothing_and_one_setting_plans_its_jobs(default_run, tmp_path):
    cfg = merged(DEFAULT)
    rewritten = tmp_path / "rewritten.yaml"
    rewritten.write_text(yaml.safe_dump(cfg, sort_keys=True, default_flow_style=True, width=60))
    assert planned_jobs(snakemake(default_run, [rewritten], "-n").output) == {}

    cfg["evaluate"]["benchmarks"]["shapes_spatial"]["settings"] = {"batch_size": 7}
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(cfg))
    dry = snakemake(default_run, [tmp_path / "edited.yaml"], "-n").output
    assert planned_jobs(dry) == {"all": 1, "evaluate": 3, "report": 1}, dry
    outputs = set(re.findall(r"output: (results/\S+\.json)", dry))
    assert outputs == {f"results/default/shapes-clip/shapes_spatial/{s}.json" for s in ("cosine", "maxsim", "dcsm")}
    assert re.search(r"[Pp]arams have changed", dry)


@pytest.mark.slow
def test_changed_stage_code_reruns_the_jobs_it_feeds(default_run, tmp_path):
    """A copy of the package with one module changed, as an upgrade would change it (PYTHONPATH points at it)."""
    shutil.copytree(
        REPO / "src" / "dcsm_cache", tmp_path / "src" / "dcsm_cache", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {"PYTHONPATH": str(tmp_path / "src")}
    every = planned_jobs(
        snakemake(default_run, DEFAULT, "-n", "--forcerun", "evaluate", "zeroshot", "linear_probe").output
    )
    evaluate, zeroshot, probes = every["evaluate"], every["zeroshot"], every["linear_probe"]  # every job of each
    assert evaluate > 1 and zeroshot and probes, every
    expected = {
        "pipeline/tasks/choice.py": {"evaluate": evaluate, "gallery": 1, "report": 1, "all": 1},
        "pipeline/dcsm/scorer.py": {"train": 1, "evaluate": evaluate, "gallery": 1, "report": 1, "all": 1},
        "pipeline/tasks/report.py": {"report": 1, "all": 1},
        "pipeline/figures/heatmap.py": {"gallery": 1, "report": 1, "all": 1},
        "pipeline/tasks/zeroshot.py": {"zeroshot": zeroshot, "linear_probe": probes, "report": 1, "all": 1},
    }
    for module, jobs in expected.items():
        path = tmp_path / "src" / "dcsm_cache" / module
        original = path.read_text()
        path.write_text(original + "\n# a change\n")
        dry = snakemake(default_run, DEFAULT, "-n", env=env).output
        path.write_text(original)
        assert planned_jobs(dry) == jobs, (module, dry[-3000:])
        assert re.search(r"[Pp]arams have changed", dry)
    assert planned_jobs(snakemake(default_run, DEFAULT, "-n", env=env).output) == {}


# ---------------------------------------------------------------- the paper's configuration at tiny size

OFFLINE = {"HF_HUB_OFFLINE": "1"}  # with HF_HOME set per test: an empty Hugging Face cache


def paper_folder(default_run: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the default's folder, plus two backbones' weights and three benchmark folders."""
    import torch

    from dcsm_cache._openclip import open_clip
    from test_benchmarks import make_vg_attr
    from test_retrieval import karpathy_doc, write_images
    from test_zeroshot import write_folders

    folder = tmp_path / "work"
    shutil.copytree(default_run, folder, symlinks=True)
    negclip = lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}  # NegCLIP's training checkpoint
    conclip = lambda sd: {"model": sd}  # CoN-CLIP's release
    for seed, path, wrap in ((1, "weights/negclip.pth", negclip), (2, "weights/conclip/conclip_vit_b32.pt", conclip)):
        torch.manual_seed(seed)
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(wrap(open_clip.create_model("shapes-clip-tiny").state_dict()), folder / path)
    make_vg_attr(folder / "data")
    write_folders(folder / "data" / "zeroshot" / "cifar10", None, per_class=1)
    write_folders(folder / "data" / "train" / "cifar10", None, per_class=2)  # its linear probe's train split
    doc = karpathy_doc(n_test=6)
    (folder / "data" / "coco").mkdir(parents=True)
    (folder / "data" / "coco" / "dataset_coco.json").write_text(json.dumps(doc))
    write_images(folder / "data" / "coco" / "val2014", [r["filename"] for r in doc["images"]])
    return folder, {**OFFLINE, "HF_HOME": str(tmp_path / "hf")}


HERE = ("negclip-vit-b-32", "conclip-vit-b-32")


def paper_results() -> set[str]:
    return {
        f"results/paper/{b}/{d}/{t}.json"
        for b in HERE
        for d, t in [
            ("vg_attr+paper-baseline", "cosine"),
            ("vg_attr+paper-baseline", "dcsm"),
            ("cifar10", "zeroshot"),
            ("cifar10", "linear_probe-full"),
            ("cifar10", "linear_probe-1shot"),
            ("karpathy_coco", "retrieval"),
        ]
    }


def missing_lines(output: str) -> set[str]:
    """The indented lines under the workflow's 'dcsm-cache: config ...' message: what is missing, and where."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("dcsm-cache: config"))
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line.strip())
    return set(block)


@pytest.mark.slow
def test_paper_config_after_the_default_plans_its_own_jobs(default_run, tmp_path):
    folder, env = paper_folder(default_run, tmp_path)
    dry = snakemake(folder, PAPER, "-n", env=env).output
    assert "Nothing to be done" not in dry
    assert planned_jobs(dry) == {
        "items": 4,
        "extract_part": 10,
        "extract": 10,
        "train": 2,
        "evaluate": 4,
        "zeroshot": 2,
        "linear_probe": 4,
        "retrieval": 2,
        "gallery": 2,
        "report": 1,
        "all": 1,
    }, dry  # the world and its shapes_train manifest are reused
    assert set(re.findall(r"output: (results/\S+\.json)", dry)) == paper_results()


@pytest.mark.slow
def test_paper_config_runs_what_is_there_and_lists_the_rest(default_run, tmp_path):
    folder, env = paper_folder(default_run, tmp_path)
    default_summary = (folder / "results/default/summary.md").read_text()
    run = snakemake(folder, PAPER, env=env).output
    made = {p.relative_to(folder).as_posix() for p in (folder / "results" / "paper").glob("*/*/*.json")}
    assert made == paper_results()
    listed = missing_lines(run)
    paths = {line.split()[0] for line in listed}
    assert {
        "weights/conclip/conclip_vit_b16.pt",
        "weights/conclip/conclip_vit_l14.pt",
        "weights/dcsm/dcsm_obja_ckpt.pt",
        "data/controlled_images_dataset.json",
        "data/clevr_bind/two_object/gen.csv",
        "data/zeroshot/imagenet1k",
        "data/train/food101",
        "data/flickr30k/dataset_flickr30k.json",
    } <= paths, run[-4000:]
    assert (
        not {
            "weights/negclip.pth",
            "weights/conclip/conclip_vit_b32.pt",
            "data/visual_genome_attribution.json",
            "data/zeroshot/cifar10",
            "data/train/cifar10",
            "data/coco/dataset_coco.json",
        }
        & paths
    )
    hub = next(line for line in listed if line.startswith("the Hugging Face cache"))
    for key in ("vit-b-16-openai", "siglip-vit-b-16", "coca-vit-b-32", "clips-vit-l-14"):
        assert key in hub  # registry and hub names, with HF_HUB_OFFLINE set and an empty cache
    assert run.count("dcsm-cache: config 'paper'") == 1 and f" {len(paper_results())} of " in run
    summary = (folder / "results/paper/summary.md").read_text()
    assert "vg_attr+paper-baseline" in summary and "## Zero-shot classification" in summary
    assert "## Retrieval" in summary and "| karpathy_coco |" in summary and "| cifar10 |" in summary
    assert (
        "## Linear probes" in summary and "| cifar10 | cifar10_train | negclip-vit-b-32 | pooled | 1-shot |" in summary
    )
    assert (folder / "results/default/summary.md").read_text() == default_summary

    strict = snakemake(folder, PAPER, "--config", "strict=true", env=env, ok=False)
    assert strict.returncode != 0 and "strict: true" in strict.output
    assert missing_lines(strict.output) == listed
    assert planned_jobs(snakemake(folder, PAPER, "-n", env=env).output) == {}


def test_config_is_validated(tmp_path):
    cfg = merged(DEFAULT)
    cfg["extract"]["devise"] = "cpu"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, [tmp_path / "bad.yaml"], "-n", ok=False)
    assert proc.returncode != 0 and "devise" in proc.output


# Each benchmark's first file in its native layout (docs/benchmarks.md), as a downloaded copy has it.
PAPER_FILES = [
    "clevr_bind/two_object/train.csv",
    "clevr_bind/two_object/val.csv",
    "clevr_bind/two_object/gen.csv",
    "NCD_colorful_composite_squares/yellow_banana_red_apple.png",
    "visual_genome_attribution.json",
    "controlled_images_dataset.json",
    "controlled_clevr_dataset.json",
    "coco_qa_one_obj.json",
    "coco_qa_two_obj.json",
    "vg_qa_one_obj.json",
    "vg_qa_two_obj.json",
    "NegBench/evaluation data/images/COCO_val_mcq_llama3.1_rephrased.csv",
    "NegBench/evaluation data/images/VOC2007_mcq_llama3.1_rephrased.csv",
    "ccneg_dataset/ccneg_preprocessed.pt",
    "data/add_att.json",
    "coco/dataset_coco.json",
    "flickr30k/dataset_flickr30k.json",
    # the paper's training sets (docs/benchmarks.md §4), for the recipes dcsm-synth and dcsm-coco
    "objaverse_train_composite_newrelations_withbg",
    "objaverse_attributes_overlay_withbg",
    "negated_pairs_cocotrain_v1.json",
]


def test_paper_config_names_every_benchmark_and_plans_what_is_there(tmp_path):
    from dcsm_cache.pipeline import paper

    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    keys = {k.split("+")[0] for k in cfg["evaluate"]["benchmarks"]}
    assert {k for c in paper.COLUMNS for k in c.keys} | {"ccneg", "sugarcrepe"} <= keys
    empty = snakemake(tmp_path, [REPO / "config" / "paper.yaml"], "-n", ok=False)
    assert empty.returncode != 0 and "nothing can run here" in empty.output
    assert "data/visual_genome_attribution.json" in empty.output and "weights/negclip.pth" in empty.output

    for rel in [
        *(f"data/{f}" for f in PAPER_FILES),
        *(v[k] for v in cfg["backbones"].values() for k in v if k not in ("model", "scorers")),
        *(m.split("@", 1)[1] for m in (v["model"] for v in cfg["backbones"].values()) if "@" in m),
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).touch()
    for name in cfg["zeroshot"]["datasets"]:
        (tmp_path / cfg["datasets"][name]["root"]).mkdir(parents=True)
    probes = cfg["linear_probe"]["datasets"]
    for test in probes.values():
        (tmp_path / cfg["datasets"][test["train"]]["root"]).mkdir(parents=True)
    online = {"HF_HUB_OFFLINE": "0"}  # registry and hub weights count as downloadable
    proc = snakemake(tmp_path, [REPO / "config" / "paper.yaml"], "-n", env=online)
    assert "left out" not in proc.output
    jobs = planned_jobs(proc.output)
    n_backbones = len(cfg["backbones"])
    n_own = sum(len(v.get("scorers", [])) for v in cfg["backbones"].values())  # BLIP's ITM, beside its cosine
    # cosine and dcsm on 16 benchmarks per backbone, + dcsm-paper on ViT-B/16's 14, + each own scorer on 16
    assert jobs["train"] == n_backbones and jobs["evaluate"] == n_backbones * 2 * 16 + 14 + n_own * 16
    # the recipes dcsm-synth and dcsm-coco: ViT-B/16's, each scored on the 14 benchmarks dcsm-paper is
    assert jobs["train_recipe"] == 2 and jobs["evaluate_recipe"] == 2 * 14
    assert jobs["zeroshot"] == n_backbones * len(cfg["zeroshot"]["datasets"])
    assert jobs["retrieval"] == n_backbones * len(cfg["retrieval"]["datasets"])
    assert jobs["linear_probe"] == n_backbones * len(probes) * (1 + len(cfg["linear_probe"]["shots"]))


@pytest.mark.slow
@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH")
def test_a_table_of_ones_own_runs_through_items_extract_eval(tmp_path):
    from PIL import Image

    data = tmp_path / "data" / "mine"
    data.mkdir(parents=True)
    rows = [
        ("red.png", (220, 20, 20), "a red square", "a blue square", 0),
        ("blue.png", (20, 20, 220), "a red square", "a blue square", 1),
    ]
    for file, rgb, *_ in rows:
        Image.new("RGB", (32, 32), rgb).save(data / file)
    (data / "data.csv").write_text(
        "image,caption_0,caption_1,correct\n" + "".join(f"{f},{a},{b},{k}\n" for f, _, a, b, k in rows)
    )
    mine = tmp_path / "mine.yaml"
    mine.write_text(
        yaml.safe_dump(
            {
                "backbones": {"tiny": {"model": "shapes-clip-tiny"}},
                "datasets": {"my_set": {"benchmark": "table", "root": "data/mine", "options": {"file": "data.csv"}}},
                "evaluate": {"backbones": ["tiny"], "benchmarks": {"my_set": {"scorers": ["cosine"]}}},
            }
        )
    )
    target = "results/default/tiny/my_set/cosine.json"
    out = snakemake(tmp_path, [*DEFAULT, mine], target).output
    assert "rule world" not in out and "rule pretrain" not in out  # nothing of the shapes world is needed
    result = json.loads((tmp_path / target).read_text())
    assert result["dataset"] == "my_set" and result["n_items"] == 2 and result["chance"] == 0.5
    assert json.loads((tmp_path / "manifests/my_set.json").read_text())["root"] == "../data/mine"  # the manifest's
    from dcsm_cache.pipeline.items import read_manifest

    assert read_manifest(tmp_path / "manifests/my_set.json").root == str(data)  # the config's root, from anywhere
    assert planned_jobs(snakemake(tmp_path, [*DEFAULT, mine], target, "-n").output) == {}
    (data / "data.csv").write_text((data / "data.csv").read_text() + "red.png,a green square,a red square,1\n")
    dry = snakemake(tmp_path, [*DEFAULT, mine], target, "-n").output
    # an edited table is read again
    assert planned_jobs(dry) == {"items": 1, "extract_part": 1, "extract": 1, "evaluate": 1}, dry


# ---------------------------------------------------------------- killed mid-run, rerun: the same results


def _results(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted((folder / "results").rglob("*")) if p.is_file()}


KILLED_TARGETS = [f"results/default/shapes-clip/shapes_spatial/{s}.json" for s in ("cosine", "maxsim", "dcsm")]


@pytest.mark.slow
def test_killed_mid_run_and_rerun_in_another_folder_gives_byte_identical_results(default_run, tmp_path):
    """The same config in a second folder, asked for one benchmark's results (world, pretraining, two
    extractions, training, evaluations: every kind of job), SIGKILLed (snakemake and its jobs) once a
    store is being extracted, then rerun: each result equal to the uninterrupted run's, byte for byte."""
    import signal
    import time

    folder = tmp_path / "again"
    folder.mkdir()
    cmd = [SNAKEMAKE, *KILLED_TARGETS, "-s", str(REPO / "Snakefile"), "--directory", str(folder)]
    proc = subprocess.Popen(
        [*cmd, "--cores", "2", "--configfile", *map(str, DEFAULT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    end = time.monotonic() + 600
    while not list(folder.glob("stores/*/*.zarr")) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, "snakemake stopped before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (folder / KILLED_TARGETS[-1]).exists()  # killed before the end
    snakemake(folder, DEFAULT, "--unlock")
    snakemake(folder, DEFAULT, "--rerun-incomplete", *KILLED_TARGETS)
    first, second = _results(default_run), _results(folder)
    assert sorted(second) == sorted(KILLED_TARGETS)
    different = [n for n in second if first[n] != second[n]]  # the store fingerprints too: content, not place
    assert different == [], different
