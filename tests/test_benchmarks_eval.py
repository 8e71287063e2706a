"""Every paper benchmark end to end: native folder → manifest → store → evaluate, against a direct run.

The fixture folders are the ones the loader tests build (test_benchmarks*.py), with each image
given its own colour. The check is independent of the store and of `evaluate`: the backbone is run
directly on the image files (cropped where the benchmark crops) and the raw candidate captions, and
the benchmark's own metric is applied by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import test_benchmarks as tb
import test_benchmarks_negation as tn
from conftest import TINY_BACKBONE
from dcsm_cache.pipeline.tokens.backbones import load_backbone
from dcsm_cache.pipeline.benchmarks import load_benchmark
from dcsm_cache.pipeline.tasks.choice import EvalConfig, evaluate
from dcsm_cache.pipeline.extract import ExtractConfig, extract
from dcsm_cache.pipeline.items import write_manifest


def _qa(root):
    tb.write_json(root / "coco_qa_two_obj.json", tb.QA[("coco", "two")])
    for r in tb.QA[("coco", "two")]:
        tb.write_image(root / "val2017" / f"{r[0]:012d}.jpg")


def _negbench(root):
    tn.make_negbench(
        root,
        root / "NegBench\\evaluation data\\images",
        "COCO_val_mcq_llama3.1_rephrased.csv",
        "val2017",
        "/data/coco/val2017",
    )


BUILDERS = {
    "clevr_bind_2obj_gen": tb.make_clevr,
    "ncd_subset1": tb.make_ncd,
    "vg_attr": tb.make_vg_attr,
    "whatsUp_A": tb.make_whatsup_a,
    "coco_spatial2": _qa,
    "negbench_coco": _negbench,
    "ccneg": tn.make_ccneg,
    "sugarcrepe": tn.make_sugarcrepe,
}


def _recolour(root):
    """Give every image file a colour of its own, so that the scores differ between images."""
    rng = np.random.default_rng(0)
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")):
        with Image.open(path) as im:
            size, fmt = im.size, im.format
        Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3))).save(path, fmt)


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(TINY_BACKBONE, "cpu")


@pytest.mark.parametrize("key", sorted(BUILDERS))
def test_benchmark_end_to_end(key, tmp_path, backbone):
    BUILDERS[key](tmp_path)
    _recolour(tmp_path)
    ds = load_benchmark(key, str(tmp_path))
    write_manifest(ds, tmp_path / "m.json")
    extract(tmp_path / "m.json", TINY_BACKBONE, tmp_path / "s.zarr", ExtractConfig(device="cpu", progress=False))
    result = evaluate(tmp_path / "s.zarr", "cosine", EvalConfig(device="cpu"))

    flags, margins = [], []
    with torch.no_grad():
        for it in ds.items:
            ref = ds.images[it.image]
            with Image.open(tmp_path / ref.path) as im:
                im = im.convert("RGB")
                if ref.box:
                    x, y, w, h = ref.box
                    im = im.crop((x, y, x + w, y + h))
            img = torch.nn.functional.normalize(backbone.model.encode_image(backbone.preprocess(im)[None]), dim=-1)
            txt = torch.nn.functional.normalize(
                backbone.model.encode_text(backbone.tokenizer([ds.captions[c] for c in it.candidates])), dim=-1
            )
            s = (img @ txt.T)[0].numpy()
            others = np.delete(s, it.correct)
            if ds.metric == "strict":
                flags.append(bool(s[it.correct] > others.max()))
            else:
                flags.append(int(np.argmax(s)) == it.correct)
            margins.append(abs(s[it.correct] - others.max()))
    assert result["n_items"] == len(ds.items) > 0 and result["metric"] == ds.metric
    assert result["chance"] == pytest.approx(np.mean([1 / len(it.candidates) for it in ds.items]))
    # fp16 storage may flip an item only where the direct scores are (nearly) tied
    n_close = sum(m < 2e-3 for m in margins)
    assert n_close < len(margins)  # the check below decides something
    assert abs(result["accuracy"] * len(flags) - sum(flags)) <= n_close, (result["accuracy"], flags, margins)
