"""The result schema: which keys a result JSON must hold, declared once and checked when a result is read.

    result = read_result("results/default/shapes-clip/shapes_spatial/dcsm.json")   # checked, or one error line
    row_name(result)                                                                 # 'shapes-clip'

Every task writes its result through `results.write_result`; `report`, `gallery` and the figures read
them through `read_result` here, so the keys they rely on are written down (docs/results.md) rather
than found by accident. A result's kind is its `task` key (`zeroshot`, `retrieval`, `linear_probe`), or
`choice` when it has none (`dcsm-cache eval`). Each kind declares REQUIRED keys, checked at the top level and,
for `subsets`, in every subset; a missing one is a `ResultSchemaError` naming the file and the key.
Keys not declared are allowed (other versions add keys, e.g. `provenance`); OPTIONAL ones are read
when present: `backbone_name`, the workflow's backbone key, names the row (else the backbone spec
before any `@path`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ...errors import BadInputError

__all__ = [
    "KINDS",
    "OPTIONAL",
    "REQUIRED",
    "SUBSET_REQUIRED",
    "ResultSchemaError",
    "check_result",
    "kind_of",
    "read_result",
    "read_results",
    "row_name",
    "stderr",
]

KINDS = ("choice", "zeroshot", "retrieval", "linear_probe")

_COMMON = ("dataset", "backbone", "scorer", "metric", "accuracy", "chance", "n_items", "subsets")
_TRACE = ("store_fingerprint", "config_hash", "code")

REQUIRED: dict[str, tuple[str, ...]] = {
    "choice": (*_COMMON, *_TRACE),
    "zeroshot": (*_COMMON, "task", "n_classes", *_TRACE),
    "retrieval": (*_COMMON, "task", "n_images", "n_texts", "image_to_text", "text_to_image", *_TRACE),
    "linear_probe": (
        *_COMMON,
        "task",
        "n_classes",
        "train_dataset",
        "shots",
        "C",
        "stderr",
        "mean_per_class",
        "mean_per_class_stderr",
        "train_store_fingerprint",
        *_TRACE,
    ),
}
# keys every subset of `subsets` holds, per kind
SUBSET_REQUIRED: dict[str, tuple[str, ...]] = {kind: ("accuracy", "chance", "n_items") for kind in KINDS}
# read when present; any other key is allowed and ignored
OPTIONAL = ("backbone_name", "backbone_id", "checkpoint", "n_skipped", "provenance", "skipped")


class ResultSchemaError(BadInputError):
    """A result file lacks a key the schema declares."""


def kind_of(result: dict) -> str:
    task = result.get("task")
    return task if task in KINDS else "choice"


def check_result(result, path: str | os.PathLike = "<result>") -> dict:
    """`result` itself, if it holds every key its kind declares; else one error naming `path` and the key."""
    if not isinstance(result, dict):
        raise ResultSchemaError(f"result {path} is a JSON {type(result).__name__}, not an object: rerun its task")
    kind = kind_of(result)
    for key in REQUIRED[kind]:
        if key not in result:
            raise ResultSchemaError(
                f"result {path} lacks key {key!r}, which {kind} results must hold (docs/results.md): "
                f"rerun its task with this dcsm-cache"
            )
    if not isinstance(result["subsets"], dict):
        raise ResultSchemaError(f"result {path}: key 'subsets' is not an object (docs/results.md)")
    for name, sub in result["subsets"].items():
        for key in SUBSET_REQUIRED[kind]:
            if not isinstance(sub, dict) or key not in sub:
                raise ResultSchemaError(
                    f"result {path} lacks key 'subsets.{name}.{key}', which {kind} results must hold "
                    f"(docs/results.md): rerun its task with this dcsm-cache"
                )
    return result


def read_result(path: str | os.PathLike) -> dict:
    """One result file, parsed and checked (see the module doc); its path is kept under `_path`."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BadInputError(f"result {path} cannot be read ({type(err).__name__}): rerun its task") from err
    return {**check_result(result, path), "_path": str(path)}


def read_results(paths) -> list[dict]:
    return [read_result(p) for p in paths]


def row_name(result: dict) -> str:
    """The backbone's name in tables: the workflow's key if the result has one, else the spec without a path."""
    name = result.get("backbone_name")
    return str(name) if name else str(result["backbone"]).split("@", 1)[0]


def stderr(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy over n items (nan when n is 0)."""
    if not n or accuracy is None or math.isnan(accuracy):
        return float("nan")
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n)
