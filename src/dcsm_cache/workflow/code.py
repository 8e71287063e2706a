"""Fingerprints of the code each workflow stage runs, so that a changed package reruns what it computes.

    code_fingerprint("evaluate")                  # '3f9c0a17d2e4': sha256 of tasks/choice.py, dcsm/, ...
    items_fingerprint("whatsUp_A", paper_compat=True)

Snakemake's own code trigger sees only a rule's shell command, never the package it calls. Each
rule therefore passes, as a param, the fingerprint of the source files that decide what its stage
writes (STAGES; a folder means every file in it). Upgrading to a version whose scorer changed
reruns training, evaluation and the report; a changed report reruns the report alone. Result JSONs
record the same fingerprint (`code`). A manifest depends on its own benchmark's loader only, so a
fix to one loader rereads that benchmark, not every other. The CLI, errors, config plumbing and the
atomic writer are left out: they do not change what a stage computes. A test follows the imports of
each stage's command and fails on a module it loads but does not hash (tests/test_workflow.py).
Reading and hashing the files costs a few milliseconds; nothing here imports torch, numpy or open_clip.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ..errors import UnknownNameError

__all__ = ["PACKAGE", "STAGES", "code_fingerprint", "items_fingerprint", "source_files"]

PACKAGE = Path(__file__).resolve().parent.parent  # src/dcsm_cache
_STORE = ("stores",)
_READ = (
    "pipeline/reading.py",
    "pipeline/dcsm/cache.py",
    "pipeline/dcsm/maps.py",
    "pipeline/items",
    "pipeline/tasks/results.py",
    *_STORE,
)
_WORLD = ("pipeline/world/scenes.py", "pipeline/world/generate.py", "pipeline/world/files.py")

STAGES: dict[str, tuple[str, ...]] = {
    "world": _WORLD,
    "domains": ("pipeline/world/domains.py", *_WORLD),
    "export": (
        "pipeline/world/export.py",
        "pipeline/benchmarks/sugarcrepe.py",
        "pipeline/benchmarks/_common.py",
        "pipeline/items",
        *_WORLD,
    ),
    "pretrain": (
        "pipeline/world/pretrain.py",
        "pipeline/world/late_interaction.py",
        "pipeline/world/hard_negatives.py",
        "pipeline/world/used_rows.py",
        "pipeline/world/train_images.py",
        "pipeline/world/tinyclip.py",
        "pipeline/formats/shards.py",
        "model_configs",
        "pipeline/tokens",
        "pipeline/items",
        "pipeline/device.py",
    ),
    "extract": (
        "pipeline/extract",
        "pipeline/formats/shards.py",
        "pipeline/tokens",
        "pipeline/world/tinyclip.py",
        "pipeline/items",
        "pipeline/dcsm/maps.py",
        "pipeline/device.py",
        "pipeline/paper/padding.py",
        *_STORE,
    ),
    "train": (
        "pipeline/train",
        "pipeline/reading.py",
        "pipeline/dcsm",
        "pipeline/items",
        "pipeline/device.py",
        *_STORE,
    ),
    "evaluate": (
        "pipeline/tasks/choice.py",
        "pipeline/tasks/scoring.py",
        "pipeline/dcsm",
        "pipeline/scorers.py",
        "pipeline/device.py",
        "pipeline/paper/scorer.py",
        "pipeline/paper/captions.py",
        "pipeline/paper/padding.py",
        "pipeline/tasks/itm.py",  # the `itm` scorer re-runs BLIP's matching head (tokens/blip.py)
        "pipeline/tokens",
        *_READ,
    ),
    "zeroshot": ("pipeline/tasks/zeroshot.py", *_READ),
    "retrieval": ("pipeline/tasks/retrieval.py", *_READ),
    "linear_probe": ("pipeline/tasks/linear_probe.py", "pipeline/tasks/zeroshot.py", *_READ),
    "report": (
        "pipeline/tasks/report.py",
        "pipeline/tasks/schema.py",
        "pipeline/tasks/results_table.py",
        "pipeline/tasks/linear_probe_table.py",
        "pipeline/tasks/report_html.py",
        "pipeline/figures/plots.py",
        "pipeline/scorers.py",
        "pipeline/paper/table.py",
    ),
    "gallery": (
        "pipeline/figures/gallery.py",
        "pipeline/figures/heatmap.py",
        "pipeline/tasks/choice.py",
        "pipeline/tasks/scoring.py",
        "pipeline/tasks/grounding.py",
        "pipeline/dcsm",
        "pipeline/scorers.py",
        "pipeline/device.py",
        "pipeline/world/tinyclip.py",
        "pipeline/tokens/shapes_clip.py",
        *_WORLD,
        *_READ,
    ),
    "domains_table": ("pipeline/tasks/domains_table.py", "pipeline/world/files.py"),
    "analyze": ("pipeline/analysis", "pipeline/reading.py", "pipeline/items", *_STORE),
}

# what a loader module reads besides itself, benchmarks/_common.py and items/
_LOADER_EXTRAS = {
    "pipeline/benchmarks/shapes.py": _WORLD,
    "pipeline/benchmarks/shapes_zeroshot.py": _WORLD,
    "pipeline/benchmarks/domains_mixture.py": ("pipeline/world/files.py",),
    "pipeline/formats/img2dataset.py": ("pipeline/formats/shards.py",),
    "pipeline/formats/manifest.py": ("pipeline/formats/shards.py",),
}


def source_files(paths) -> list[Path]:
    """The files under `paths` (relative to the package), sorted; a folder means its files, caches left out."""
    out = set()
    for rel in paths:
        path = PACKAGE / rel
        if path.is_dir():
            out.update(
                p
                for p in path.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".json")
            )
        elif path.is_file():
            out.add(path)
        else:
            raise FileNotFoundError(f"workflow/code.py names {rel}, which is not in {PACKAGE}: update STAGES")
    return sorted(out)


def _digest(paths, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in source_files(paths):
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def code_fingerprint(stage: str) -> str:
    """12 hex digits of sha256 over the stage's source files (names and contents)."""
    if stage not in STAGES:
        raise UnknownNameError(f"unknown workflow stage {stage!r}; valid: {', '.join(STAGES)}")
    return _digest(STAGES[stage])


@functools.lru_cache(maxsize=None)
def items_fingerprint(benchmark: str, paper_compat: bool = False) -> str:
    """The fingerprint of what writes one benchmark's manifest: its loader, its registry entry, the item form."""
    from ..pipeline.benchmarks import get_benchmark  # the registry imports numpy and PIL: only when asked

    bench = get_benchmark(benchmark)
    module = bench.loader.__module__.split(".", 1)[1].replace(".", "/") + ".py"  # pipeline/<room>/<loader>.py
    files = (
        "pipeline/items",
        "pipeline/benchmarks/_common.py",
        module,
        *_LOADER_EXTRAS.get(module, ()),
        *(("pipeline/paper/captions.py",) if paper_compat else ()),
    )
    return _digest(files, extra=repr(sorted(bench.options.items())))
