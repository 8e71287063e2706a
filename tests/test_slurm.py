"""The tiny workflow on a real one-node SLURM (tests/slurm_cluster.py) gives what a local `--cores` run gives.

The cluster is started in a fresh folder; Snakemake runs with config/profiles/slurm, its EDIT lines
pointed at the test cluster (its partition, no GPU, small memory). A table of 22 images is read,
extracted in 3 parts and scored: every rule but the gathering one is its own `sbatch` job, so the
3 extraction parts are 3 SLURM jobs, each seen by squeue as finished with its own job id and a log
named after it; the store equals the local run's bit for bit and the result file is the same. The
daemons are stopped by their PIDs. Skipped where the SLURM binaries, the executor plugin or root are
absent (`.ci/run` installs `slurm-wlm munge` and the plugin, and runs as root).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from slurm_cluster import PARTITION, SlurmCluster, why_not
from test_parts import DEFAULT, STORE, assert_same_store, jobs, write_table, workflow_config

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "config" / "profiles" / "slurm" / "config.yaml"
SNAKEMAKE = shutil.which("snakemake")
TARGET = "results/default/tiny/my_set/cosine.json"
NO_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is None


def needs_cluster(test):
    """Slow, and skipped (saying why) without snakemake, the executor plugin, or what a cluster needs."""
    for mark in (
        pytest.mark.slow,
        pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH"),
        pytest.mark.skipif(NO_PLUGIN, reason="snakemake-executor-plugin-slurm is not installed (in the test extra)"),
        pytest.mark.skipif(why_not() is not None, reason=f"no SLURM cluster can start here: {why_not()}"),
    ):
        test = mark(test)
    return test


def test_profile_documents_the_cluster_settings():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    assert "slurm_partition" in profile["default-resources"] and "runtime" in profile["default-resources"]
    assert profile["set-resources"]["extract_part"]["gpu"] == 1
    assert "slurm_account" in PROFILE.read_text()  # documented, to uncomment


def profile_on_this_cluster(folder: Path) -> Path:
    """config/profiles/slurm with its EDIT lines pointed at the test cluster, and its polling made quick."""
    profile = yaml.safe_load(PROFILE.read_text())
    for resources in (profile["default-resources"], *profile["set-resources"].values()):
        resources["slurm_partition"] = PARTITION
        resources.pop("gpu", None)  # the test node has none
        resources["mem_mb"] = 1000
    profile.update(
        {
            "cores": 1,  # each job asks for 1 of the node's CPUs: two run side by side
            "latency-wait": 5,
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 2,
        }
    )
    (folder / "profile").mkdir(parents=True)
    (folder / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder / "profile"


def snakemake(folder: Path, *args: str, env: dict | None = None) -> str:
    # Without accounting a wrong status command hangs Snakemake past SIGTERM: KILL it after a bound.
    cmd = ["timeout", "-s", "KILL", "600", SNAKEMAKE, TARGET, "-s", str(REPO / "Snakefile"), "--directory"]
    cmd += [str(folder), *args, "--configfile", *map(str, DEFAULT), str(workflow_config(folder, 3))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=660, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


@needs_cluster
def test_tiny_workflow_on_slurm_equals_a_local_run(tmp_path):
    local, remote = tmp_path / "local", tmp_path / "remote"
    write_table(local)
    shutil.copytree(local / "data", remote / "data")  # the same files, modification times included
    snakemake(local, "--cores", "2")
    profile = profile_on_this_cluster(tmp_path)
    with SlurmCluster(tmp_path / "slurm", memory_mb=4000) as cluster:
        out = snakemake(remote, "--profile", str(profile), env=cluster.env)
        seen = cluster.jobs()
    assert jobs(out) == {"items": 1, "extract_part": 3, "extract": 1, "evaluate": 1}, out

    by_rule = {}
    for job in seen:
        assert job["state"] == "COMPLETED", seen
        by_rule.setdefault(job["comment"].split("_wildcards")[0], []).append(job["id"])
    assert sorted(by_rule) == ["rule_evaluate", "rule_extract_part", "rule_items"], seen  # gathering is local
    parts = by_rule["rule_extract_part"]
    assert len(set(parts)) == 3
    logs = {p.stem: p for p in (remote / ".snakemake" / "slurm_logs" / "rule_extract_part").rglob("*.log")}
    assert set(parts) <= set(logs), (parts, sorted(logs))  # each part's log is named after its SLURM job id
    for job_id in parts:
        assert "rule extract_part:" in logs[job_id].read_text()

    assert_same_store(local / STORE, remote / STORE, skip=("manifest",))  # the manifest's path in its folder
    assert json.loads((remote / TARGET).read_text()) == json.loads((local / TARGET).read_text())
