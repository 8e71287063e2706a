"""The flags a rule passes, made from settings in one canonical form, so that YAML style never reruns a job.

    set_flags({"steps": 400, "scorer": {"residual": False, "global_cosine": False}})
    # --set 'scorer={"global_cosine":false,"residual":false}' --set steps=400

Snakemake reruns a job when its params change. A rule's params are these flags, so they must depend
on what the settings say and on nothing else: keys are sorted at every depth, tuples become lists,
a float with an integral value is written as the integer (`400.0` and `400` mean the same to every
stage: `--set` values are coerced to the field's type), and each value is compact JSON with sorted
keys. Key order, quoting and block or flow style of the YAML therefore never change a flag, and a
changed value changes exactly the flags of the jobs it feeds.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Mapping

from ..errors import ConfigError

__all__ = ["canonical", "canonical_json", "set_flags"]


def canonical(value: Any) -> Any:
    """`value` with mappings key-sorted, sequences as lists and integral floats as ints, at every depth."""
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(
        f"setting value {value!r} is a {type(value).__name__}: use a number, string, boolean, list or mapping"
    )


def canonical_json(value: Any) -> str:
    """Compact JSON of the canonical form: one text per meaning."""
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))


def set_flags(settings: Mapping[str, Any] | None) -> str:
    """`--set KEY=VALUE` for each setting, sorted by key, values as canonical JSON, shell-quoted."""
    flat = canonical(dict(settings or {}))
    return " ".join(f"--set {shlex.quote(f'{key}={canonical_json(value)}')}" for key, value in flat.items())
