"""Checking a store's bytes and values, chunk by chunk: what `dcsm-cache verify STORE` prints.

    summary, problems = verify_store("stores/shapes-clip/shapes_spatial.zarr")
    for p in problems: print(p)   # image/tokens rows 0-31: chunk fails its crc32c checksum

Checked: every part finished; every chunk of a finished part present and passing its crc32c
checksum; no NaN or inf; every token row of a valid image (and of its cached views), and every real
token row of a caption, of unit norm; every row of an invalid image zero; the manifest the store was extracted from
unchanged (its fingerprint). Memory stays at one chunk of each array of a group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from ..errors import DcsmCacheError, StoreNotFoundError
from .chunk_files import chunk_path, is_checksum_error, is_group
from .feature_store import SCHEMA_VERSION, FeatureStore

__all__ = ["Problem", "verify_store"]

NORM_TOL = 1e-2  # float16 unit vectors are within ~1e-3 of norm 1


@dataclass(frozen=True)
class Problem:
    array: str
    rows: tuple[int, int] | None  # first and last row concerned (inclusive)
    what: str

    def __str__(self) -> str:
        where = f" rows {self.rows[0]}-{self.rows[1]}" if self.rows else ""
        return f"{self.array}{where}: {self.what}"


def _runs(name: str, start: int, bad: np.ndarray, what: str) -> list[Problem]:
    """One problem for the rows where `bad` is true (first to last, with their count)."""
    idx = np.flatnonzero(bad)
    if not len(idx):
        return []
    return [Problem(name, (start + int(idx[0]), start + int(idx[-1])), f"{what} in {len(idx)} row(s)")]


def _check_values(g: str, s: int, v: dict[str, np.ndarray]) -> list[Problem]:
    out = []
    for name, x in v.items():
        if x.dtype.kind == "f":
            out += _runs(f"{g}/{name}", s, ~np.isfinite(x.reshape(len(x), -1)).all(axis=1), "NaN or inf")
    if g == "image":
        valid = v["valid"].astype(bool)
        for name in ("tokens", "views"):  # views: [rows, K-1, positions, D]
            if name in v:
                unit = np.linalg.norm(np.nan_to_num(v[name].astype(np.float32)), axis=-1).reshape(len(valid), -1)
                off_rows = (np.abs(unit - 1) > NORM_TOL).any(axis=1)
                out += _runs(f"image/{name}", s, off_rows & valid, "token rows of a valid image not of unit norm")
        for name in [n for n in ("tokens", "pooled", "views", "views_pooled") if n in v]:
            nonzero = (v[name].reshape(len(valid), -1) != 0).any(axis=1)
            out += _runs(f"image/{name}", s, nonzero & ~valid, "rows of an invalid image not zero")
    else:
        norms = np.linalg.norm(np.nan_to_num(v["tokens"].astype(np.float32)), axis=-1)  # [rows, positions]
        off = np.abs(norms - 1) > NORM_TOL
        real = np.arange(off.shape[1])[None, :] < v["length"][:, None]
        out += _runs("text/tokens", s, (off & real).any(axis=1), "real token rows not of unit norm")
    return out


def verify_store(path: str | os.PathLike, items: str | os.PathLike | None = None) -> tuple[dict, list[Problem]]:
    """({parts, chunks, rows} checked, problems) for the store at `path`; no problems means it is sound."""
    path = Path(path)
    if not is_group(path):
        raise StoreNotFoundError(f"no feature store at {path}: check the path")
    store = FeatureStore(path, zarr.open_group(path, mode="r"))
    a, problems = store.attrs, []
    if a.get("schema_version") != SCHEMA_VERSION:
        problems.append(
            Problem(
                "store",
                None,
                f"schema {a.get('schema_version')}, not {SCHEMA_VERSION} (an older layout): re-extract it",
            )
        )
    nparts, counted = int(a.get("nparts", 1)), {"parts": 0, "chunks": 0, "rows": 0}
    for part in range(nparts):
        ranges = store.part_rows(part)
        if not store.part_done(part):
            problems.append(
                Problem(
                    "image",
                    (ranges["image"][0], ranges["image"][1] - 1),
                    f"part {part} of {nparts} not finished: rerun `dcsm-cache extract --part {part} --nparts {nparts}`",
                )
            )
            continue
        counted["parts"] += 1
        for g, (lo, hi) in ranges.items():
            chunk = store[f"{g}/tokens"].chunks[0]
            for s in range(lo, hi, chunk):
                e, values = min(hi, s + chunk), {}
                for name in sorted(store.group[g].array_keys()):
                    full = f"{g}/{name}"
                    if not chunk_path(store.path, full, store[full], s // chunk).is_file():
                        problems.append(Problem(full, (s, e - 1), "chunk file missing"))
                        continue
                    try:
                        values[name] = store[full][s:e]
                    except Exception as err:  # noqa: BLE001  (only a checksum failure is a finding)
                        if not is_checksum_error(err):
                            raise
                        problems.append(Problem(full, (s, e - 1), "chunk fails its crc32c checksum"))
                    counted["chunks"] += 1
                if len(values) == len(list(store.group[g].array_keys())):
                    problems += _check_values(g, s, values)
                counted["rows"] += e - s
    problems += _check_manifest(store, items)
    return counted, problems


def _check_manifest(store: FeatureStore, items) -> list[Problem]:
    from ..pipeline.items import manifest_fingerprint

    manifest = Path(items or store.attrs.get("manifest", ""))
    if not manifest.is_file():
        return [Problem("manifest", None, f"{manifest} is missing: pass --items to check the fingerprint")]
    try:
        found = manifest_fingerprint(manifest)
    except DcsmCacheError as err:
        return [Problem("manifest", None, str(err))]
    if found != store.attrs.get("fingerprint"):
        return [
            Problem(
                "manifest",
                None,
                f"{manifest} has fingerprint {found}, the store was extracted from {store.attrs.get('fingerprint')}: "
                f"re-extract it",
            )
        ]
    return []
