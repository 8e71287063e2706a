# Helpers shared by the rules: config lookups and the `--set KEY=VALUE` flags they pass on.
import json
import os
import shlex

from dcsm_cache.pipeline.scorers import SCORERS


def sets(settings):
    """{'steps': 400} -> "--set steps=400" (values as JSON, so lists and booleans survive)."""
    return " ".join(f"--set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in (settings or {}).items())


def dataset_cfg(name):
    return config["datasets"][name]


def world_marker(name):
    """A dataset read from the shapes world depends on the world being generated first."""
    root = dataset_cfg(name)["root"]
    return [f"{root}/world.json"] if root == config["world"]["root"] else []


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


def eval_targets():
    out = []
    for backbone in config["evaluate"]["backbones"]:
        for bench, bcfg in config["evaluate"]["benchmarks"].items():
            out += [
                f"results/{backbone}/{bench}/{scorer}.json"
                for scorer in bcfg["scorers"]
                if SCORERS[scorer].checkpoint in (None, "trained")
                or SCORERS[scorer].checkpoint in config["backbones"][backbone]
            ]
    return out


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


wildcard_constraints:
    backbone="[^/]+",
    dataset="[^/]+",
    benchmark="[^/]+",
    scorer="[^/]+",
