"""The benchmark registry: an explicit dict from name to loader, each returning the item form.

    ds = load_benchmark("shapes_spatial", root="data/world")

Every loader reads its benchmark's native on-disk layout unchanged (see docs/benchmarks.md) and
returns a `Dataset`. Options are loader keyword arguments; an unknown name lists the valid ones.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from ...errors import ConfigError, InputNotFoundError, UnknownNameError
from ..items import Dataset
from . import shapes


@dataclass(frozen=True)
class Benchmark:
    loader: Callable[..., Dataset]
    options: dict  # fixed keyword arguments for the loader (e.g. which split or subset)
    description: str


BENCHMARKS: dict[str, Benchmark] = {
    "shapes_pretrain": Benchmark(shapes.load, {"family": "pretrain"}, "shapes world: web-style captions for backbone pretraining"),
    "shapes_train": Benchmark(shapes.load, {"family": "train"}, "shapes world: DCSM training items with hard negatives"),
    "shapes_binding": Benchmark(shapes.load, {"family": "binding"}, "shapes world: attribute binding (test, heldout)"),
    "shapes_spatial": Benchmark(shapes.load, {"family": "spatial"}, "shapes world: spatial relations (test, heldout)"),
    "shapes_negation": Benchmark(shapes.load, {"family": "negation"}, "shapes world: negation (test, heldout)"),
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UnknownNameError(f"unknown benchmark {name!r}; valid: {', '.join(sorted(BENCHMARKS))}") from None


def load_benchmark(name: str, root: str, **options) -> Dataset:
    """Load benchmark `name` from folder `root`; extra options go to its loader."""
    bench = get_benchmark(name)
    params = inspect.signature(bench.loader).parameters
    bad = sorted(k for k in options if k not in params or k in ("root", "name"))
    if bad:
        valid = sorted(k for k in params if k not in ("root", "name", *bench.options))
        raise ConfigError(f"benchmark {name}: unknown option {', '.join(bad)} (valid: {', '.join(valid) or 'none'})")
    import os
    if not os.path.isdir(root):
        raise InputNotFoundError(f"benchmark {name}: folder {root} does not exist; point --root at the downloaded benchmark")
    return bench.loader(root, name=name, **{**bench.options, **options})
