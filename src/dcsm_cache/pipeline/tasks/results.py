"""The one result writer: every task's result JSON goes through here, atomically.

    write_result(evaluate(store, "cosine"), "results/shapes-clip/shapes_spatial/cosine.json")

A result is a JSON object; those with `dataset`, `backbone` and `scorer` are what `report` merges.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...atomic import write_json

__all__ = ["write_result"]


def write_result(result: dict, out: str | os.PathLike) -> Path:
    return write_json(result, out)
