"""The Zarr feature store: per-patch image tokens and per-token text tokens, one group per (backbone, dataset).

    store = FeatureStore.open("stores/shapes-clip/shapes_spatial.zarr", backbone_id=bb.identity_key)
    tokens = store.image_tokens[0:32]          # [32, P, D] float16, unit-norm rows

This module and its fast reader (raw_rows.py) are the only code that knows the on-disk layout
(design.md, "The feature store"); how zarr lays out its files is `chunk_files.py`'s alone, and
the science opens a store through `pipeline/reading.py`. The store is a plain Zarr v3 hierarchy that
other tools open as it is (docs/stores.md): every array names its dimensions (`DIMENSIONS`, for xarray), and nothing
but Zarr nodes lies inside it. Arrays are created at full size up front, in a folder beside the
store that is renamed into place when whole; extraction fills them in chunk-aligned parts, each
then marked finished in the group's attributes (`finished_parts`, with the part's unreadable images,
in one atomic write of `zarr.json` under the store lock), so a crashed part is redone and a finished
part is never written twice. When the last part is marked, the bookkeeping becomes `complete: true`
and `bad_images` (every unreadable image, by row), the same whatever the part count. A process
writes a part only while it holds that part's lock (`hold_part`, an OS file lock beside the store
that the kernel releases when the process dies); a second one stops with a line naming the holder,
or waits. Every chunk ends in a crc32c checksum (Zarr v3's codec): a changed byte is an error on
reading, never a plausible number (`verify.py` checks them all). Reading a store checks its schema,
backbone, dataset fingerprint and that every part is finished.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import zarr

from .. import faults
from ..errors import IncompleteStoreError, StoreMismatchError, StoreNotFoundError
from .chunk_files import checksum_codecs, group_attrs, is_group, partial_files, partial_metadata
from .locks import part_lock, store_lock
from .raw_rows import RawRows

# 2: attrs name the backbone by what was loaded (backbone_id, identity); 3: every chunk carries a crc32c checksum;
# 4: arrays name their dimensions, and part markers and unreadable images are attributes (nothing but Zarr nodes)
SCHEMA_VERSION = 4
CHUNK_BYTES = 1_500_000  # ~1.5 MB per chunk of the large arrays; fp16 does not compress: no compressor, a checksum
FINISHED = "finished_parts"  # while parts are missing: {"K": [the unreadable images of part K]} per finished part
BAD_IMAGES = "bad_images"  # once complete: every unreadable image ({row, path, reason}), by row
_BOOKKEEPING = (FINISHED, BAD_IMAGES, "complete")
# Each array's Zarr v3 dimension_names: a name shared by arrays of a group has one size there, so xarray
# reads each group as one Dataset (`view`: the augmented views 1..K-1 of `extract --set views=K`).
DIMENSIONS = {
    "image/tokens": ("image", "image_token", "dim"),
    "image/pooled": ("image", "dim"),
    "image/valid": ("image",),
    "image/views": ("image", "view", "image_token", "dim"),
    "image/views_pooled": ("image", "view", "dim"),
    "text/tokens": ("caption", "text_token", "dim"),
    "text/length": ("caption",),
    "text/ids": ("caption", "text_token"),
    "text/pooled": ("caption", "dim"),
}
# attrs that say how things were named, not what they are: a store is reused whatever their spelling
_NAMES_ONLY = ("backbone", "weights", "manifest")


@dataclass(frozen=True)
class StoreShape:
    n_images: int
    n_tokens: int  # P: image tokens per image
    n_captions: int
    text_len: int  # L: longest caption in tokens
    dim: int  # D: joint-space width
    views: int = 1  # K: views per image; views 1..K-1 (augmented, `extract --set views=K`) in image/views

    def record(self) -> dict:
        """The shape as the store's attrs hold it (`views` only where there are augmented views)."""
        return {k: v for k, v in self.__dict__.items() if k != "views" or v > 1}


def _layout(shape: StoreShape) -> dict[str, dict[str, tuple]]:
    """Array name -> (shape, dtype) per group, with the chunk rows that parts align to.

    A store with K > 1 views also holds image/views [N, K-1, P, D] and image/views_pooled [N, K-1, D]:
    views 1..K-1 of each image, chunked by the same rows as image/tokens (view 0 is image/tokens)."""
    image = {
        "tokens": ((shape.n_images, shape.n_tokens, shape.dim), "float16"),
        "pooled": ((shape.n_images, shape.dim), "float16"),
        "valid": ((shape.n_images,), "bool"),
    }
    if shape.views > 1:
        image["views"] = ((shape.n_images, shape.views - 1, shape.n_tokens, shape.dim), "float16")
        image["views_pooled"] = ((shape.n_images, shape.views - 1, shape.dim), "float16")
    return {
        "image": image,
        "text": {
            "tokens": ((shape.n_captions, shape.text_len, shape.dim), "float16"),
            "length": ((shape.n_captions,), "int32"),
            "ids": ((shape.n_captions, shape.text_len), "int32"),
            "pooled": ((shape.n_captions, shape.dim), "float16"),
        },
    }


def _rows_per_chunk(row_bytes: int) -> int:
    return max(1, CHUNK_BYTES // max(1, row_bytes))


def _chunk_rows(arrays: dict[str, tuple], rows: int = 0) -> int:
    """One chunk height per group: `rows`, or what the large tokens array's ~CHUNK_BYTES give, so every
    array's chunks align."""
    (n, *rest), dtype = arrays["tokens"]
    return min(max(1, n), rows or _rows_per_chunk(int(np.prod(rest)) * np.dtype(dtype).itemsize))


def _group_rows(shape: StoreShape, chunk_rows: int | dict[str, int]) -> dict[str, int]:
    """Chunk rows per group: `chunk_rows` for both (0: ~CHUNK_BYTES), or as given per group (a copy's)."""
    layout = _layout(shape)
    if isinstance(chunk_rows, dict):
        return {g: _chunk_rows(arrays, int(chunk_rows.get(g, 0))) for g, arrays in layout.items()}
    return {g: _chunk_rows(arrays, chunk_rows) for g, arrays in layout.items()}


def build_arrays(folder: Path, shape: StoreShape, attrs: dict, rows: dict[str, int]) -> zarr.Group:
    """Make the store's group and every array at full size in `folder` (which must not exist yet)."""
    group = zarr.open_group(folder, mode="w", zarr_format=3)
    for gname, arrays in _layout(shape).items():
        for name, (shp, dtype) in arrays.items():
            group.create_array(
                f"{gname}/{name}",
                shape=shp,
                dtype=dtype,
                compressors=checksum_codecs(),  # fp16 does not compress: a checksum alone (chunk_files.py)
                chunks=(rows[gname], *shp[1:]) if shp[0] else shp,
                fill_value=0,
                dimension_names=DIMENSIONS[f"{gname}/{name}"],
                config={"write_empty_chunks": True},  # every chunk of a finished part is a file
            )
            faults.point("store.create")
    group.attrs.update(attrs)
    return group


def finished_attrs(attrs: dict, finished: dict[str, list]) -> dict:
    """`attrs` with parts `finished` ({"K": its unreadable images}) recorded: `finished_parts` while some
    are missing; once all `nparts` are there, `bad_images` (all of them, by row) and `complete`."""
    kept = {k: v for k, v in attrs.items() if k not in _BOOKKEEPING}
    if len(finished) < attrs["nparts"]:
        return {**kept, FINISHED: {k: finished[k] for k in sorted(finished, key=int)}}
    bad = sorted((r for part in finished.values() for r in part), key=lambda r: r["row"])
    return {**kept, BAD_IMAGES: bad, "complete": True}


def part_ranges(n_rows: int, chunk: int, nparts: int) -> list[tuple[int, int]]:
    """Split rows [0, n_rows) into `nparts` contiguous ranges whose bounds are multiples of `chunk`."""
    n_chunks = math.ceil(n_rows / chunk) if n_rows else 0
    bounds = [round(i * n_chunks / nparts) * chunk for i in range(nparts + 1)]
    return [(min(a, n_rows), min(b, n_rows)) for a, b in zip(bounds, bounds[1:])]


class FeatureStore:
    """A handle on one store; `create` makes it, `open` checks and reads it."""

    def __init__(self, path: Path, group: zarr.Group):
        self.path, self.group = path, group
        self._bad: dict[int, list[dict]] = {}
        self._raw: RawRows | None = None

    # -- creating and filling -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        shape: StoreShape,
        attrs: dict,
        nparts: int = 1,
        overwrite: bool = False,
        chunk_rows: int = 0,
    ) -> "FeatureStore":
        """Create the store with every array at full size; reuse it if it was made with the same attrs
        and chunks (`chunk_rows` rows per chunk, 0: ~CHUNK_BYTES per chunk of the tokens arrays).

        A store made with other attrs (another backbone, dataset version or part count) is replaced
        only with `overwrite`; otherwise its finished parts are kept and this is an error. Parts
        started at once by several processes serialise here on a lock file beside the store. The
        arrays are made in `.NAME.creating` and renamed to `path` when whole, so a process killed
        while creating leaves no half store (the next one clears the folder and starts again).
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with store_lock(path):
            return cls._create_locked(path, shape, attrs, nparts, overwrite, chunk_rows)

    @classmethod
    def _create_locked(
        cls, path: Path, shape: StoreShape, attrs: dict, nparts: int, overwrite: bool, chunk_rows: int
    ) -> "FeatureStore":
        attrs = {**attrs, "schema_version": SCHEMA_VERSION, "shape": shape.record(), "nparts": nparts}
        rows = _group_rows(shape, chunk_rows)
        if is_group(path):
            old = group_attrs(path)
            old_group = zarr.open_group(path, mode="r")
            new = json.loads(json.dumps(attrs))
            changed = sorted(k for k in new if k not in _NAMES_ONLY and old.get(k) != new[k])
            if any(g in old_group and old_group[f"{g}/tokens"].chunks[0] != r for g, r in rows.items()):
                changed.append("chunk rows")
            if not changed:
                return cls(path, zarr.open_group(path, mode="r+"))
            if not overwrite and (old.get(FINISHED) or old.get("complete")):
                raise StoreMismatchError(
                    f"{path} holds finished parts made with other settings ({', '.join(changed)}): "
                    f"pass --overwrite to re-extract, or extract into another path"
                )
            for part in range(old.get("nparts", 0) if isinstance(old.get("nparts"), int) else 0):
                with part_lock(path, part, old["nparts"], wait=False):
                    pass  # a part being written by another process is never deleted under it
            shutil.rmtree(path)
        elif path.exists():  # no zarr.json: a folder left by a process killed while replacing it
            shutil.rmtree(path)
        tmp = path.parent / f".{path.name}.creating"
        shutil.rmtree(tmp, ignore_errors=True)  # left by a process killed while creating
        build_arrays(tmp, shape, attrs, rows)
        os.rename(tmp, path)
        return cls(path, zarr.open_group(path, mode="r+"))

    @contextlib.contextmanager
    def hold_part(self, part: int, wait: bool = False) -> Iterator[None]:
        """Hold part `part`'s lock while writing it: another holder is a PartBusyError naming it (or, with
        `wait`, waited for). Partial chunk files a killed writer of this part left are removed."""
        with part_lock(self.path, part, self.attrs["nparts"], wait):
            self._sweep(part)
            yield

    def _sweep(self, part: int) -> None:
        """Remove the temporary chunk files (atomic writes cut short) in this part's chunks."""
        for g, (a, b) in self.part_rows(part).items():
            for name in self.group[g].array_keys():
                rows = self.group[f"{g}/{name}"].chunks[0]
                for c, tmp in partial_files(self.path, f"{g}/{name}"):
                    if a // rows <= c < -(-b // rows):
                        tmp.unlink(missing_ok=True)

    def part_rows(self, part: int) -> dict[str, tuple[int, int]]:
        """The image and caption row ranges that part `part` of `nparts` writes."""
        nparts = self.attrs["nparts"]
        if not 0 <= part < nparts:
            raise ValueError(f"part {part} outside 0..{nparts - 1}")
        return {
            g: part_ranges(self.group[f"{g}/tokens"].shape[0], self.group[f"{g}/tokens"].chunks[0], nparts)[part]
            for g in ("image", "text")
        }

    def part_done(self, part: int) -> bool:
        """Whether part `part` is finished (read from disk: another process may have finished it)."""
        a = group_attrs(self.path)
        return bool(a.get("complete")) or str(part) in (a.get(FINISHED) or {})

    def mark_done(self, part: int) -> None:
        """Mark part `part` finished, with the unreadable images `write_bad_images` gave it, in one atomic
        write of the group's attributes under the store lock (parts finish in any order, in any process)."""
        faults.point("part.marker")
        bad = self._bad.pop(part, [])
        with store_lock(self.path):
            _clear_partial(self.path)
            group = zarr.open_group(self.path, mode="r+")
            attrs = group.attrs.asdict()
            if not attrs.get("complete"):
                group.attrs.put(finished_attrs(attrs, {**(attrs.get(FINISHED) or {}), str(part): bad}))
            self._reopen()

    def finish(self) -> bool:
        """Whether the store is complete (every part marked); clears a `zarr.json` write a kill cut short."""
        with store_lock(self.path):
            _clear_partial(self.path)
            self._reopen()
        return bool(self.attrs.get("complete"))

    def _reopen(self) -> None:
        """Read the group's metadata again (attributes another process or a part marker changed)."""
        self.group = zarr.open_group(self.path, mode="r" if self.group.read_only else "r+")

    def write(self, name: str, start: int, values: np.ndarray) -> None:
        self.group[name][start : start + len(values)] = values
        faults.point("chunk.write")

    def write_bad_images(self, part: int, bad: list[dict]) -> None:
        """The part's unreadable images ({row, path, reason} each), recorded with its marker by `mark_done`."""
        self._bad[part] = [dict(r) for r in bad]

    def bad_images(self) -> list[dict]:
        """Every finished part's unreadable images, by row (the `bad_images` attribute once complete)."""
        a = group_attrs(self.path)
        if a.get("complete"):
            return list(a.get(BAD_IMAGES, []))
        return sorted((r for part in (a.get(FINISHED) or {}).values() for r in part), key=lambda r: r["row"])

    # -- opening and reading --------------------------------------------------------------------
    def read_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Rows `rows` (any order, repeats allowed) of array `name`, from its mapped chunk files (raw_rows.py)."""
        if self._raw is None:
            self._raw = RawRows(self.path, self.group)
        return self._raw.read(name, rows)

    @classmethod
    def open(
        cls, path: str | os.PathLike, backbone_id: str | None = None, fingerprint: str | None = None
    ) -> "FeatureStore":
        path = Path(path)
        if not is_group(path):
            raise StoreNotFoundError(f"no feature store at {path}: run `dcsm-cache extract --out {path}` first")
        store = cls(path, zarr.open_group(path, mode="r"))
        a = store.attrs
        if a.get("schema_version") != SCHEMA_VERSION:
            raise StoreMismatchError(
                f"{path} has store schema {a.get('schema_version')}, this dcsm-cache reads "
                f"{SCHEMA_VERSION}: re-extract it"
            )
        if backbone_id is not None and a.get("backbone_id") != backbone_id:
            raise StoreMismatchError(
                f"{path} was extracted with another backbone ({a.get('backbone')!r}, "
                f"id {a.get('backbone_id')}, not {backbone_id}): use the store of that "
                f"backbone or re-extract"
            )
        if fingerprint is not None:
            store.check_fingerprint(fingerprint)
        if not a.get("complete") and not all(store.part_done(i) for i in range(a["nparts"])):
            missing = [i for i in range(a["nparts"]) if not store.part_done(i)]
            raise IncompleteStoreError(
                f"{path} is missing extraction part(s) {missing} of {a['nparts']}: "
                f"rerun `dcsm-cache extract` with those --part values"
            )
        return store

    def check_fingerprint(self, fingerprint: str) -> None:
        """A store extracted from another version of its dataset is an error, never a stale score."""
        found = self.group.attrs.get("fingerprint")
        if found != fingerprint:
            raise StoreMismatchError(
                f"{self.path} was extracted from another version of dataset "
                f"{self.group.attrs.get('dataset')!r} (fingerprint {found} != {fingerprint}): "
                f"re-extract it"
            )

    @property
    def attrs(self) -> dict:
        return self.group.attrs.asdict()

    def __getitem__(self, name: str) -> zarr.Array:
        return self.group[name]

    @property
    def views(self) -> int:
        """K, the views per image: 1 (the plain one, image/tokens) unless extracted with `views=K`."""
        return int(self.attrs["shape"].get("views", 1))

    image_tokens = property(lambda self: self.group["image/tokens"])
    image_pooled = property(lambda self: self.group["image/pooled"])
    image_valid = property(lambda self: self.group["image/valid"])
    text_tokens = property(lambda self: self.group["text/tokens"])
    text_length = property(lambda self: self.group["text/length"])
    text_ids = property(lambda self: self.group["text/ids"])
    text_pooled = property(lambda self: self.group["text/pooled"])


def install(folder: Path, path: Path, overwrite: bool) -> None:
    """Rename the whole store built in `folder` to `path`. A store already at `path` is an error, or with
    `overwrite` replaced (never while one of its parts is being written), under the store lock: `path` is
    never half a store, only the old one, briefly nothing, then the new one."""
    with store_lock(path):
        if path.exists():
            if not overwrite:
                raise StoreMismatchError(f"{path} already exists: pass --overwrite to replace it, or use another path")
            old = group_attrs(path)
            nparts = old.get("nparts") if isinstance(old.get("nparts"), int) else 0
            for part in range(nparts):
                with part_lock(path, part, nparts, wait=False):
                    pass  # a part being written by another process is never deleted under it
            trash = path.parent / f".{path.name}.replaced"
            shutil.rmtree(trash, ignore_errors=True)
            os.rename(path, trash)
            os.rename(folder, path)
            shutil.rmtree(trash)
        else:
            os.rename(folder, path)


def _clear_partial(path: Path) -> None:
    """Remove the group's `zarr.json` writes a kill cut short (`chunk_files.partial_metadata`)."""
    for tmp in partial_metadata(path):
        tmp.unlink(missing_ok=True)
