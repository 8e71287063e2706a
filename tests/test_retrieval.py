"""Image-text retrieval from a store: Karpathy JSON loading, R@k both ways, shared sentences, the CLI.

Expected recalls are recomputed here with numpy: every (image, sentence) pair of the JSON is one
text, and ranks come from a brute-force stable sort of the full similarity matrix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dcsm_cache.cli import main
from dcsm_cache.errors import ConfigError, InputNotFoundError
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import write_manifest
from dcsm_cache.pipeline.tasks.report import report
from dcsm_cache.pipeline.tasks.results import write_result
from dcsm_cache.pipeline.tasks.retrieval import RetrievalConfig, retrieval
from dcsm_cache.stores.feature_store import FeatureStore
from dcsm_cache.workflow.code import code_fingerprint

CPU = ExtractConfig(device="cpu", progress=False, workers=1, batch_size=16)
WORDS = ["a dog", "two cats", "a red bus", "a kite", "three birds", "a boat", "a man", "a pizza"]
SHARED = "a photo of something"  # one sentence of two test images: stored once, scored as two texts


def karpathy_doc(n_test: int = 12) -> dict:
    images = []
    for i in range(n_test + 2):
        sentences = [f"{WORDS[i % 8]} number {i}", f"{WORDS[(i * 3) % 8]} near a tree {i}"]
        if i % 3 == 0:
            sentences.append(f"{WORDS[(i + 1) % 8]} in the rain {i}")
        if i in (1, 4):
            sentences.append(SHARED)
        images.append(
            {
                "filename": f"COCO_val2014_{i:012d}.jpg",
                "filepath": "val2014",
                "imgid": i,
                "split": "test" if i < n_test else "train",
                "sentences": [{"raw": s, "tokens": s.split()} for s in sentences],
            }
        )
    return {"images": images, "dataset": "coco"}


def write_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in names:
        px = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(px).resize((36, 36), Image.Resampling.NEAREST).save(folder / name)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ret")
    doc = karpathy_doc()
    (tmp / "coco").mkdir()
    (tmp / "coco" / "dataset_coco.json").write_text(json.dumps(doc))
    write_images(tmp / "coco" / "val2014", [r["filename"] for r in doc["images"]])
    ds = load_benchmark("karpathy_coco", str(tmp / "coco"))
    write_manifest(ds, tmp / "coco.json")
    extract(tmp / "coco.json", "shapes-clip-tiny", tmp / "coco.zarr", CPU)
    return tmp, doc, ds


def brute_force(doc: dict, ds, store: Path) -> dict[str, np.ndarray]:
    fs = FeatureStore.open(store)
    img = fs.image_pooled[:].astype(np.float32)
    txt = fs.text_pooled[:].astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    paths = [r.path for r in ds.images]
    test = [r for r in doc["images"] if r["split"] == "test"]
    image_rows = [paths.index(f"val2014/{r['filename']}") for r in test]
    text_rows, owner = [], []
    for i, r in enumerate(test):
        for s in r["sentences"]:
            text_rows.append(ds.captions.index(s["raw"]))
            owner.append(i)
    owner = np.array(owner)
    sim = img[image_rows] @ txt.T  # [images, unique captions], then one column per (image, sentence)
    sim = sim[:, text_rows]
    i2t = [
        min(np.where(np.argsort(-sim[i], kind="stable") == j)[0][0] for j in np.where(owner == i)[0])
        for i in range(len(test))
    ]
    t2i = [np.where(np.argsort(-sim[:, j], kind="stable") == owner[j])[0][0] for j in range(len(owner))]
    return {"image_to_text": np.array(i2t), "text_to_image": np.array(t2i)}


def test_karpathy_items(extracted, tmp_path):
    _, doc, ds = extracted
    test = [r for r in doc["images"] if r["split"] == "test"]
    assert [ds.images[it.image].path for it in ds.items] == [f"val2014/{r['filename']}" for r in test]
    for it, r in zip(ds.items, test):
        assert [ds.captions[c] for c in it.candidates] == [s["raw"] for s in r["sentences"]]
        assert it.correct == 0 and it.subset == "test"
    assert ds.captions.count(SHARED) == 1
    flickr = {"images": [{"filename": "1.jpg", "split": "val", "sentences": [{"raw": "a dog runs"}]}]}
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(flickr))
    write_images(tmp_path / "flickr30k-images", ["1.jpg"])
    fl = load_benchmark("karpathy_flickr", str(tmp_path), split="val")
    assert [r.path for r in fl.images] == ["flickr30k-images/1.jpg"] and fl.captions == ("a dog runs",)
    flickr["images"].append({"filename": "2.jpg", "split": "test", "sentences": [{"raw": "x"}]})
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps(flickr))
    with pytest.raises(InputNotFoundError, match=r"1 images of split test missing, e\.g\. flickr30k-images/2\.jpg"):
        load_benchmark("karpathy_flickr", str(tmp_path))
    with pytest.raises(ConfigError, match="unknown split dev"):
        load_benchmark("karpathy_flickr", str(tmp_path), split="dev")


def test_recall_matches_brute_force(extracted):
    tmp, doc, ds = extracted
    ranks = brute_force(doc, ds, tmp / "coco.zarr")
    result = retrieval(tmp / "coco.zarr", RetrievalConfig(ks=(1, 5, 10), block_rows=5))
    n_texts = sum(len(r["sentences"]) for r in doc["images"] if r["split"] == "test")
    assert result["n_images"] == 12 and result["n_texts"] == n_texts and result["n_skipped"] == 0
    for direction, rank in ranks.items():
        for k in (1, 5, 10):
            assert result[direction][f"R@{k}"] == pytest.approx((rank < k).mean()), (direction, k)
        assert result[direction]["median_rank"] == pytest.approx(np.median(rank) + 1)
    assert result["text_to_image"]["chance"]["R@1"] == pytest.approx(1 / 12)
    assert result["subsets"]["image_to_text_R@10"]["accuracy"] == result["image_to_text"]["R@10"]
    assert result["accuracy"] == pytest.approx(np.mean([(r < k).mean() for r in ranks.values() for k in (1, 5, 10)]))


def test_cli(extracted):
    tmp, _, _ = extracted
    out = tmp / "results" / "ret.json"
    res = CliRunner().invoke(main, ["retrieval", "--store", str(tmp / "coco.zarr"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc.pop("provenance")) == {"seeds", "versions", "hardware"}
    assert doc == json.loads(json.dumps(retrieval(tmp / "coco.zarr", code=code_fingerprint("retrieval"))))
    assert doc["scorer"] == "cosine" and doc["metric"] == "recall@k" and doc["n_items"] == 12
    assert "image->text R@1" in res.output
    res = CliRunner().invoke(
        main, ["retrieval", "--store", str(tmp / "coco.zarr"), "--out", str(out), "--set", "ks=[0]"]
    )
    assert res.exit_code == 2 and "must be positive" in res.output


def test_report_has_a_retrieval_table(extracted, tmp_path):
    tmp, _, _ = extracted
    result = retrieval(tmp / "coco.zarr", RetrievalConfig(ks=(1, 5, 10)))
    write_result(result, tmp_path / "ret.json")
    md = report([tmp_path / "ret.json"], tmp_path / "summary.md")
    assert "## Retrieval" in md and "Accuracy (%) per benchmark subset" not in md
    line = next(line for line in md.splitlines() if line.startswith(f"| {result['dataset']} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:8] == [
        f"{100 * result[d][f'R@{k}']:.1f}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)
    ]
    assert cells[8:] == [str(result["n_images"]), str(result["n_texts"])]
    assert (tmp_path / "summary.csv").read_text().count("\nretrieval,") == 6
