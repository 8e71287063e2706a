"""A store's extraction as Snakemake part jobs (dcsm_cache/workflow/parts.py, rules/extract.smk).

The config's reading is checked directly; the jobs through the real `snakemake` binary: a table of
22 small images extracted in 3 parts (chunks of 4 rows, so each part holds rows) equals the same
extraction in 1 part bit for bit, every array and attribute but the part count; a part whose job
was killed (no job marker, no store marker, its rows half written, nothing gathered) is redone alone
on rerun, and the
finished parts' chunk files are not touched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from dcsm_cache.errors import ConfigError
from dcsm_cache.stores.feature_store import finished_attrs
from dcsm_cache.workflow.parts import DEFAULT_RESOURCES, extraction, part_marker

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = shutil.which("snakemake")
DEFAULT = [REPO / "config" / "config.yaml", REPO / "tests" / "workflow" / "default.yaml"]
N_IMAGES = 22
STORE = "stores/tiny/my_set.zarr"
ARRAYS = ("image/tokens", "image/pooled", "image/valid", "text/tokens", "text/pooled", "text/ids", "text/length")


# ---------------------------------------------------------------- reading the config


def config(extract: dict | None = None, own: dict | None = None) -> dict:
    return {"extract": extract or {}, "datasets": {"d": {"root": "x", **({"extract": own} if own else {})}}}


def test_defaults_are_one_part_and_the_default_resources():
    ex = extraction(config({"settings": {"batch_size": 8}}), "d")
    assert ex.nparts == 1 and dict(ex.settings) == {"batch_size": 8} and dict(ex.resources) == DEFAULT_RESOURCES
    assert ex.markers("b", "d") == ["stores/b/d.parts/0-of-1.done"]
    assert ex.threads == 0  # every core


def test_threads_from_the_section_and_the_dataset_block():
    assert extraction(config({"threads": 1}), "d").threads == 1
    assert extraction(config({"threads": "2"}), "d").threads == 2  # as `--config` gives it
    ex = extraction(config({"threads": 1}, {"threads": 0, "batch_size": 4}), "d")
    assert ex.threads == 0 and dict(ex.settings) == {"batch_size": 4}  # threads is not a setting


def test_a_dataset_block_overrides_parts_resources_and_settings():
    cfg = config(
        {"nparts": 2, "resources": {"mem_mb": 8000, "gpu": 1}, "settings": {"batch_size": 8, "workers": 2}},
        {"nparts": "3", "resources": {"runtime": 5}, "text_padding": "reference", "batch_size": 4},
    )
    ex = extraction(cfg, "d")
    assert ex.nparts == 3
    assert dict(ex.resources) == {"gpu": 1, "mem_mb": 8000, "runtime": 5}
    assert dict(ex.settings) == {"batch_size": 4, "workers": 2, "text_padding": "reference"}
    assert ex.markers("b", "d") == [part_marker("b", "d", i, 3) for i in range(3)]
    assert extraction(config({"nparts": 2}), "d").nparts == 2


@pytest.mark.parametrize(
    "extract, own, message",
    [
        ({"nparts": 0}, None, "config: extract: nparts=0"),
        (None, {"nparts": "two"}, "datasets: d: extract: nparts='two'"),
        ({"settings": {"nparts": 2}}, None, "set by the workflow"),
        (None, {"part": 1}, "datasets: d: extract: part and nparts are set by the workflow"),
        ({"resources": [1]}, None, "resources must be a mapping"),
        ({"threads": -1}, None, "config: extract: threads=-1 is not a whole number of cores"),
        (None, {"threads": True}, "datasets: d: extract: threads=True"),
    ],
)
def test_bad_parts_are_config_errors_naming_the_key(extract, own, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        extraction(config(extract, own), "d")


def test_an_unknown_dataset_is_named():
    with pytest.raises(ConfigError, match="'e'"):
        extraction(config(), "e")


# ---------------------------------------------------------------- through the real snakemake


def test_extraction_jobs_take_the_configured_cores(tmp_path):
    """The embedded default's `extract: threads: 1`, and a dataset's own `threads: 0` (every core), in a dry run."""
    from snakemake.utils import update_config
    from snakemake_run import DEFAULT, snakemake

    own = tmp_path / "threads.yaml"
    own.write_text(yaml.safe_dump({"datasets": {"shapes_train": {"root": "data/world", "extract": {"threads": 0}}}}))
    dry = snakemake(tmp_path, [*DEFAULT, own], "-n").output
    jobs = [block for block in dry.split("\nrule ") if block.startswith("extract_part:")]
    threads = {
        re.search(r"dataset=([\w+]+)", job)[1]: int((re.search(r"\n\s+threads: (\d+)", job) or [0, 1])[1])
        for job in jobs
    }
    config = {}
    for path in DEFAULT:  # laid over each other as snakemake lays --configfile files
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    pretraining_only = {p["dataset"] for p in config["pretrain"].values()}
    assert set(threads) == set(config["datasets"]) - pretraining_only
    assert len(jobs) == len(threads) and threads.pop("shapes_train") == 2  # one part each; `--cores 2`
    assert set(threads.values()) == {1}, threads


def write_table(folder: Path, n: int = N_IMAGES) -> None:
    """n one-colour images and a CSV of two captions each (the `table` benchmark's layout)."""
    from PIL import Image

    data = folder / "data" / "mine"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    words = ["red", "green", "blue", "yellow", "purple", "orange", "grey"]
    lines = ["image,caption_0,caption_1,correct"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(data / f"{i}.png")
        a, b = words[i % 7], words[(i * 3 + 1) % 7]
        lines.append(f"{i}.png,a {a} square number {i},a {b} circle,{i % 2}")
    (data / "data.csv").write_text("\n".join(lines) + "\n")


def workflow_config(folder: Path, nparts: int) -> Path:
    path = folder / f"parts{nparts}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "backbones": {"tiny": {"model": "shapes-clip-tiny"}},
                "datasets": {"my_set": {"benchmark": "table", "root": "data/mine", "options": {"file": "data.csv"}}},
                "extract": {"nparts": nparts, "settings": {"batch_size": 16, "chunk_rows": 4, "progress": False}},
                "evaluate": {"backbones": ["tiny"], "benchmarks": {"my_set": {"scorers": ["cosine"]}}},
            }
        )
    )
    return path


def run(folder: Path, configfile: Path, *args: str) -> str:
    cmd = [SNAKEMAKE, "stores/tiny/my_set.done", "-s", str(REPO / "Snakefile"), "--directory", str(folder)]
    cmd += ["--cores", "2", *args, "--configfile", *map(str, DEFAULT), str(configfile)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def jobs(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M) if m[1] != "total"}


def assert_same_store(a: Path, b: Path, skip=("nparts",)) -> None:
    """Every array bit for bit, the same chunks, the same attributes but those in `skip`."""
    ga, gb = zarr.open_group(a, mode="r"), zarr.open_group(b, mode="r")
    for name in ARRAYS:
        x, y = ga[name][:], gb[name][:]
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
        assert ga[name].chunks == gb[name].chunks, name
    attrs = lambda g: {k: v for k, v in g.attrs.asdict().items() if k not in skip}
    assert attrs(ga) == attrs(gb) and ga.attrs["complete"] is True


def chunk_files(store: Path, group: str, rows: range) -> dict[Path, int]:
    """mtime of the chunk files of `group`'s arrays that hold `rows` (chunks of 4 rows: key c/<row // 4>/...)."""
    out = {}
    for f in (store / group).rglob("*"):
        rel = f.relative_to(store / group).parts
        if f.is_file() and len(rel) > 2 and rel[1] == "c" and int(rel[2]) * 4 in rows:
            out[f] = f.stat().st_mtime_ns
    return out


@pytest.mark.slow
@pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake binary not on PATH")
def test_three_part_jobs_equal_one_part_bit_for_bit_and_a_killed_part_is_redone_alone(tmp_path):
    three = tmp_path / "work"
    write_table(three)
    out1 = run(three, workflow_config(three, 1))
    assert jobs(out1) == {"items": 1, "extract_part": 1, "extract": 1}, out1
    one = tmp_path / "one.zarr"
    shutil.copytree(three / STORE, one)
    out3 = run(three, workflow_config(three, 3))  # another part count: the store is made again, in 3 jobs
    assert jobs(out3) == {"extract_part": 3, "extract": 1}, out3
    assert_same_store(one, three / STORE)
    gathered = (three / "logs/extract/tiny/my_set.log").read_text()  # `dcsm-cache parts` of the gathering rule
    rows = {i: tuple(map(int, re.search(rf"part {i} of 3: images (\d+):(\d+)", gathered).groups())) for i in range(3)}
    assert rows == {0: (0, 8), 1: (8, 16), 2: (16, 22)}  # every part holds rows of its own
    for i in range(3):  # each part ran as its own `dcsm-cache extract` job, with its own log
        log = (three / f"logs/extract/tiny/my_set.{i}-of-3.log").read_text()
        assert f"part {i} of 3 done" in log

    # Part 1 was killed: no job marker, no store marker, half its rows written with other values, and
    # so nothing gathered (the gathering rule runs once every part job has finished).
    (three / part_marker("tiny", "my_set", 1, 3)).unlink()
    (three / "stores/tiny/my_set.done").unlink()
    g = zarr.open_group(three / STORE, mode="r+")
    g["image/tokens"][8:12] = 0
    g.attrs.put(finished_attrs(g.attrs.asdict(), {"0": [], "2": []}))  # parts 0 and 2 marked finished, not 1
    kept = {**chunk_files(three / STORE, "image", range(0, 8)), **chunk_files(three / STORE, "image", range(16, 22))}
    assert len(kept) >= 2 * 3  # the kept parts' chunks of tokens, pooled and valid
    again = run(three, workflow_config(three, 3))
    assert jobs(again) == {"extract_part": 1, "extract": 1}, again
    assert set(re.findall(r"output: (\S+)", again)) == {part_marker("tiny", "my_set", 1, 3), "stores/tiny/my_set.done"}
    assert {f: f.stat().st_mtime_ns for f in kept} == kept  # finished parts untouched
    assert_same_store(one, three / STORE)
    assert jobs(run(three, workflow_config(three, 3), "-n")) == {}


def test_chunk_rows_set_the_part_bounds_and_a_store_of_other_chunks_is_not_reused(tmp_path):
    from dcsm_cache.errors import StoreMismatchError
    from dcsm_cache.stores.feature_store import FeatureStore, StoreShape

    shape = StoreShape(n_images=22, n_tokens=4, n_captions=9, text_len=5, dim=3)
    store = FeatureStore.create(tmp_path / "s.zarr", shape, {"backbone": "b"}, nparts=3, chunk_rows=4)
    assert [store.part_rows(i)["image"] for i in range(3)] == [(0, 8), (8, 16), (16, 22)]
    assert store.image_tokens.chunks[0] == store.text_ids.chunks[0] == 4
    store.mark_done(0)
    with pytest.raises(StoreMismatchError, match="chunk rows"):
        FeatureStore.create(tmp_path / "s.zarr", shape, {"backbone": "b"}, nparts=3, chunk_rows=8)
    again = FeatureStore.create(tmp_path / "s.zarr", shape, {"backbone": "b"}, nparts=3, chunk_rows=8, overwrite=True)
    assert again.image_tokens.chunks[0] == 8 and not again.part_done(0)
