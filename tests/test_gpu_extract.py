"""benchmarks/gpu_extract.sh, the one script a short GPU slot runs, dry-run on the CPU so that it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_gpu_script_runs_every_benchmark_on_the_cpu_and_collects_their_figures(tmp_path):
    env = {**os.environ, "DEVICE": "cpu", "SMALL": "1", "OUT": str(tmp_path / "out")}
    run = subprocess.run(
        ["bash", "benchmarks/gpu_extract.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = [json.loads(line) for line in (tmp_path / "out" / "figures.jsonl").read_text().splitlines()]
    by = {f["benchmark"]: f for f in figures}
    assert set(by) == {"extract", "null_model", "store_write", "train"}  # (decode=device needs CUDA)
    assert by["extract"]["shapes_clip_tiny_pipeline_over_forward"] > 0
    assert {"plain_write_img_s", "null_over_plain_write", "decode_img_s", "null_decode_over_decode"} <= set(
        by["null_model"]
    )
    assert by["store_write"]["store_write_over_plain_write"] > 0 and by["train"]["store_over_recompute"] > 0
    assert all((tmp_path / "out" / f"{name}.log").exists() for name in by)
