"""Run the embedded default with some settings changed, in a folder of its own, and print its table.

    python scripts/default_variant.py --workdir runs/pt800 --world data/world \
        --set pretrain.shapes-clip.settings.steps=800
    python scripts/default_variant.py --workdir runs/objects --world data/world --from runs/pt800 \
        --set pretrain.shapes-clip.settings.steps=800 --set datasets.shapes_train.options.phrases=true \
        --redo manifests/shapes_train.json

The study behind the default's recipe (docs/experiments.md) is a set of such runs. Each writes
`config/config.yaml` with the `--set` overrides (dotted paths into the YAML, values as YAML) to
WORKDIR/config.yaml, links an already generated world into WORKDIR/data/world (the world is the
same for every variant, so it is drawn once), and runs the real workflow there (with `--from`, on
hard links of another run's models, manifests and stores, remaking what is older than its inputs
and what `--redo` names):
`snakemake --cores N --configfile WORKDIR/config.yaml --directory WORKDIR`. Then it prints, per
scorer, accuracy test / held-out on binding, spatial and negation (results/default/summary.json),
and the DCSM's final validation accuracy on `val` and on `heldout_val` (the scenes with held-out
combos, on which a recipe is chosen). Last line: one JSON object of those figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def set_path(doc: dict, dotted: str, value) -> None:
    *head, last = dotted.split(".")
    for key in head:
        doc = doc.setdefault(key, {})
    doc[last] = value


def figures(workdir: Path) -> dict:
    """{scorer: {benchmark/subset: accuracy %}} from the summary, and the DCSM's last validation scores."""
    out: dict = {}
    for row in json.loads((workdir / "results" / "default" / "summary.json").read_text())["rows"]:
        if row.get("task") == "choice":
            key = row["column"].removeprefix("shapes_")
            out.setdefault(row["scorer"], {})[key] = round(100 * row["accuracy"], 1)
    import torch

    ckpt = torch.load(workdir / "models" / "shapes-clip" / "dcsm.pt", map_location="cpu", weights_only=True)
    history = ckpt.get("summary", {}).get("history") or [{}]
    out["validation"] = {k: round(100 * v, 1) for k, v in history[-1].items() if k.endswith("_accuracy")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--world", required=True, type=Path, help="a world generated with the default's settings")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="dotted.path=YAML value")
    ap.add_argument("--cores", default="all")
    ap.add_argument("--from", dest="base", type=Path, help="a finished run whose models, manifests and stores to reuse")
    ap.add_argument("--redo", action="append", default=[], help="with --from: a file to make again (and what needs it)")
    args = ap.parse_args()
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for item in args.sets:
        path, _, value = item.partition("=")
        set_path(config, path, yaml.safe_load(value))
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    world = args.workdir / config["world"]["root"]
    if not world.exists():
        world.parent.mkdir(parents=True, exist_ok=True)
        world.symlink_to(args.world.resolve())
    if args.base:  # its outputs, hard-linked; only what a changed setting asks for is made again (by file times)
        for folder in ("models", "manifests", "stores"):
            if (args.base / folder).exists() and not (args.workdir / folder).exists():
                subprocess.run(["cp", "-al", str(args.base / folder), str(args.workdir / folder)], check=True)
    cmd = ["snakemake", "-s", str(ROOT / "Snakefile"), "--cores", args.cores, "--directory", str(args.workdir)]
    cmd += ["--rerun-triggers", "mtime", *(["--forcerun", *args.redo] if args.redo else [])] if args.base else []
    cmd += ["--configfile", str(args.workdir / "config.yaml")]
    t = time.monotonic()
    with open(args.workdir / "snakemake.log", "w") as log:
        if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ).returncode:
            sys.exit(f"snakemake failed: see {args.workdir / 'snakemake.log'}")
    got = figures(args.workdir)
    for scorer, row in got.items():
        print(f"{scorer:>12}  " + "  ".join(f"{k} {v:5.1f}" for k, v in row.items()))
    print(json.dumps({"workdir": str(args.workdir), "sets": args.sets, "seconds": round(time.monotonic() - t)} | got))


if __name__ == "__main__":
    main()
