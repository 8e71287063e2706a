"""Fingerprints of the code each workflow stage runs, so that a changed package reruns what it computes.

    code_fingerprint("evaluate")                  # '3f9c0a17d2e4': sha256 of every module `dcsm-cache eval` uses
    stage_modules("evaluate")                     # ('pipeline/dcsm/cache.py', ..., 'stores/raw_rows.py')
    items_fingerprint("whatsUp_A", paper_compat=True)

Snakemake's own code trigger sees only a rule's shell command, never the package it calls. Each
rule therefore passes, as a param, the fingerprint of the source files that decide what its stage
writes. A stage is the `dcsm-cache` commands its rules run (STAGES); its files are derived, never
listed: what those commands import from the package, followed through every import, at module level
or in a function, and through the packages' re-exports (`imports.py`), less the plumbing that does
not change what a stage computes (errors, config, atomic writes, progress, faults, cores, heap, ISA,
the open_clip guard, the CLI, this package). A module added anywhere is in the fingerprint of every
stage that can reach it, and of no other. Upgrading to a version whose scorer changed reruns
training, evaluation and the report; a changed report reruns the report alone. The CLI records the
same fingerprint in a result JSON (`code`). A manifest depends on its own benchmark's loader only,
so a fix to one loader rereads that benchmark, not every other. Following the imports and hashing the
files costs about 10 ms of CPU for a stage (30 ms for all of them), once per process; nothing here
imports torch, numpy or open_clip.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from ..errors import UnknownNameError
from . import imports

__all__ = ["PACKAGE", "STAGES", "cache_clear", "code_fingerprint", "items_fingerprint", "stage_modules"]

PACKAGE = Path(__file__).resolve().parent.parent  # src/dcsm_cache

#: stage -> the `dcsm-cache` commands its rules run (a test reads the rules and holds them to this)
STAGES: dict[str, tuple[str, ...]] = {
    "world": ("world",),
    "domains": ("domains world",),
    "export": ("export-world",),
    "pretrain": ("pretrain",),
    "extract": ("extract",),
    "train": ("train",),
    "evaluate": ("eval",),
    "zeroshot": ("zeroshot",),
    "retrieval": ("retrieval",),
    "linear_probe": ("linear-probe",),
    "report": ("report",),
    "gallery": ("gallery",),
    "domains_table": ("domains table",),
    "analyze": ("analyze cka", "analyze umap", "stats"),
}


def _digest(files, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for path in sorted(files):
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def _stage(stage: str) -> tuple[str, ...]:
    if stage not in STAGES:
        raise UnknownNameError(f"unknown workflow stage {stage!r}; valid: {', '.join(STAGES)}")
    return STAGES[stage]


@functools.lru_cache(maxsize=None)
def _stage_files(stage: str) -> frozenset[Path]:
    roots = set()
    for command in _stage(stage):
        try:
            roots |= imports.command_roots(PACKAGE, command)
        except KeyError:
            raise UnknownNameError(
                f"workflow stage {stage} runs `dcsm-cache {command}`, which is no command: update workflow/code.py"
            ) from None
    return frozenset(imports.closure(PACKAGE, roots))


def stage_modules(stage: str) -> tuple[str, ...]:
    """The files (relative to the package, sorted) whose contents make the stage's fingerprint."""
    return tuple(sorted(p.relative_to(PACKAGE).as_posix() for p in _stage_files(stage)))


@functools.lru_cache(maxsize=None)
def code_fingerprint(stage: str) -> str:
    """12 hex digits of sha256 over the stage's files (names and contents)."""
    return _digest(_stage_files(stage))


@functools.lru_cache(maxsize=None)
def items_fingerprint(benchmark: str, paper_compat: bool = False) -> str:
    """The fingerprint of what writes one benchmark's manifest (what `dcsm-cache items` runs for it): its loader,
    the manifest writer and, for `paper_compat`, the reference's captions, with what they import; and its registry
    entry's options. The registry stands for its entry alone, not its file (which imports every other loader):
    a fix to one loader rereads that benchmark, not every other."""
    from ..pipeline.benchmarks import get_benchmark  # the registry imports numpy and PIL: only when asked

    bench = get_benchmark(benchmark)
    registry = PACKAGE.parent.joinpath(*get_benchmark.__module__.split("."), "__init__.py")
    loader = PACKAGE.parent.joinpath(*bench.loader.__module__.split(".")).with_suffix(".py")
    roots = {loader, *imports.resolve(PACKAGE / "pipeline" / "items", ("write_manifest",), PACKAGE)}
    if paper_compat:
        roots |= imports.resolve(PACKAGE / "pipeline" / "paper" / "captions", (), PACKAGE)
    files = imports.closure(PACKAGE, roots, leave_out={registry})
    return _digest(files, extra=repr(sorted(bench.options.items())))


def cache_clear() -> None:
    """Forget every fingerprint and file read (for a test that edits the package under a running interpreter)."""
    for f in (_stage_files, code_fingerprint, items_fingerprint):
        f.cache_clear()
    imports.cache_clear()
