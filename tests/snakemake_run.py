"""The real `snakemake` binary on the real Snakefile, for the workflow tests (a helper module, not a test).

    proc = snakemake(folder, DEFAULT, "-n")      # a dry run of the tiny embedded default in `folder`
    planned_jobs(proc.output)                    # {"evaluate": 3, "report": 1, ...}

The tiny embedded default's full run is the fixture `default_run`, built once a pytest run (tests/conftest.py): the
workflow tests and the browser test read it, and copy it before they change anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = shutil.which("snakemake")
DEFAULT = [REPO / "config" / "config.yaml", REPO / "tests" / "workflow" / "default.yaml"]
PAPER = [REPO / "config" / "paper.yaml", REPO / "tests" / "workflow" / "paper.yaml"]


def snakemake(
    workdir: Path, configfiles, *args: str, env: dict | None = None, ok: bool = True
) -> subprocess.CompletedProcess:
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        *map(str, configfiles),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    proc.output = proc.stdout + proc.stderr
    if ok:
        assert proc.returncode == 0, proc.output[-4000:]
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> count from the 'Job stats' table of a dry run."""
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m[1] != "total"}


def merged(configfiles) -> dict:
    """The config Snakemake builds from several --configfile files: each merged into the last, key by key."""

    def merge(a, b):
        return {
            **a,
            **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v for k, v in b.items()},
        }

    cfg: dict = {}
    for f in configfiles:
        cfg = merge(cfg, yaml.safe_load(Path(f).read_text()))
    return cfg
