"""Train the DCSM scorer again with some settings changed, on a finished default run's stores, and print its scores.

    python scripts/scorer_variant.py --workdir runs/pt800 --name maxsim-base \
        --set 'scorer={"global_cosine":false,"residual":true,"maxsim_residual":true}'

The scorer's side of the study behind the default (docs/experiments.md): the backbone and its stores
stay as a `default_variant.py` run left them; `dcsm-cache train` runs with the run's own training
settings (its config.yaml) updated by `--set` (later keys win), writing WORKDIR/models/variants/NAME.pt,
then `dcsm-cache eval` scores the three probe sets with it. Prints accuracy test / held-out per
family and the final validation accuracy on `val` and on `heldout_val` (the scenes with held-out
combos: what a variant is chosen on). Last line: one JSON object of those figures.
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

FAMILIES = ("binding", "spatial", "negation")


def run(cmd: list[str], log: Path, env: dict) -> None:
    with open(log, "a") as f:
        if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode:
            sys.exit(f"failed: {' '.join(cmd)} (see {log})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", required=True, type=Path, help="a finished default_variant.py run")
    ap.add_argument("--name", required=True)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE, as `dcsm-cache train --set`")
    args = ap.parse_args()
    w = args.workdir
    config = yaml.safe_load((w / "config.yaml").read_text())
    backbone = config["evaluate"]["backbones"][0]
    env = {**os.environ, "DCSM_CPU_ISA": str(config.get("cpu_isa", "native"))}  # as the workflow's jobs run
    settings = {k: json.dumps(v, separators=(",", ":")) for k, v in config["train"].get("settings", {}).items()}
    for item in args.sets:
        key, _, value = item.partition("=")
        settings[key] = value
    out = w / "models" / "variants" / f"{args.name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    log = w / "models" / "variants" / f"{args.name}.log"
    log.unlink(missing_ok=True)
    flags = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    store = w / "stores" / backbone / f"{config['train']['dataset']}.zarr"
    t = time.monotonic()
    run(["dcsm-cache", "--quiet", "train", "--store", str(store), "--out", str(out), *flags], log, env)
    got: dict = {}
    for family in FAMILIES:
        result = w / "models" / "variants" / f"{args.name}-{family}.json"
        probe = w / "stores" / backbone / f"shapes_{family}.zarr"
        run(
            [
                "dcsm-cache",
                "--quiet",
                "eval",
                "--store",
                str(probe),
                "--scorer",
                "dcsm",
                "--checkpoint",
                str(out),
                "--out",
                str(result),
            ],
            log,
            env,
        )
        subsets = json.loads(result.read_text())["subsets"]
        got |= {f"{family}/{s}": round(100 * subsets[s]["accuracy"], 1) for s in ("test", "heldout")}
    import torch

    history = torch.load(out, map_location="cpu", weights_only=True)["summary"]["history"][-1]
    got["validation"] = {k: round(100 * v, 1) for k, v in history.items() if k.endswith("_accuracy")}
    print(f"{args.name:>16}  " + "  ".join(f"{k} {v}" for k, v in got.items()))
    print(json.dumps({"name": args.name, "sets": args.sets, "seconds": round(time.monotonic() - t)} | got))


if __name__ == "__main__":
    main()
