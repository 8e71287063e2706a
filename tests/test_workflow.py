"""What the Snakefile asks of the package (`dcsm_cache.workflow`): the plan, canonical params, code fingerprints.

The plan is checked against folders laid out here; the flags against the CLI's own `--set` parser;
the fingerprints against a copy of the package with one module changed. The real snakemake runs
are in test_snakemake.py.
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dcsm_cache.cli import _settings, main
from dcsm_cache.errors import ConfigError, UnknownNameError
from dcsm_cache.pipeline.benchmarks import expected_files, load_benchmark
from dcsm_cache.workflow import code, imports, plan, probe_shots, probe_task, set_flags
from dcsm_cache.workflow.code import STAGES, code_fingerprint, stage_modules

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- params

STYLES = [
    "steps: 400\nscorer:\n  residual: false\n  global_cosine: false\nlr: 0.001\nks: [1, 5]\nname: abc\n",
    "{name: 'abc', ks: [1.0, 5], lr: 1.0e-3, scorer: {global_cosine: no, residual: False}, steps: 400.0}\n",
    'ks:\n- 1\n- 5\nlr: 0.0010\n"name": "abc"\nscorer: {"residual": false, "global_cosine": false}\nsteps: 400\n',
]


def test_flags_are_the_same_in_every_yaml_style_and_differ_when_a_value_does():
    flags = {set_flags(yaml.safe_load(text)) for text in STYLES}
    assert len(flags) == 1
    changed = yaml.safe_load(STYLES[0]) | {"scorer": {"residual": True, "global_cosine": False}}
    assert set_flags(changed) not in flags
    assert set_flags(None) == set_flags({}) == ""


def test_flags_mean_the_settings_to_the_cli():
    settings = yaml.safe_load(STYLES[1])
    words = shlex.split(set_flags(settings))
    assert words[::2] == ["--set"] * len(settings)
    assert _settings(tuple(words[1::2])) == {
        "name": "abc",
        "ks": [1, 5],
        "lr": 0.001,
        "steps": 400,
        "scorer": {"global_cosine": False, "residual": False},
    }


def test_flags_refuse_what_yaml_cannot_say():
    with pytest.raises(ConfigError, match="object"):
        set_flags({"x": object()})


# ---------------------------------------------------------------- code fingerprints


def rel(paths) -> set[str]:
    return {Path(p).relative_to(code.PACKAGE).as_posix() for p in paths}


# What a stage must hash and must not: the spec the derived file lists are held to.
MUST = {
    "evaluate": {
        "pipeline/tasks/choice.py",
        "pipeline/tasks/scoring.py",
        "pipeline/scorers.py",
        "pipeline/dcsm/scorer.py",
        "pipeline/paper/scorer.py",
        "pipeline/tasks/itm.py",
        "pipeline/tokens/blip.py",
        "pipeline/tasks/results.py",
        "pipeline/reading.py",
        "stores/raw_rows.py",
    },
    "zeroshot": {"pipeline/tasks/zeroshot.py", "pipeline/reading.py", "stores/feature_store.py"},
    "linear_probe": {"pipeline/tasks/linear_probe.py", "pipeline/tasks/zeroshot.py", "pipeline/reading.py"},
    "train": {
        "pipeline/train/loop.py",
        "pipeline/train/config.py",
        "pipeline/train/pairs.py",
        "pipeline/dcsm/scorer.py",
    },
    "pretrain": {
        "pipeline/world/pretrain.py",
        "pipeline/world/late_interaction.py",
        "pipeline/world/train_images.py",
        "pipeline/tokens/shapes_clip.py",
        "model_configs/shapes-clip.json",
    },
    "extract": {
        "pipeline/extract/run.py",
        "pipeline/extract/views.py",
        "pipeline/paper/padding.py",
        "stores/chunk_writer.py",
    },
    "report": {"pipeline/tasks/report.py", "pipeline/figures/plots.py", "pipeline/paper/table.py"},
    "analyze": {"pipeline/analysis/cka.py", "pipeline/analysis/embed.py", "pipeline/analysis/stats.py"},
}
MUST_NOT = {
    "zeroshot": {"pipeline/dcsm/scorer.py", "pipeline/dcsm/cache.py", "pipeline/tasks/choice.py"},
    "retrieval": {"pipeline/dcsm/scorer.py", "pipeline/tasks/zeroshot.py"},
    "train": {"pipeline/tasks/choice.py", "stores/chunk_writer.py", "pipeline/tokens/backbones.py"},
    "extract": {"pipeline/dcsm/scorer.py", "pipeline/train/loop.py", "pipeline/world/generate.py"},
    "evaluate": {"pipeline/benchmarks/whatsup.py", "pipeline/extract/run.py", "pipeline/tokens/encoder.py"},
    "report": {"pipeline/extract/run.py", "pipeline/train/loop.py"},
}


def test_every_stage_hashes_what_its_commands_import_and_nothing_else():
    for stage in STAGES:
        files = set(stage_modules(stage))
        assert len(code_fingerprint(stage)) == 12 and files, stage
        assert MUST.get(stage, set()) <= files, (stage, sorted(MUST[stage] - files))
        assert not MUST_NOT.get(stage, set()) & files, (stage, sorted(MUST_NOT[stage] & files))
        assert not {f for f in files if imports.plumbing(code.PACKAGE / f, code.PACKAGE)}, stage
    with pytest.raises(UnknownNameError, match="valid: world"):
        code_fingerprint("nope")


def _rule_commands() -> list[tuple[str, str, str]]:
    """(rule file, stage whose fingerprint a rule passes, the dcsm-cache command it runs) for every such rule."""
    known = imports.commands(code.PACKAGE)
    out = []
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^\s*rule \w+:", smk.read_text(), flags=re.M)[1:]:
            stage = re.search(r'code_fingerprint\("(\w+)"\)', block)
            shell = re.search(r'"dcsm-cache ([^"]*)', block)
            if stage and shell:
                words = [w for w in shell.group(1).split()]
                words = words[: next((i for i, w in enumerate(words) if w[0] in "-{>"), len(words))]
                command = next(" ".join(words[:n]) for n in range(len(words), 0, -1) if " ".join(words[:n]) in known)
                out.append((smk.name, stage.group(1), command))
    return out


def test_each_rule_passes_the_fingerprint_of_the_command_it_runs():
    found = _rule_commands()
    assert len(found) >= 15
    assert [(f, s, c) for f, s, c in found if c not in STAGES[s]] == []
    assert {c for _, _, c in found} == {c for commands in STAGES.values() for c in commands}


def test_commands_are_found_under_the_names_click_registers():
    def walk(group, prefix=""):
        for name, cmd in group.commands.items():
            yield f"{prefix}{name}", cmd
            if hasattr(cmd, "commands"):
                yield from walk(cmd, f"{prefix}{name} ")

    registered = {
        name: (Path(inspect.getfile(cmd.callback)).resolve(), cmd.callback.__name__) for name, cmd in walk(main)
    }
    assert imports.commands(code.PACKAGE) == registered


def _ast_imports(path: Path):
    """(module imported, as a path without suffix; names) for each import of package code, by `ast`."""
    package = code.PACKAGE
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.parents[node.level - 1]
            elif (node.module or "").split(".")[0] == package.name:
                base = package.parent
            else:
                continue
            yield base.joinpath(*(node.module or "").split(".")) if node.module else base, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == package.name:
                    yield package.parent.joinpath(*a.name.split(".")), []


def test_the_import_scan_finds_every_import_ast_finds():
    """The fingerprints read imports with regular expressions (fast); ast is the reference they must not miss."""
    missed = {}
    for path in sorted(code.PACKAGE.rglob("*.py")):
        scanned = {(target, name) for target, names in imports.scan(path, code.PACKAGE) for name, _ in names}
        scanned |= {(target, None) for target, names in imports.scan(path, code.PACKAGE) if not names}
        want = {(t, n) for t, names in _ast_imports(path) for n in (names or [None])}
        if want - scanned:
            missed[rel([path]).pop()] = sorted(map(str, want - scanned))
    assert missed == {}


def test_the_pipeline_imports_nothing_of_the_workflow_layer():
    workflow = code.PACKAGE / "workflow"
    found = {
        rel([path]).pop(): str(target)
        for path in (code.PACKAGE / "pipeline").rglob("*.py")
        for target, _ in _ast_imports(path)
        if target == workflow or workflow in target.parents
    }
    assert found == {}


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "dcsm_cache"
    shutil.copytree(code.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code, "PACKAGE", copy)
    code.cache_clear()
    yield copy
    code.cache_clear()


def _changed(before: dict) -> set[str]:
    code.cache_clear()
    return {s for s in STAGES if code_fingerprint(s) != before[s]}


def test_a_changed_module_changes_the_fingerprints_of_exactly_the_stages_that_reach_it(package_copy):
    before = {s: code_fingerprint(s) for s in STAGES}
    reach = {s: set(stage_modules(s)) for s in STAGES}
    pinned = {  # by hand: what a change there must rerun
        "pipeline/tasks/report.py": {"report"},
        "pipeline/train/data.py": {"train"},
        "pipeline/extract/views.py": {"extract"},
        "pipeline/tasks/zeroshot.py": {"zeroshot", "linear_probe"},
        "pipeline/world/scenes.py": {"world", "domains", "export", "gallery", "pretrain"},  # pretrain parses captions
    }
    for module in (
        *pinned,
        "pipeline/tasks/choice.py",
        "pipeline/dcsm/scorer.py",
        "pipeline/reading.py",
        "stores/feature_store.py",
        "model_configs/shapes-clip.json",
    ):
        path = package_copy / module
        original = path.read_text()
        path.write_text(original + ("\n" if module.endswith(".json") else "\n# changed\n"))
        changed = _changed(before)
        assert changed == {s for s in STAGES if module in reach[s]}, module
        assert changed == pinned.get(module, changed), module
        path.write_text(original)
    assert _changed(before) == set()


def test_a_new_module_is_in_the_fingerprint_of_every_stage_that_imports_it(package_copy):
    """Added beside the DCSM, re-exported by its package and imported inside a function of the cache-only scorers:
    nothing to list by hand."""
    before = {s: code_fingerprint(s) for s in STAGES}
    users = {s for s in STAGES if "pipeline/tasks/scoring.py" in stage_modules(s)}
    (package_copy / "pipeline/dcsm/calibrate.py").write_text("def calibrated(x):\n    return x\n")
    init = package_copy / "pipeline/dcsm/__init__.py"
    init.write_text(init.read_text() + "from .calibrate import calibrated  # noqa: E402,F401\n")
    scoring = package_copy / "pipeline/tasks/scoring.py"
    scoring.write_text(
        scoring.read_text() + "\n\ndef _late(x):\n    from ..dcsm import calibrated\n\n    return calibrated(x)\n"
    )
    assert _changed(before) == users and {"evaluate", "gallery"} <= users and "zeroshot" not in users
    assert all("pipeline/dcsm/calibrate.py" in stage_modules(s) for s in users)


def test_a_loader_fix_changes_only_its_own_benchmarks_manifests(package_copy):
    names = ("whatsUp_A", "whatsUp_B", "vg_attr")
    before = {(b, p): code.items_fingerprint(b, p) for b in names for p in (False, True)}
    (package_copy / "pipeline/benchmarks/whatsup.py").write_text(
        (package_copy / "pipeline/benchmarks/whatsup.py").read_text() + "\n# fixed\n"
    )
    code.cache_clear()
    after = {key: code.items_fingerprint(*key) for key in before}
    assert {key for key in before if after[key] != before[key]} == {(b, p) for b in names[:2] for p in (False, True)}
    assert after["whatsUp_A", False] != after["whatsUp_B", False]  # the registry entry's options are part of it
    assert before["vg_attr", False] != before["vg_attr", True]  # the reference's captions are part of a paper one
    (package_copy / "pipeline/items/manifest.py").write_text(
        (package_copy / "pipeline/items/manifest.py").read_text() + "\n# fixed\n"
    )
    code.cache_clear()
    assert all(code.items_fingerprint(*key) != after[key] for key in before)  # the writer: every manifest


def test_importing_the_workflow_module_imports_nothing_heavy():
    code_ = (
        "import sys; from dcsm_cache.workflow import plan, code_fingerprint, set_flags; "
        "[code_fingerprint(s) for s in ('evaluate', 'report')]; "
        "print(sorted(m for m in ('torch', 'numpy', 'open_clip', 'zarr') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code_], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- the plan


def base_config(**overrides) -> dict:
    cfg = {
        "name": "mine",
        "world": {"root": "data/world"},
        "pretrain": {"home": {"arch": "shapes-clip-tiny", "dataset": "shapes_pretrain"}},
        "backbones": {
            "home": {"model": "shapes-clip-tiny@models/home.pt"},
            "local": {"model": "shapes-clip-tiny@weights/local.pt", "dcsm_paper": "weights/dcsm.pt"},
            "absent": {"model": "shapes-clip-tiny@weights/absent.pt"},
            "random": {"model": "shapes-clip-tiny"},
        },
        "datasets": {
            "shapes_pretrain": {"root": "data/world"},
            "shapes_train": {"root": "data/world"},
            "shapes_binding": {"root": "data/world"},
            "vg_attr": {"root": "data/vg"},
            "whatsUp_A": {"root": "data/vg"},
            "objects": {"root": "data/cls", "benchmark": "imagefolder"},
        },
        "extract": {},
        "train": {"dataset": "shapes_train"},
        "evaluate": {
            "backbones": ["home", "local", "absent"],
            "benchmarks": {
                "shapes_binding": {"scorers": ["cosine", "dcsm-paper"]},
                "vg_attr": {"scorers": ["cosine", "dcsm"]},
                "whatsUp_A": {"scorers": ["cosine"]},
            },
        },
        "zeroshot": {"backbones": ["random"], "datasets": {"objects": {"settings": {}}}},
    }
    return {**cfg, **overrides}


def test_plan_makes_what_is_here_and_lists_the_rest_once_by_path(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "local.pt").touch()
    (tmp_path / "data" / "vg").mkdir(parents=True)
    (tmp_path / "data" / "vg" / "visual_genome_attribution.json").touch()
    p = plan(base_config(), tmp_path)
    r = "results/mine"
    assert set(p.targets) == {
        f"{r}/home/shapes_binding/cosine.json",
        f"{r}/local/shapes_binding/cosine.json",
        f"{r}/home/vg_attr/cosine.json",
        f"{r}/home/vg_attr/dcsm.json",
        f"{r}/local/vg_attr/cosine.json",
        f"{r}/local/vg_attr/dcsm.json",
    }
    assert p.requested == 3 * (1 + 2 + 1) + 1 + 1  # dcsm-paper only for the backbone that names its file
    assert {(m.kind, m.path, m.name) for m in p.missing} == {
        ("backbone", "weights/absent.pt", "absent"),
        ("checkpoint", "weights/dcsm.pt", "dcsm-paper of local"),
        ("dataset", "data/vg/controlled_images_dataset.json", "whatsUp_A"),
        ("dataset", "data/cls", "objects"),
    }
    text = p.describe()
    assert "6 of 14 requested results" in text
    assert [line.split()[0] for line in text.splitlines()].count("weights/absent.pt") == 1
    assert "docs/backbones.md" in text and "docs/benchmarks.md" in text
    assert p.refusal() is None and p.summary == "results/mine/summary.md"


def test_plan_refuses_when_strict_or_when_nothing_can_run(tmp_path):
    strict = plan(base_config(strict="true"), tmp_path)
    assert strict.strict and strict.targets and "strict: true" in strict.refusal()
    assert "weights/absent.pt" in strict.refusal()
    assert plan(base_config(strict=False), tmp_path).refusal() is None
    nothing = plan(
        base_config(
            evaluate={"backbones": ["absent"], "benchmarks": {"vg_attr": {"scorers": ["cosine"]}}}, zeroshot=None
        ),
        tmp_path,
    )
    assert nothing.targets == () and "nothing can run here" in nothing.refusal()
    with pytest.raises(ConfigError, match="strict='maybe'"):
        plan(base_config(strict="maybe"), tmp_path)


def test_plan_names_a_key_that_is_not_in_the_config(tmp_path):
    with pytest.raises(ConfigError, match="evaluate names dataset 'ncd'"):
        plan(base_config(evaluate={"backbones": ["home"], "benchmarks": {"ncd": {"scorers": ["cosine"]}}}), tmp_path)
    with pytest.raises(ConfigError, match="zeroshot names backbone 'nope'"):
        plan(base_config(zeroshot={"backbones": ["nope"], "datasets": {}}), tmp_path)


def test_plan_asks_a_linear_probe_per_shots_and_needs_both_its_datasets(tmp_path):
    probe = {
        "backbones": ["random"],
        "shots": [1, 4],
        "seeds": [0, 1],
        "datasets": {"objects": {"train": "objects_train"}, "shapes_binding": {"train": "shapes_train"}},
    }
    datasets = {**base_config()["datasets"], "objects_train": {"root": "data/cls_train", "benchmark": "imagefolder"}}
    cfg = base_config(evaluate=None, datasets=datasets, linear_probe=probe)
    p = plan(cfg, tmp_path)
    names = [probe_task(s) for s in (None, 1, 4)]
    assert names == ["linear_probe-full", "linear_probe-1shot", "linear_probe-4shot"]
    assert [probe_shots(n) for n in names] == [None, 1, 4]
    assert set(p.targets) == {f"results/mine/random/shapes_binding/{n}.json" for n in names}  # built here
    assert p.requested == 1 + 2 * 3  # the zero-shot and three probes per test dataset
    assert {(m.path, m.name) for m in p.missing} == {("data/cls", "objects"), ("data/cls_train", "objects_train")}
    (tmp_path / "data" / "cls").mkdir(parents=True)
    assert ("data/cls_train", "objects_train") in {(m.path, m.name) for m in plan(cfg, tmp_path).missing}
    (tmp_path / "data" / "cls_train").mkdir()
    assert len(plan(cfg, tmp_path).targets) == 1 + 2 * 3
    with pytest.raises(ConfigError, match="linear_probe: train names dataset 'nope'"):
        plan(base_config(linear_probe={**probe, "datasets": {"objects": {"train": "nope"}}}), tmp_path)
    with pytest.raises(ConfigError, match="linear_probe names backbone 'gone'"):
        plan(base_config(linear_probe={**probe, "backbones": ["gone"]}), tmp_path)
    with pytest.raises(ConfigError, match="is a task's name"):
        plan(
            base_config(
                train={"dataset": "shapes_train", "recipes": {"linear_probe-full": {"datasets": ["shapes_train"]}}}
            ),
            tmp_path,
        )


@pytest.mark.parametrize("offline", [False, True])
def test_registry_weights_need_the_cache_only_offline(tmp_path, monkeypatch, offline):
    import dcsm_cache.pipeline.tokens as tokens

    asked = []
    monkeypatch.setattr(tokens, "weights_cached", lambda spec: asked.append(spec.spec) or False)  # an empty cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    cfg = base_config(
        backbones={"hub": {"model": "ViT-B-16-quickgelu.openai"}, "bare": {"model": "ViT-B-16"}},
        evaluate={"backbones": ["hub", "bare"], "benchmarks": {"shapes_binding": {"scorers": ["cosine"]}}},
        zeroshot=None,
        pretrain={},
    )
    p = plan(cfg, tmp_path)
    assert "results/mine/bare/shapes_binding/cosine.json" in p.targets
    assert ("results/mine/hub/shapes_binding/cosine.json" in p.targets) is not offline
    assert [(m.path, m.name) for m in p.missing] == (
        [("the Hugging Face cache (HF_HUB_OFFLINE is set: run once without it)", "hub")] if offline else []
    )
    assert asked == (["ViT-B-16-quickgelu.openai"] if offline else [])


def test_a_tokenizer_from_the_hub_needs_the_cache_offline(tmp_path, monkeypatch):
    """SigLIP's tokenizer is read from its hub repo even with random weights: offline and uncached, it is listed."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = base_config(
        backbones={"siglip": {"model": "ViT-B-16-SigLIP"}, "bare": {"model": "ViT-B-16"}},
        evaluate={"backbones": ["siglip", "bare"], "benchmarks": {"shapes_binding": {"scorers": ["cosine"]}}},
        zeroshot=None,
        pretrain={},
    )
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty"))
    p = plan(cfg, tmp_path)
    assert "results/mine/bare/shapes_binding/cosine.json" in p.targets
    assert not any("/siglip/" in t for t in p.targets)
    assert [(m.name, "timm/ViT-B-16-SigLIP" in m.path) for m in p.missing] == [("siglip", True)]


def test_the_embedded_default_and_the_paper_config_plan_cleanly(tmp_path):
    default = plan(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), tmp_path)
    assert default.missing == () and default.name == "default" and len(default.targets) == default.requested
    assert sum("/linear_probe-" in t for t in default.targets) == 6  # the whole train split and five shots
    paper = plan(yaml.safe_load((REPO / "config" / "paper.yaml").read_text()), tmp_path)
    assert paper.name == "paper" and paper.targets == () and paper.refusal()
    missing = {m.path for m in paper.missing}
    assert "data/NegBench/evaluation data/images/COCO_val_mcq_llama3.1_rephrased.csv" in missing  # the path to make
    assert not any("\\" in path for path in missing), sorted(missing)
    assert {"data/train/cifar10", "data/train/food101"} <= {m.path for m in paper.missing}


# ---------------------------------------------------------------- the files a benchmark is known by


def _layouts():
    from test_benchmarks import make_clevr, make_ncd, make_vg_attr, make_whatsup_a
    from test_benchmarks_negation import make_ccneg, make_negbench, make_sugarcrepe
    from test_zeroshot import write_folders

    return {
        "clevr_bind_2obj_gen": make_clevr,
        "ncd_subset1": make_ncd,
        "vg_attr": make_vg_attr,
        "whatsUp_A": make_whatsup_a,
        "negbench_voc": lambda root: make_negbench(
            root,
            root / "NegBench" / "evaluation data" / "images",
            "VOC2007_mcq_llama3.1_rephrased.csv",
            "VOC2007/JPEGImages",
            "/x",
        ),
        "ccneg": make_ccneg,
        "sugarcrepe": make_sugarcrepe,
        "imagefolder": lambda root: write_folders(root, None, 1),
    }


@pytest.mark.parametrize(
    "key",
    [
        "clevr_bind_2obj_gen",
        "ncd_subset1",
        "vg_attr",
        "whatsUp_A",
        "negbench_voc",
        "ccneg",
        "sugarcrepe",
        "imagefolder",
    ],
)
def test_a_benchmark_is_known_by_a_file_its_native_layout_has(tmp_path, key):
    root = tmp_path / "data"
    assert not any((root / f).exists() for f in expected_files(key))
    root.mkdir()
    _layouts()[key](root)
    load_benchmark(key, str(root))  # the stand-in is a real copy of the layout
    assert any((root / f).exists() for f in expected_files(key))


def test_every_registered_loader_has_a_fingerprint_and_expected_files():
    """A loader in any room (benchmarks/, formats/) is planned and fingerprinted, never a crash of the DAG."""
    from dcsm_cache.pipeline.benchmarks import BENCHMARKS, expected_files

    for name in BENCHMARKS:
        assert len(code.items_fingerprint(name)) == 12, name
        assert isinstance(expected_files(name), tuple), name
