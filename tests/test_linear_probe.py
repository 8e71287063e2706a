"""Linear probes from two stores (`tasks/linear_probe.py`, `dcsm-cache linear-probe`).

The probe's numbers are recomputed with scikit-learn directly on the stores' arrays; stores made
from features built to be linearly separable give 100%, and shuffled labels give chance within the
standard error. Stores of two backbones, one store twice and a test class without train images are
one error line each, and nothing is written.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner
from PIL import Image
from sklearn.linear_model import LogisticRegression

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError, ConfigError, StoreMismatchError
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import Dataset, ImageRef, Item, read_manifest, write_manifest
from dcsm_cache.pipeline.tasks.linear_probe import (
    LinearProbeConfig,
    _first_patch,
    choose_c,
    fit_probe,
    linear_probe,
    read_probe_set,
)
from dcsm_cache.pipeline.tasks.schema import check_result
from dcsm_cache.stores import FeatureStore, StoreShape
from dcsm_cache.workflow.code import code_fingerprint

CLASSES = ["blue", "green", "red", "yellow"]
RGB = {"blue": (30, 40, 200), "green": (30, 180, 40), "red": (200, 30, 30), "yellow": (220, 210, 30)}
TEMPLATES = ["a photo of {}", "{}"]
CPU = ExtractConfig(device="cpu", progress=False, workers=0, batch_size=16)


def write_split(root: Path, classes: list[str], per_class: int, seed: int) -> None:
    """root/<class>/*.png: each class's colour, jittered, with a grey square somewhere."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            px = np.clip(np.array(RGB[c]) + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            y, x = rng.integers(0, 24, 2)
            px[y : y + 8, x : x + 8] = 128
            Image.fromarray(px).save(root / c / f"{i}.png")


def extracted(tmp: Path, name: str, classes: list[str], per_class: int, seed: int) -> Path:
    write_split(tmp / "data" / name, classes, per_class, seed)
    ds = load_benchmark("imagefolder", str(tmp / "data" / name), templates=TEMPLATES)
    write_manifest(Dataset(name, ds.root, ds.images, ds.captions, ds.items, ds.metric), tmp / f"{name}.json")
    extract(tmp / f"{name}.json", "shapes-clip-tiny", tmp / f"{name}.zarr", CPU)
    return tmp / f"{name}.zarr"


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("lp")
    return {
        "train": extracted(tmp, "colours_train", CLASSES, 12, 0),
        "test": extracted(tmp, "colours_test", CLASSES, 6, 1),
        "fewer": extracted(tmp, "colours_fewer", CLASSES[:3], 6, 2),
    }


def unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def arrays(store: Path) -> tuple[np.ndarray, np.ndarray]:
    fs = FeatureStore.open(store)
    ds = read_manifest(fs.attrs["manifest"])
    return unit(fs.image_pooled[:])[[it.image for it in ds.items]], np.array([it.correct for it in ds.items])


def test_the_probe_is_scikit_learns_logistic_regression_on_the_stores_features(stores):
    result = linear_probe(stores["train"], stores["test"])
    (x, y), (xt, yt) = arrays(stores["train"]), arrays(stores["test"])
    run = result["runs"][0]
    best = max(run["search"], key=lambda ea: (ea[1], -ea[0]))  # the highest held-out accuracy, then the smaller C
    assert result["C"] == run["C"] == 10.0 ** best[0]
    raw, raw_test = read_probe_set(stores["train"]), read_probe_set(stores["test"])
    assert fit_probe(raw.x, raw.y, raw_test.x, raw_test.y) == {k: result[k] for k in fit_probe(x, y, xt, yt)}
    pred = LogisticRegression(C=result["C"], max_iter=1000).fit(x, y).predict(xt)
    assert result["accuracy"] == (pred == yt).mean()
    assert result["mean_per_class"] == np.mean([(pred[yt == c] == c).mean() for c in range(len(CLASSES))])
    assert result["stderr"] == math.sqrt(result["accuracy"] * (1 - result["accuracy"]) / len(yt))
    assert result["n_items"] == len(yt) == 24 and result["n_classes"] == 4 and result["chance"] == 0.25
    assert result["n_train"] == len(y) and run["n_val"] == 4 * round(12 * 0.2)  # a fifth of each class held out
    assert result["dataset"] == "colours_test" and result["train_dataset"] == "colours_train"
    assert result["stores"]["train"]["fingerprint"] == FeatureStore.open(stores["train"]).attrs["fingerprint"]
    assert result["store_fingerprint"] == FeatureStore.open(stores["test"]).attrs["fingerprint"]
    check_result(result)  # the result schema's linear_probe keys


def test_the_search_is_the_clip_papers_binary_search_on_log_c():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((80, 6)), np.arange(80) % 4
    c, search = choose_c(x[:60], y[:60], x[60:], y[60:])
    logs = [e for e, _ in search]
    assert {-6, -4, -2, 0, 2, 4, 6} <= set(logs) and len(logs) <= 7 + 2 * 4
    best = math.log10(c)
    assert best - 0.125 in logs or best + 0.125 in logs  # refined to 8 steps a decade around the best


def test_linearly_separable_features_give_100_percent(tmp_path):
    rng = np.random.default_rng(0)
    centres = np.eye(8)[:4] * 4
    y_train, y_test = np.repeat(np.arange(4), 30), np.repeat(np.arange(4), 50)
    train = synthetic_store(tmp_path / "a", centres[y_train] + rng.uniform(-1, 1, (120, 8)), y_train)
    test = synthetic_store(tmp_path / "b", centres[y_test] + rng.uniform(-1, 1, (200, 8)), y_test)
    result = linear_probe(train, test)
    assert result["accuracy"] == 1.0 and result["mean_per_class"] == 1.0 and result["stderr"] == 0.0
    few = linear_probe(train, test, LinearProbeConfig(shots=1, seeds=(0, 1)))
    assert few["accuracy"] == 1.0 and [r["n_train"] for r in few["runs"]] == [4, 4]


def test_shuffled_labels_give_chance_within_the_standard_error(tmp_path):
    rng = np.random.default_rng(1)
    y_train, y_test = rng.permutation(np.arange(400) % 4), np.arange(800) % 4
    train = synthetic_store(tmp_path / "a", rng.standard_normal((400, 16)), y_train)
    test = synthetic_store(tmp_path / "b", rng.standard_normal((800, 16)), y_test)
    result = linear_probe(train, test)
    assert abs(result["accuracy"] - result["chance"]) <= result["stderr"]
    assert abs(result["mean_per_class"] - result["chance"]) <= result["mean_per_class_stderr"]


def test_few_shot_draws_each_seed_and_averages_them(stores):
    cfg = LinearProbeConfig(shots=2, seeds=(0, 1, 2))
    result = linear_probe(stores["train"], stores["test"], cfg)
    runs = result["runs"]
    assert [r["seed"] for r in runs] == [0, 1, 2] and all(r["n_train"] == 8 and r["n_val"] == 4 for r in runs)
    assert result["accuracy"] == pytest.approx(np.mean([r["accuracy"] for r in runs]))
    spread = np.var([r["accuracy"] for r in runs], ddof=1) / 3
    binomial = result["accuracy"] * (1 - result["accuracy"]) / result["n_items"]
    assert result["stderr"] == pytest.approx(math.sqrt(binomial + spread))
    assert result["C"] == np.median([r["C"] for r in runs]) and result["shots"] == 2
    assert linear_probe(stores["train"], stores["test"], cfg) == result  # the same numbers every time
    one = linear_probe(stores["train"], stores["test"], LinearProbeConfig(shots=1))
    assert one["runs"][0]["C"] == LinearProbeConfig().default_c and one["runs"][0]["search"] == []


def test_token_features_are_the_mean_of_the_patch_tokens(stores):
    fs = FeatureStore.open(stores["test"])
    tokens = fs.image_tokens[:].astype(np.float32)
    assert _first_patch(tokens.shape[1]) == 0 and _first_patch(197) == 1 and _first_patch(50) == 1
    got = read_probe_set(stores["test"], "tokens")
    want = (tokens / np.linalg.norm(tokens, axis=-1, keepdims=True)).mean(axis=1)  # fit_probe normalises it
    np.testing.assert_allclose(got.x, want, atol=1e-6)
    assert linear_probe(stores["train"], stores["test"], LinearProbeConfig(features="tokens"))["scorer"] == (
        "linear-probe-tokens"
    )


def test_the_config_refuses_what_it_cannot_do():
    for bad in ({"features": "cls"}, {"shots": 0}, {"seeds": ()}, {"seeds": (1, 1)}, {"val_fraction": 0.6}):
        with pytest.raises(ConfigError):
            LinearProbeConfig(**bad)


def test_mismatched_stores_are_refused(stores, tmp_path):
    other = tmp_path / "other.zarr"
    shutil.copytree(stores["test"], other)
    zarr.open_group(other, mode="r+").attrs["backbone_id"] = "another-backbone"
    with pytest.raises(StoreMismatchError, match="different backbones"):
        linear_probe(stores["train"], other)
    with pytest.raises(BadInputError, match="same dataset"):
        linear_probe(stores["train"], stores["train"])
    with pytest.raises(BadInputError, match="class 'a photo of yellow' \\(6 images\\)"):
        linear_probe(stores["fewer"], stores["test"])  # the train split lacks a test class
    assert linear_probe(stores["train"], stores["fewer"])["n_classes"] == 4  # the reverse is fine


def test_cli_writes_the_result_and_refuses_in_one_line(stores, tmp_path):
    out = tmp_path / "r" / "lp.json"
    args = ["linear-probe", "--train", str(stores["train"]), "--test", str(stores["test"])]
    res = CliRunner().invoke(main, [*args, "--out", str(out), "--shots", "2", "--seed", "3", "--seed", "4"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc.pop("provenance")["seeds"] == {"linear_probe": [3, 4]}
    want = linear_probe(
        stores["train"], stores["test"], LinearProbeConfig(shots=2, seeds=(3, 4)), code=code_fingerprint("linear_probe")
    )
    assert doc == json.loads(json.dumps(want))
    assert "top-1" in res.output and "2 a class" in res.output
    for bad in (
        ["linear-probe", "--train", str(stores["fewer"]), "--test", str(stores["test"])],
        [*args, "--features", "cls"],
        ["linear-probe", "--train", str(stores["train"]), "--test", str(stores["train"])],
    ):
        res = CliRunner().invoke(main, [*bad, "--out", str(tmp_path / "no.json")])
        assert res.exit_code == 2 and res.output.count("\n") == 1 and "dcsm-cache: error:" in res.output, res.output
        assert not (tmp_path / "no.json").exists()


def synthetic_store(folder: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """A complete store of an image-folder-like prompt table whose pooled features are `x`, classes `y`."""
    folder.mkdir(parents=True)
    n, d = x.shape
    classes = [f"class {c}" for c in range(int(y.max()) + 1)]
    ds = Dataset(
        folder.name,
        str(folder),
        tuple(ImageRef(f"{classes[c]}/{i}.png") for i, c in enumerate(y)),
        tuple(classes),
        tuple(Item(i, tuple(range(len(classes))), int(c)) for i, c in enumerate(y)),
    )
    fp = write_manifest(ds, folder / "manifest.json")
    attrs = {
        "backbone": "synthetic",
        "backbone_id": "synthetic",
        "dataset": ds.name,
        "fingerprint": fp,
        "manifest": str(folder / "manifest.json"),
    }
    store = FeatureStore.create(folder / "s.zarr", StoreShape(n, 4, len(classes), 2, d), attrs)
    store.write("image/pooled", 0, x.astype(np.float16))
    store.write("image/valid", 0, np.ones(n, dtype=bool))
    store.mark_done(0)
    return folder / "s.zarr"
