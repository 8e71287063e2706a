"""The benchmark registry: an explicit dict from name to loader, each returning the item form.

    ds = load_benchmark("shapes_spatial", root="data/world")

Every loader reads its benchmark's native on-disk layout unchanged (see docs/benchmarks.md) and
returns a `Dataset`. Options are loader keyword arguments; an unknown name lists the valid ones.
Each loader's module also says which file shows the benchmark is there (`expected`), so that the
workflow can leave out benchmarks that are not on this machine before it plans their jobs:

    expected_files("whatsUp_A")             # ('controlled_images_dataset.json',)
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Callable, Mapping

from ...errors import ConfigError, InputNotFoundError, UnknownNameError
from ..items import Dataset
from ..formats import img2dataset, manifest, table
from . import (
    ccneg,
    clevr_bind,
    dcsm_train,
    domains_mixture,
    imagefolder,
    karpathy,
    ncd,
    negbench,
    shapes,
    shapes_zeroshot,
    sugarcrepe,
    vg_attribution,
    whatsup,
    whatsup_qa,
)


@dataclass(frozen=True)
class Benchmark:
    loader: Callable[..., Dataset]
    options: dict  # fixed keyword arguments for the loader (e.g. which split or subset)
    description: str
    named: bool = False  # a dataset of the user's own: named by the `name` option (or its loader), not this key


BENCHMARKS: dict[str, Benchmark] = {
    "shapes_pretrain": Benchmark(
        shapes.load, {"family": "pretrain"}, "shapes world: web-style captions for backbone pretraining"
    ),
    "shapes_train": Benchmark(
        shapes.load, {"family": "train"}, "shapes world: DCSM training items with hard negatives"
    ),
    "shapes_binding": Benchmark(shapes.load, {"family": "binding"}, "shapes world: attribute binding (test, heldout)"),
    "shapes_spatial": Benchmark(shapes.load, {"family": "spatial"}, "shapes world: spatial relations (test, heldout)"),
    "shapes_negation": Benchmark(shapes.load, {"family": "negation"}, "shapes world: negation (test, heldout)"),
    # The paper's benchmarks, under the DCSM reference code's key names (run_evals.py).
    "clevr_bind_2obj_train": Benchmark(
        clevr_bind.load, {"split": "train"}, "CLEVR-bind two-object, train split: [pos, 4 negs], chance 20%"
    ),
    "clevr_bind_2obj_valid": Benchmark(
        clevr_bind.load, {"split": "val"}, "CLEVR-bind two-object, val split: [pos, 4 negs], chance 20%"
    ),
    "clevr_bind_2obj_gen": Benchmark(
        clevr_bind.load, {"split": "gen"}, "CLEVR-bind two-object, gen split: [pos, 4 negs], chance 20%"
    ),
    "ncd_subset1": Benchmark(
        ncd.load, {"settype": 0}, "NCD colour composites, caption order 0: 2 captions, chance 50%"
    ),
    "ncd_subset2": Benchmark(
        ncd.load, {"settype": 1}, "NCD colour composites, caption order 1: 2 captions, chance 50%"
    ),
    "vg_attr": Benchmark(vg_attribution.load, {}, "ARO VG-Attribution: box crop, [true, false], chance 50%"),
    "whatsUp_A": Benchmark(whatsup.load, {"subset": "A"}, "What'sUp Controlled_Images A: 4 captions, chance 25%"),
    "whatsUp_B": Benchmark(
        whatsup.load, {"subset": "B"}, "What'sUp Controlled_Images B (controlled_clevr): 4 captions, chance 25%"
    ),
    "coco_spatial1": Benchmark(
        whatsup_qa.load,
        {"source": "coco", "subset": "one"},
        "What'sUp COCO-spatial, one object: 2 captions, chance 50%",
    ),
    "coco_spatial2": Benchmark(
        whatsup_qa.load,
        {"source": "coco", "subset": "two"},
        "What'sUp COCO-spatial, two objects: 2 captions, chance 50%",
    ),
    "vg_subset1": Benchmark(
        whatsup_qa.load,
        {"source": "vg", "subset": "one"},
        "What'sUp VG-spatial (GQA), one object: 2 captions, chance 50%",
    ),
    "vg_subset2": Benchmark(
        whatsup_qa.load,
        {"source": "vg", "subset": "two"},
        "What'sUp VG-spatial (GQA), two objects: 2 captions, chance 50%",
    ),
    "negbench_coco": Benchmark(
        negbench.load, {"source": "coco"}, "NegBench MCQ on COCO val2017: 4 captions, chance 25%"
    ),
    "negbench_voc": Benchmark(negbench.load, {"source": "voc"}, "NegBench MCQ on VOC2007: 4 captions, chance 25%"),
    "ccneg": Benchmark(ccneg.load, {}, "CoN-CLIP CC-Neg, last 40,000 entries: [caption, negated], chance 50%"),
    "sugarcrepe": Benchmark(
        sugarcrepe.load, {}, "SugarCREPE, 7 subsets: [caption, hard negative], strict metric, chance 50%"
    ),
    # The DCSM paper's training sets (docs/benchmarks.md §4): image, [caption, opposite caption], opposite image.
    "dcsm_train_spatial": Benchmark(
        dcsm_train.load, {"source": "spatial"}, "DCSM training: Objaverse spatial composites, CUTMIX_ opposites"
    ),
    "dcsm_train_colour": Benchmark(
        dcsm_train.load, {"source": "colour"}, "DCSM training: Objaverse colour/size overlays, MIRROR_ opposites"
    ),
    "dcsm_train_synth": Benchmark(
        dcsm_train.load, {"source": "all"}, "DCSM training: the three sources in one set (DCSM-synth's data)"
    ),
    "dcsm_train_negation": Benchmark(
        dcsm_train.load, {"source": "negation"}, "DCSM training: COCO negation pairs (negated_pairs_cocotrain_v1.json)"
    ),
    # Zero-shot classification and retrieval, scored by `dcsm-cache zeroshot` / `dcsm-cache retrieval`.
    "imagefolder": Benchmark(
        imagefolder.load, {}, "image folder per class (or DomainNet's domain/class): zero-shot classification"
    ),
    "domainnet": Benchmark(
        imagefolder.load, {"domains": True}, "DomainNet, root/<domain>/<class>/: zero-shot classification per domain"
    ),
    "shapes_zeroshot": Benchmark(
        shapes_zeroshot.load, {}, "shapes world: each probe object cut out, zero-shot by colour-shape or shape"
    ),
    "domains_mixture": Benchmark(
        domains_mixture.load, {}, "rendering domains (world/domains.py): a study mixture's pretraining captions"
    ),
    "karpathy_coco": Benchmark(
        karpathy.load, {"source": "coco"}, "COCO Karpathy split (test: 5k images): image-text retrieval"
    ),
    "karpathy_flickr": Benchmark(
        karpathy.load, {"source": "flickr30k"}, "Flickr30k Karpathy split (test: 1k images): image-text retrieval"
    ),
    # Datasets of the user's own (docs/benchmarks.md, "Your own data"); option `name` names them.
    "table": Benchmark(table.load, {}, "your CSV, TSV or JSONL (file=...): captioned or choice items", named=True),
    "img2dataset": Benchmark(img2dataset.load_files, {}, "img2dataset's files (00000/*.jpg, .txt)", named=True),
    "webdataset": Benchmark(img2dataset.load_shards, {}, "webdataset .tar shards, e.g. img2dataset's", named=True),
    "manifest": Benchmark(manifest.load, {}, "a manifest written by hand (file=...), checked", named=True),
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UnknownNameError(f"unknown benchmark {name!r}; valid: {', '.join(sorted(BENCHMARKS))}") from None


def expected_files(name: str, options: Mapping | None = None) -> tuple[str, ...]:
    """Paths under a benchmark's root, any one of which shows it is there ("" is the root itself)."""
    bench = get_benchmark(name)
    return tuple(sys.modules[bench.loader.__module__].expected(**{**bench.options, **(options or {})}))


def load_benchmark(name: str, /, root: str, **options) -> Dataset:
    """Load benchmark `name` from folder `root`; extra options go to its loader (`name` too, for a named one)."""
    bench = get_benchmark(name)
    params = inspect.signature(bench.loader).parameters
    fixed = ("root",) if bench.named else ("root", "name")
    bad = sorted(k for k in options if k not in params or k in fixed)
    if bad:
        valid = sorted(k for k in params if k not in (*fixed, *bench.options))
        raise ConfigError(f"benchmark {name}: unknown option {', '.join(bad)} (valid: {', '.join(valid) or 'none'})")
    import os

    if not os.path.isdir(root):
        raise InputNotFoundError(
            f"benchmark {name}: folder {root} does not exist; point --root at the downloaded benchmark"
        )
    if bench.named and options.get("name") is not None:
        options["name"] = str(options["name"])  # `--set name=2024` arrives as a number
    return bench.loader(root, **({} if bench.named else {"name": name}), **{**bench.options, **options})
