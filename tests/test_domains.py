"""The domain study: world/domains.py's rendering, the mixtures' loader, the config expansion, the Figure-2 table,
and config/domains.yaml at tiny size through the real snakemake (tests/workflow/domains.yaml)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from dcsm_cache.errors import BadInputError, ConfigError
from dcsm_cache.pipeline.analysis.plots import read_matrix
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.benchmarks.domains_mixture import MIXTURES, caption
from dcsm_cache.pipeline.tasks.domains_table import study_table, write_table
from dcsm_cache.pipeline.world.domains import DomainsConfig, generate_domains
from dcsm_cache.workflow import plan
from dcsm_cache.workflow.domains import expand_domains

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = shutil.which("snakemake")
TINY = DomainsConfig(image_size=32, min_size=12, max_size=20, n_train=2, n_eval=3, classes=("circle", "heart", "star"))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("domains")
    generate_domains(TINY, out)
    return out


def test_every_scene_is_drawn_in_every_domain_and_the_domainnet_loader_reads_it(root):
    ds = load_benchmark("domainnet", str(root / "eval"), templates=["a {}"])
    assert len(ds.items) == len(TINY.domains) * len(TINY.classes) * TINY.n_eval
    assert {it.tags["domain"] for it in ds.items} == set(TINY.domains)
    assert ds.captions == tuple(f"a {c}" for c in sorted(TINY.classes))
    for it in ds.items:  # the class index is the folder's, in every domain
        assert ds.images[it.image].path.split("/")[1] == sorted(TINY.classes)[it.correct]
    a = np.asarray(Image.open(root / "eval/real/star/00001.png"), dtype=float)
    b = np.asarray(Image.open(root / "eval/sketch/star/00001.png"), dtype=float)
    assert a.shape == b.shape == (32, 32, 3) and np.abs(a - b).mean() > 10  # same scene, another style
    assert json.loads((root / "domains.json").read_text())["classes"] == list(TINY.classes)


def test_rendering_is_seeded_and_a_smaller_set_leaves_no_stale_files(tmp_path, root):
    generate_domains(TINY, tmp_path)
    same = root / "train/quickdraw/heart/00001.png"
    assert (tmp_path / "train/quickdraw/heart/00001.png").read_bytes() == same.read_bytes()
    generate_domains(DomainsConfig(**{**TINY.__dict__, "n_eval": 1, "domains": ("real", "sketch")}), tmp_path)
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["real", "sketch"]
    assert [p.name for p in (tmp_path / "eval/real/star").iterdir()] == ["00000.png"]


def test_config_refuses_unknown_domains():
    with pytest.raises(ConfigError, match="unknown domain"):
        DomainsConfig(domains=("real", "oil"))


@pytest.mark.parametrize("mixture", list(MIXTURES))
def test_each_mixture_draws_its_domains_and_never_the_test_classes_in_the_test_domain(root, mixture):
    ds = load_benchmark("domains_mixture", str(root), mixture=mixture, test_domain="sketch", test_classes=["star"])
    pairs = {tuple(ds.images[it.image].path.split("/")[1:3]) for it in ds.items}
    want = {
        "natural-only": {"real"},
        "cg-low": {"real", "sketch"},
        "cg-high": set(TINY.domains),
        "leave-out": set(TINY.domains) - {"sketch"},
    }[mixture]
    assert {d for d, _ in pairs} == want
    assert ("sketch", "star") not in pairs
    assert {c for _, c in pairs} == set(TINY.classes)  # other domains still show the held-out class
    for it in ds.items:
        assert ds.captions[it.candidates[0]] == caption("", ds.images[it.image].path.split("/")[2])
    assert caption("sketch", "star") == "a star" and caption("sketch", "star", True) == "a sketch of a star"


def test_mixture_options_are_checked(root):
    with pytest.raises(ConfigError, match="unknown mixture"):
        load_benchmark("domains_mixture", str(root), mixture="all", test_classes=["star"])
    with pytest.raises(ConfigError, match="test_classes"):
        load_benchmark("domains_mixture", str(root), test_classes=["hexagon"])
    with pytest.raises(ConfigError, match="natural"):
        load_benchmark("domains_mixture", str(root), test_domain="real", test_classes=["star"])


def test_the_domains_section_becomes_datasets_backbones_and_zeroshot_results(tmp_path):
    config = yaml.safe_load((REPO / "config/domains.yaml").read_text())
    study = expand_domains(config)
    assert study.mixtures == ("natural-only", "cg-low", "cg-high", "leave-out")
    assert config["pretrain"]["domains-cg-low"]["dataset"] == "domains_pretrain_cg-low"
    assert config["datasets"]["domains_pretrain_cg-low"]["options"]["mixture"] == "cg-low"
    assert config["datasets"]["domains_eval"]["benchmark"] == "domainnet"
    p = plan(config, tmp_path)  # nothing rendered yet: the domains_world rule builds it, so nothing is missing
    assert not p.missing
    assert sorted(p.targets) == sorted(study.zeroshot(m) for m in study.mixtures)
    assert f"{study.out}/figure2.png" in study.targets
    assert expand_domains({"name": "x"}) is None
    with pytest.raises(ConfigError, match="unknown mixture"):
        expand_domains(
            {
                **yaml.safe_load((REPO / "config/domains.yaml").read_text()),
                "domains": {**config["domains"], "mixtures": ["everything"]},
            }
        )


def _zeroshot(path: Path, per_class: dict[str, list]) -> str:
    subsets = {d: {"accuracy": float(np.mean(v)), "per_class_top1": v} for d, v in per_class.items()}
    path.write_text(json.dumps({"subsets": subsets}))
    return str(path)


def test_the_table_averages_the_held_out_classes_of_the_test_domain(tmp_path):
    classes = ["star", "circle", "heart"]  # sorted: circle, heart, star
    results = {
        "natural-only": _zeroshot(tmp_path / "a.json", {"sketch": [1.0, 0.5, 0.0], "real": [1.0, 1.0, 1.0]}),
        "cg-high": _zeroshot(tmp_path / "b.json", {"sketch": [0.5, 1.0, 0.25], "real": [1.0, 0.0, 1.0]}),
    }
    rows = study_table(results, "sketch", ["heart", "star"], classes)
    assert rows[0] == {"mixture": "natural-only", "heldout": 25.0, "seen": 100.0, "real": 100.0}
    assert rows[1]["heldout"] == pytest.approx(62.5) and rows[1]["real"] == pytest.approx(200 / 3)
    written = write_table(rows, tmp_path / "fig" / "figure2", "sketch", ["heart", "star"])
    assert [p.suffix for p in written] == [".md", ".csv", ".png"]
    assert "| natural-only | 25.0 | 100.0 | 100.0 |" in written[0].read_text()
    with pytest.raises(BadInputError, match="no per-class results"):
        study_table(results, "quickdraw", ["star"], classes)


@pytest.mark.slow
@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH")
def test_tiny_domains_config_through_real_snakemake(tmp_path):
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2", "--configfile"]
    cmd += [str(REPO / "config/domains.yaml"), str(REPO / "tests/workflow/domains.yaml")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=os.environ)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    out = tmp_path / "results/domains/domains"
    table = (out / "figure2.csv").read_text().splitlines()
    assert table[0].startswith("mixture,heldout,seen") and [r.split(",")[0] for r in table[1:]] == [
        "natural-only",
        "cg-high",
    ]
    names, m = read_matrix(out / "cka-mixtures-pooled.csv")
    assert names == ["natural-only", "cg-high"] and np.allclose(np.diag(m), 1) and 0 <= m[0, 1] <= 1
    stats = json.loads((out / "stats-cg-high.json").read_text())
    assert stats["nonfinite"]["image/tokens"] == {"nan": 0, "inf": 0}
    assert (out / "umap-cg-high-pooled.png").stat().st_size > 1000
    again = subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=300, env=os.environ)
    assert "Nothing to be done" in again.stdout + again.stderr
