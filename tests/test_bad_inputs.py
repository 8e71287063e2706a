"""Every bad input is one line: each case runs the CLI and checks exit code 2, a single line on stderr
naming the file (or key), and that the output folder is byte for byte as it was (a hash of it).

Table-driven over the benchmark loaders that read an annotation file (missing, empty, truncated, a
record missing a field, a wrong type, a `.pt` holding code), then a corrupt JPEG, a missing PNG, an
unknown config key, a store from another backbone, an old and a truncated scorer checkpoint, and a
full disk (RLIMIT_FSIZE in a subprocess). Property-based (hypothesis): the manifest reader and the
annotation loaders raise only DcsmCacheError on arbitrary bytes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from dcsm_cache.cli import main
from dcsm_cache.errors import DcsmCacheError, IncompleteStoreError
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.items import read_manifest
from dcsm_cache.stores import FeatureStore

from conftest import TINY_BACKBONE
from test_benchmarks import QA, make_clevr, make_vg_attr, make_whatsup_a, write_image, write_json
from test_benchmarks_negation import make_ccneg, make_negbench, make_sugarcrepe
from test_retrieval import karpathy_doc, write_images


def make_qa(root: Path) -> None:
    recs = QA[("coco", "one")]
    write_json(root / "coco_qa_one_obj.json", recs)
    for r in recs:
        write_image(root / "val2017" / f"{r[0]:012d}.jpg")


NEGBENCH_CSV = "NegBench/evaluation data/images/COCO_val_mcq_llama3.1_rephrased.csv"


def make_negbench_coco(root: Path) -> None:
    write_image(root / "val2017" / "000000000632.jpg")  # the one image the shared rows leave out
    make_negbench(root, (root / NEGBENCH_CSV).parent, Path(NEGBENCH_CSV).name, "val2017", "/data/coco/val2017")


def make_karpathy(root: Path) -> None:
    doc = karpathy_doc(n_test=3)
    write_json(root / "dataset_coco.json", doc)
    write_images(root / "val2014", [r["filename"] for r in doc["images"]])


# benchmark -> (maker, annotation file under root, a required field of its records)
LOADERS = {
    "clevr_bind_2obj_gen": (make_clevr, "clevr_bind/two_object/gen.csv", "pos"),
    "vg_attr": (make_vg_attr, "visual_genome_attribution.json", "true_caption"),
    "whatsUp_A": (make_whatsup_a, "controlled_images_dataset.json", "caption_options"),
    "coco_spatial1": (make_qa, "coco_qa_one_obj.json", 1),
    "sugarcrepe": (lambda r: make_sugarcrepe(r), "data/add_att.json", "negative_caption"),
    "ccneg": (lambda r: make_ccneg(r), "ccneg_dataset/ccneg_preprocessed.pt", "json"),
    "karpathy_coco": (make_karpathy, "dataset_coco.json", "filename"),
    "negbench_coco": (make_negbench_coco, NEGBENCH_CSV, "image_path"),
}


def folder_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _first_holding(doc, key):
    """The first record (dict, or list for index keys) that holds `key`, depth first."""
    if isinstance(doc, dict):
        if key in doc:
            return doc
        values = doc.values()
    elif isinstance(doc, list):
        if isinstance(key, int) and len(doc) > key and not isinstance(doc[0], (list, dict)):
            return doc
        values = doc
    else:
        return None
    return next((r for r in map(lambda v: _first_holding(v, key), values) if r is not None), None)


def _edit_pt(path: Path, key: str, how: str) -> None:
    data = torch.load(path, weights_only=True)
    rec = data["annotations"][-1]
    if how == "drop":
        del rec[key]
    else:
        rec[key] = 12345
    torch.save(data, path)


OWNED = "owned-by-a-pickle"  # the file the pickle below writes beside the annotation, if it ever runs


class Code:  # a pickle that runs code when loaded without weights_only
    def __init__(self, folder: Path):
        self.folder = folder

    def __reduce__(self):
        return (os.system, (f"echo owned > {self.folder / OWNED}",))


def mutate(path: Path, key, how: str) -> None:
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "code":
        with open(path, "wb") as f:
            pickle.dump({"image_paths": Code(path.parent), "annotations": []}, f)
    elif path.suffix == ".pt":
        _edit_pt(path, key, "drop" if how == "no_field" else "type")
    elif path.suffix == ".csv":  # a CSV has no types: drop the column
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        col = rows[0].index(key)
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([c for i, c in enumerate(r) if i != col] for r in rows)
    else:
        doc = json.loads(path.read_text())
        rec = _first_holding(doc, key)
        if how == "no_field":
            del rec[key]
        else:
            rec[key] = 12345 if not isinstance(key, int) else {"not": "a caption"}
        path.write_text(json.dumps(doc))


CASES = [
    (bench, how)
    for bench, (_, ann, _) in LOADERS.items()
    for how in ("missing", "empty", "truncated", "no_field", "wrong_type", *(("code",) if ann.endswith(".pt") else ()))
    if not (ann.endswith(".csv") and how == "wrong_type")
]


def check_one_line(res, out: Path, before: str, *names: str) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dcsm-cache: error: "), res.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert folder_hash(out) == before


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "m.json").write_text('{"an earlier": "manifest"}')
    return folder


@pytest.mark.parametrize("bench,how", CASES)
def test_a_bad_annotation_is_one_line(tmp_path, out, bench, how):
    make, ann, key = LOADERS[bench]
    root = tmp_path / "root"
    root.mkdir()
    make(root)
    load_benchmark(bench, str(root))  # the folder as made is good
    mutate(root / ann, key, how)
    before = folder_hash(out)
    res = CliRunner().invoke(main, ["items", bench, "--root", str(root), "--out", str(out / "m.json")])
    check_one_line(res, out, before, Path(ann).name)
    assert not list(tmp_path.rglob(OWNED))


# ---------------------------------------------------------------- images, config, stores, checkpoints


def _manifest_with(world: Path, tmp_path: Path, how: str) -> tuple[Path, str]:
    """A copy of a world's spatial manifest, its first image corrupt (JPEG bytes cut) or missing."""
    root = tmp_path / "world"
    shutil.copytree(world, root)
    ds = load_benchmark("shapes_spatial", str(root))
    image = root / ds.images[0].path
    if how == "corrupt":
        image.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)  # a JPEG header and nothing else
    else:
        image.unlink()
    from dcsm_cache.pipeline.items import write_manifest

    write_manifest(ds, tmp_path / "m.json")
    return tmp_path / "m.json", ds.images[0].path


EXTRACT = ["--backbone", TINY_BACKBONE, "--device", "cpu", "--workers", "0", "--set", "progress=false"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["corrupt", "missing"])
def test_a_bad_image_stops_with_fail_and_is_listed_with_skip(world, tmp_path, out, how):
    manifest, name = _manifest_with(world, tmp_path, how)
    args = ["extract", "--items", str(manifest), "--out", str(out / "s.zarr"), *EXTRACT]
    res = CliRunner().invoke(main, [*args, "--on-bad-image", "fail"])
    assert res.exit_code == 2 and Path(name).name in res.stderr.splitlines()[-1]
    assert "--on-bad-image skip" in res.stderr
    with pytest.raises(IncompleteStoreError):  # the part was not marked finished
        FeatureStore.open(out / "s.zarr")
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    bad = FeatureStore.open(out / "s.zarr").bad_images()
    assert [(b["row"], b["path"]) for b in bad] == [(0, name)]
    assert ("missing" if how == "missing" else "cannot be read") in bad[0]["reason"]
    assert "1 of" in res.output and "could not be read" in res.output and "delete" in res.output
    again = CliRunner().invoke(main, args)  # the complete store is reused, and says so again
    assert again.exit_code == 0 and "could not be read" in again.output
    res = CliRunner().invoke(
        main,
        ["eval", "--store", str(out / "s.zarr"), "--scorer", "cosine", "--out", str(out / "r.json"), "--device", "cpu"],
    )
    result = json.loads((out / "r.json").read_text())
    n = sum(it.image == 0 for it in read_manifest(manifest).items)
    assert (
        res.exit_code == 0
        and result["n_skipped"] == n > 0
        and result["n_items"] + n == len(read_manifest(manifest).items)
    )


def test_an_unknown_config_key_is_one_line(manifests, out):
    before = folder_hash(out)
    res = CliRunner().invoke(
        main,
        [
            "extract",
            "--items",
            str(manifests["shapes_spatial"]),
            "--out",
            str(out / "s.zarr"),
            *EXTRACT,
            "--set",
            "nope=1",
        ],
    )
    check_one_line(res, out, before, "nope")


@pytest.fixture(scope="module")
def checkpoint(stores, tmp_path_factory) -> Path:
    from dcsm_cache.pipeline.train import TrainConfig, train

    path = tmp_path_factory.mktemp("ckpt") / "dcsm.pt"
    train(stores["shapes_train"], path, TrainConfig(steps=1, batch_size=8, text_len=16, device="cpu", progress=False))
    return path


def _bad_checkpoint(src: Path, dst: Path, how: str) -> None:
    if how == "truncated":
        dst.write_bytes(src.read_bytes()[:1000])
        return
    ckpt = torch.load(src, weights_only=True)
    if how == "old":
        ckpt["format"] = "dcsm-cache/scorer-v1"
    else:  # trained on another backbone
        ckpt["backbone_id"], ckpt["backbone"] = "0123456789abcdef", "ViT-B-32.openai"
    torch.save(ckpt, dst)


@pytest.mark.parametrize("how,named", [("truncated", "c.pt"), ("old", "c.pt"), ("other_backbone", "ViT-B-32.openai")])
def test_a_bad_checkpoint_or_a_store_of_another_backbone_is_one_line(stores, checkpoint, tmp_path, out, how, named):
    _bad_checkpoint(checkpoint, tmp_path / "c.pt", how)
    before = folder_hash(out)
    res = CliRunner().invoke(
        main,
        ["eval", "--store", str(stores["shapes_spatial"]), "--scorer", "dcsm", "--checkpoint", str(tmp_path / "c.pt"),
         "--out", str(out / "r.json"), "--device", "cpu"],
    )  # fmt: skip
    check_one_line(res, out, before, named)


def test_a_full_disk_is_one_line_and_leaves_the_old_file(world, out):
    """RLIMIT_FSIZE (SIGXFSZ ignored, so the write fails with EFBIG as on a full disk)."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    before = folder_hash(out)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", "from dcsm_cache.cli import main; main()", "items", "shapes_spatial",
         "--root", str(world), "--out", str(out / "m.json")],
        capture_output=True, text=True, preexec_fn=limit, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "no space left writing" in lines[0] and "m.json" in lines[0], proc.stderr
    assert folder_hash(out) == before


# ---------------------------------------------------------------- arbitrary bytes


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=600), st.text(max_size=600).map(str.encode)))
def test_the_manifest_reader_raises_only_its_own_errors(tmp_path, data):
    path = tmp_path / "m.json"
    path.write_bytes(data)
    try:
        read_manifest(path)
    except DcsmCacheError:
        pass


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow
@pytest.mark.parametrize("bench", [b for b in LOADERS if not LOADERS[b][1].endswith(".pt")])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), JSONISH.map(lambda d: json.dumps(d).encode())))
def test_annotation_loaders_raise_only_their_own_errors(tmp_path_factory, bench, data):
    make, ann, _ = LOADERS[bench]
    root = tmp_path_factory.mktemp(bench)
    make(root)
    (root / ann).write_bytes(data)
    try:
        load_benchmark(bench, str(root))
    except DcsmCacheError:
        pass


@pytest.mark.slow
@pytest.mark.parametrize("fmt,file", [("table", "my.csv"), ("table", "my.jsonl"), ("manifest", "my.json")])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=300), JSONISH.map(lambda d: json.dumps(d).encode())))
def test_your_own_data_formats_raise_only_their_own_errors(tmp_path_factory, fmt, file, data):
    root = tmp_path_factory.mktemp(fmt)
    write_image(root / "a.jpg")
    (root / file).write_bytes(data)
    try:
        load_benchmark(fmt, str(root), file=file)
    except DcsmCacheError:
        pass
