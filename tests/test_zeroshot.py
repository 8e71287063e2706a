"""Zero-shot classification from a store: image-folder layouts, prompt ensembling, top-k, the CLI.

Expected numbers are recomputed here with numpy from the store's arrays, finding each prompt's row
by its text and ranking classes by a brute-force stable sort.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dcsm_cache.cli import main
from dcsm_cache.errors import BadInputError, ConfigError, InputNotFoundError
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.benchmarks.imagefolder import templates_of
from dcsm_cache.pipeline.tasks.choice import evaluate
from dcsm_cache.pipeline.tasks.report import report
from dcsm_cache.pipeline.tasks.results import write_result
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import DatasetBuilder, open_image, write_manifest
from dcsm_cache.pipeline.tasks.zeroshot import ZeroShotConfig, prompt_table, zeroshot
from dcsm_cache.stores.feature_store import FeatureStore
from dcsm_cache.workflow.code import code_fingerprint

CLASSES = ["black_cat", "blue-bird", "green", "orange_fish", "pink", "red", "yellow"]
NAMES = ["black cat", "blue bird", "green", "orange fish", "pink", "red", "yellow"]
DOMAINS = ["real", "sketch"]
CPU = ExtractConfig(device="cpu", progress=False, workers=1, batch_size=16)


def write_folders(root: Path, domains: list[str] | None, per_class: int = 2) -> None:
    rng = np.random.default_rng(0)
    for d in domains or [""]:
        for c in CLASSES:
            folder = root / d / c
            folder.mkdir(parents=True)
            for i in range(per_class):
                px = rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)
                Image.fromarray(px).resize((36, 36), Image.Resampling.NEAREST).save(folder / f"{i}.jpg")
    (root / "README.txt").write_text("not a class")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("zs")
    write_folders(tmp / "dn", DOMAINS)
    ds = load_benchmark("imagefolder", str(tmp / "dn"))  # auto-detects the domain layout
    write_manifest(ds, tmp / "dn.json")
    extract(tmp / "dn.json", "shapes-clip-tiny", tmp / "dn.zarr", CPU)
    return tmp, ds


def expected(ds, store: Path, first_template_only: bool = False) -> dict:
    fs = FeatureStore.open(store)
    img = fs.image_pooled[:].astype(np.float32)
    txt = fs.text_pooled[:].astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    temps = templates_of("openai")[:1] if first_template_only else templates_of("openai")
    cls = np.stack([np.mean([txt[ds.captions.index(t(n))] for t in temps], axis=0) for n in NAMES])
    cls /= np.linalg.norm(cls, axis=1, keepdims=True)
    out = {"rank": [], "domain": []}
    for it in ds.items:
        order = np.argsort(-(img[it.image] @ cls.T), kind="stable")
        out["rank"].append(int(np.where(order == it.correct)[0][0]))
        out["domain"].append(it.tags["domain"])
    return {k: np.array(v) for k, v in out.items()}


def test_layouts_and_items(tmp_path):
    write_folders(tmp_path / "flat", None, per_class=1)
    flat = load_benchmark("imagefolder", str(tmp_path / "flat"), templates="simple")
    simple = templates_of("simple")
    assert len(flat.items) == len(CLASSES) and flat.items[0].tags == {}
    assert flat.captions == tuple(t(n) for t in simple for n in NAMES)
    for it in flat.items:
        assert it.candidates == tuple(range(len(CLASSES)))
        assert flat.images[it.image].path.split("/")[0] == CLASSES[it.correct]
    assert prompt_table(flat) == (len(CLASSES), len(simple))
    write_folders(tmp_path / "nested", ["a"], per_class=1)
    with pytest.raises(BadInputError, match="pass domains=true"):
        load_benchmark("imagefolder", str(tmp_path / "nested"), domains=False)
    with pytest.raises(ConfigError, match="templates 'fancy'"):
        load_benchmark("imagefolder", str(tmp_path / "flat"), templates="fancy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="no sub-folders"):
        load_benchmark("imagefolder", str(tmp_path / "empty"))


def test_domainnet_layout_split_and_classnames(tmp_path):
    write_folders(tmp_path, DOMAINS)
    (tmp_path / "real_test.txt").write_text("real/red/0.jpg 5\nreal/pink/1.jpg 4\n")
    (tmp_path / "sketch_test.txt").write_text("sketch/green/0.jpg 2\n")
    (tmp_path / "names.txt").write_text("\n".join(f"thing {i}" for i in range(len(CLASSES))) + "\n")
    ds = load_benchmark(
        "domainnet", str(tmp_path), split="test", templates="simple", classnames=str(tmp_path / "names.txt")
    )
    got = [(ds.images[it.image].path, it.correct, it.tags["domain"]) for it in ds.items]
    assert got == [("real/pink/1.jpg", 4, "real"), ("real/red/0.jpg", 5, "real"), ("sketch/green/0.jpg", 2, "sketch")]
    assert ds.captions[0] == templates_of("simple")[0]("thing 0")
    with pytest.raises(InputNotFoundError, match="real_val.txt"):
        load_benchmark("domainnet", str(tmp_path), split="val")


def test_zeroshot_matches_numpy(extracted):
    tmp, ds = extracted
    assert len(ds.items) == len(CLASSES) * len(DOMAINS) * 2
    assert len(ds.captions) == len(CLASSES) * 80
    result = zeroshot(tmp / "dn.zarr")
    exp = expected(ds, tmp / "dn.zarr")
    assert result["n_classes"] == len(CLASSES) and result["n_templates"] == 80
    assert result["n_items"] == len(ds.items) and result["n_skipped"] == 0
    assert result["top1"] == pytest.approx((exp["rank"] < 1).mean())
    assert result["top5"] == pytest.approx((exp["rank"] < 5).mean())
    assert result["accuracy"] == result["top1"] and result["chance"] == pytest.approx(1 / len(CLASSES))
    for d in DOMAINS:
        sub = result["subsets"][d]
        assert sub["n_items"] == len(CLASSES) * 2
        assert sub["top1"] == pytest.approx((exp["rank"][exp["domain"] == d] < 1).mean())
        assert sub["top5"] == pytest.approx((exp["rank"][exp["domain"] == d] < 5).mean())
    assert zeroshot(tmp / "dn.zarr", ZeroShotConfig(top_k=(2,), block_rows=3))["top2"] == pytest.approx(
        (exp["rank"] < 2).mean()
    )
    # the items alone are single-prompt zero-shot: evaluate's cosine argmax over the first template
    single = expected(ds, tmp / "dn.zarr", first_template_only=True)
    assert evaluate(tmp / "dn.zarr", "cosine")["accuracy"] == pytest.approx((single["rank"] < 1).mean())


def test_not_a_prompt_table(tmp_path):
    b = DatasetBuilder("pairs", tmp_path)
    b.add("a.jpg", ["x", "y"])
    b.add("b.jpg", ["z", "y"])
    with pytest.raises(BadInputError, match="not a zero-shot prompt table"):
        prompt_table(b.build())


def test_cli(extracted):
    tmp, _ = extracted
    out = tmp / "results" / "zs.json"
    res = CliRunner().invoke(
        main, ["zeroshot", "--store", str(tmp / "dn.zarr"), "--out", str(out), "--set", "top_k=[1,3]"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc.pop("provenance")) == {"seeds", "versions", "hardware"}
    want = zeroshot(tmp / "dn.zarr", ZeroShotConfig(top_k=(1, 3)), code=code_fingerprint("zeroshot"))
    assert doc == json.loads(json.dumps(want))  # the CLI records the workflow stage's code fingerprint
    assert {"dataset", "backbone", "scorer", "metric", "n_items"} <= set(doc) and doc["scorer"] == "cosine"
    assert "top3" in res.output
    res = CliRunner().invoke(main, ["zeroshot", "--store", str(tmp / "nope.zarr"), "--out", str(out)])
    assert res.exit_code == 2 and "no feature store" in res.output and res.output.count("\n") == 1


def test_own_templates_fill_the_prompt_table_in_order(tmp_path):
    write_folders(tmp_path, None, per_class=1)
    own = ["a photo of a {}.", "art of a {}"]
    ds = load_benchmark("imagefolder", str(tmp_path), templates=own)
    assert ds.captions == tuple(t.format(n) for t in own for n in NAMES)
    assert prompt_table(ds) == (len(CLASSES), len(own))
    with pytest.raises(ConfigError, match="one '{}' each"):
        load_benchmark("imagefolder", str(tmp_path), templates=["no placeholder"])


def _row(md: str, first: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(f"| {first} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_adds_a_zeroshot_table_below_the_choice_table(extracted, tmp_path):
    tmp, _ = extracted
    write_result(evaluate(tmp / "dn.zarr", "cosine"), tmp_path / "choice.json")
    result = zeroshot(tmp / "dn.zarr", ZeroShotConfig(top_k=(1, 5)))
    write_result(result, tmp_path / "zs.json")
    alone = report([tmp_path / "choice.json"], tmp_path / "alone.md")
    both = report([tmp_path / "choice.json", tmp_path / "zs.json"], tmp_path / "summary.md")
    assert both.startswith(alone) and "## Zero-shot classification" in both[len(alone) :]
    name = result["dataset"]
    assert _row(both[len(alone) :], name)[2:5] == [f"{100 * result[k]:.1f}" for k in ("top1", "top5", "chance")]
    for d, sub in result["subsets"].items():
        assert _row(both, f"{name}/{d}")[2:4] == [f"{100 * sub['top1']:.1f}", f"{100 * sub['top5']:.1f}"]
    rows = (tmp_path / "summary.csv").read_text().splitlines()
    assert f"zeroshot,zero-shot,{result['backbone']},cosine,{name}/top5,{result['top5']:.4f}" in "\n".join(rows)
    assert sum(r.startswith("zeroshot,") for r in rows) == 2 * (1 + len(result["subsets"]))


def test_shapes_objects_are_each_object_cut_out_clear_of_the_others(world):
    from dcsm_cache.pipeline.world.files import read_world
    from dcsm_cache.pipeline.world.scenes import phrase

    ds = load_benchmark("shapes_zeroshot", str(world))
    info, scenes = read_world(world)
    cfg, held = info["config"], {tuple(c) for c in info["heldout"]}
    objects = [(s, i) for split in ("test", "heldout") for s in scenes[split] for i in range(len(s["objects"]))]
    assert len(ds.items) == len(objects) and {it.tags["domain"] for it in ds.items} == {"test", "heldout"}
    n_classes, n_templates = prompt_table(ds)
    assert n_classes == len(cfg["colours"]) * len(cfg["shapes"]) and n_templates == 5
    for it, (scene, i) in zip(ds.items, objects):
        obj = scene["objects"][i]
        ref = ds.images[it.image]
        x, y, w, h = ref.box
        assert ref.path == scene["file"] and w == h and x >= 0 and y >= 0 and x + w <= cfg["image_size"]
        assert ref.canvas == cfg["image_size"]  # pasted unscaled on a scene-sized canvas
        cx, cy, half = obj["x"] + 0.5, obj["y"] + 0.5, obj["size"] / 2  # as the renderer draws it
        assert x <= cx - half and cx + half <= x + w and y <= cy - half and cy + half <= y + h
        for j, o in enumerate(scene["objects"]):
            if j != i:
                ox, oy, oh = o["x"] + 0.5, o["y"] + 0.5, o["size"] / 2
                assert ox + oh <= x or x + w <= ox - oh or oy + oh <= y or y + h <= oy - oh
        assert ds.captions[it.correct] == phrase((obj["colour"], obj["shape"]))  # the first template is "{}"
        assert it.tags["domain"] == ("heldout" if (obj["colour"], obj["shape"]) in held else "test")
    assert {open_image(ds, row).size for row in range(3)} == {(cfg["image_size"],) * 2}
    shapes = load_benchmark("shapes_zeroshot", str(world), label="shape", templates=["a photo of {}"])
    assert shapes.captions == tuple(f"a photo of a {s}" for s in cfg["shapes"])
    assert [shapes.captions[it.correct] for it in shapes.items] == [
        f"a photo of a {s['objects'][i]['shape']}" for s, i in objects
    ]
    with pytest.raises(ConfigError, match="label='size'"):
        load_benchmark("shapes_zeroshot", str(world), label="size")
    val = load_benchmark("shapes_zeroshot", str(world), label="shape", splits=["val"])  # a linear probe's train split
    assert len(val.items) == sum(len(s["objects"]) for s in scenes["val"])
    assert val.captions[: len(cfg["shapes"])] == tuple(f"a {s}" for s in cfg["shapes"])  # the first template: "{}"
    assert {it.tags["domain"] for it in val.items} == {"test"}  # held-out combinations are in `heldout` scenes only
    with pytest.raises(ConfigError, match="splits=\\['nope'\\]"):
        load_benchmark("shapes_zeroshot", str(world), splits=["nope"])
