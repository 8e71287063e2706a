# Helpers shared by the rules: what this machine can run (the plan), config lookups, and each rule's params:
# `--set` flags from settings in canonical form, and a fingerprint of the package code each stage runs.
import os
import re
import sys

from dcsm_cache.pipeline.scorers import SCORERS
from dcsm_cache.workflow import Worlds, code_fingerprint, items_fingerprint, plan, probe_shots, recipes, set_flags
from dcsm_cache.workflow.parts import extraction
from dcsm_cache.workflow.domains import under

# Before the DAG: the results whose weights, folders and checkpoints are here. The rest is listed once
# and left out; strict: true, or a config of which nothing can run, stops with the same list.
PLAN = plan(config)
NAME = PLAN.name
if PLAN.refusal():
    sys.exit(PLAN.refusal())
if PLAN.missing:
    print(PLAN.describe(), file=sys.stderr)

# The scorers trained here by name (dcsm_cache/workflow/recipes.py): `train: dataset:` is the default recipe
# (the `train` job, models/{backbone}/dcsm.pt); `train: recipes:` are the others (`train_recipe` jobs).
RECIPES = recipes(config)
TRAINED = next(s.name for s in SCORERS.values() if s.checkpoint == "trained")  # the scorer a recipe trains
NAMED = [r for r in RECIPES if r != TRAINED]  # the recipes of `train: recipes:`


def name_pattern(names):
    """A wildcard constraint matching exactly these names (none: a pattern nothing matches)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def sets(settings):
    """{'steps': 400} -> "--set steps=400" (sorted keys, canonical JSON values: YAML style never reruns a job)."""
    return set_flags(settings)


def dataset_cfg(name):
    return config["datasets"][name]


# The worlds drawn here and the benchmark folders exported from them (dcsm_cache/workflow/worlds.py).
WORLDS = Worlds(config)


def world_marker(name):
    """A dataset read from a world drawn here, or from an export of one, waits for the file its folder's
    rule writes last (rules/world.smk)."""
    root = dataset_cfg(name)["root"]
    if DOMAINS and under(root, DOMAINS.root):  # the domain study's rendered sets (rules/domains.smk)
        return [f"{DOMAINS.root}/domains.json"]
    marker = WORLDS.marker(root)
    return [marker] if marker else []


def dataset_file(name):
    """A dataset read from one file of the user's own (option `file`: a table, a hand-written manifest) is remade
    when that file changes."""
    cfg = dataset_cfg(name)
    file = (cfg.get("options") or {}).get("file")
    return [os.path.join(cfg["root"], file)] if file else []


def backbone_model(name):
    return config["backbones"][name]["model"]


def backbone_weights(name):
    """Weights built by this workflow (the `pretrain` rule) are inputs of extraction; others are not."""
    return [f"models/{name}.pt"] if name in config.get("pretrain", {}) else []


def store(backbone, dataset):
    return f"stores/{backbone}/{dataset}.zarr"


def extraction_of(wc):
    """The dataset's extraction jobs: nparts, settings and resources (dcsm_cache/workflow/parts.py)."""
    return extraction(config, wc.dataset)


def items_code(wc):
    cfg = dataset_cfg(wc.dataset)
    return items_fingerprint(cfg.get("benchmark", wc.dataset), bool(cfg.get("paper_compat")))


def task_settings(task, wc):
    """A zero-shot, retrieval or linear-probe dataset's settings (`zeroshot: datasets: NAME: settings:`) as flags."""
    return sets((config[task]["datasets"][wc.dataset] or {}).get("settings"))


def probe_train(dataset):
    """The train dataset a linear probe's test dataset is probed with (`linear_probe: datasets: TEST: train:`)."""
    return config["linear_probe"]["datasets"][dataset]["train"]


def probe_flags(wc):
    """`--shots K` and a `--seed` per seed for a few-shot probe; the first seed alone on the whole train split."""
    seeds = config["linear_probe"].get("seeds") or [0]
    shots = probe_shots(f"linear_probe-{wc.shots}")
    if shots is None:
        return f"--seed {seeds[0]}"
    return f"--shots {shots} " + " ".join(f"--seed {s}" for s in seeds)


def scorer_checkpoint(wc):
    """Where the registry says the scorer's checkpoint comes from: the scorer this workflow trains, or
    the file the backbone's config entry names (dcsm-paper: the reference's checkpoint)."""
    source = SCORERS[wc.scorer].checkpoint
    if source == "trained":
        return [f"models/{wc.backbone}/dcsm.pt"]
    if source is not None:
        return [config["backbones"][wc.backbone][source]]
    return []


def scorer_flags(wc):
    return " ".join(f"--checkpoint {c}" for c in scorer_checkpoint(wc))


def recipe_stores(wc):
    """A recipe's training stores, each a `--store` flag (dcsm-cache train takes them together)."""
    return " ".join(f"--store {store(wc.backbone, d)}" for d in RECIPES[wc.recipe].datasets)


wildcard_constraints:
    backbone="[^/]+",
    dataset="[^/]+",
    part="[0-9]+",
    nparts="[0-9]+",
    benchmark="[^/]+",
    scorer="|".join(re.escape(s) for s in SCORERS),
    recipe=name_pattern(NAMED),
    shots="full|[1-9][0-9]*shot",


# The report's gallery (rules/report.smk): one per backbone whose trained scorer is evaluated here.
def gallery_benchmarks():
    """Backbone -> the benchmarks its trained scorer is evaluated on here (from the plan's result files), those
    of `report: gallery_benchmarks:` where the config names some."""
    chosen = config["report"].get("gallery_benchmarks")
    out = {}
    for path in PLAN.targets:
        parts = path.split("/")
        if len(parts) == 5 and parts[4] == "dcsm.json" and (chosen is None or parts[3] in chosen):
            out.setdefault(parts[2], []).append(parts[3])
    return out


GALLERY = gallery_benchmarks()


def gallery_flags(wc):
    return " ".join(f"--store {store(wc.backbone, b)}" for b in sorted(GALLERY[wc.backbone]))
