"""The manifest file: a `Dataset` as JSON with a fingerprint, written and read in one streaming pass.

    fp = write_manifest(ds, "manifests/whatsup_a.json")
    ds = read_manifest("manifests/whatsup_a.json"); fp == manifest_fingerprint("manifests/whatsup_a.json")

Paths survive a move. The dataset's root is recorded as given when absolute, else relative to the
manifest's own folder (`../data/world` for `manifests/x.json` and `data/world`), and resolved
against that folder when read: the manifest works from any working directory, and a project folder
moved whole (or cloned afresh) keeps its manifests. (Schema 1 manifests recorded the root as typed,
relative to the working directory, and are read so.)

The fingerprint is what decides the features, not where they lie: the manifest's content (image
paths relative to the root, captions, items, name, metric; not the root) and each image file's
size and crc32c, of every byte. The feature store records it, so that a changed dataset is never
scored against a stale cache, while the same images in another folder, or in a fresh clone with
other file times, find their store still current. Hashing every byte costs one read of the dataset
at `items` (crc32c, hardware-accelerated, the store's own chunk checksum: ~3 GB/s, so the disk sets
the pace), less than extraction, which reads every image too and runs the model on it; files are
read by a few threads, each distinct file once (tar shards and crops share theirs). A size and a
sampled prefix would be cheaper still, but would miss an image replaced by one of the same size
inside a tar shard, whose size moves in steps of 512 bytes. `bench_manifest.py` measures it. The
file is written one record a line and read back a chunk of lines at a time, so a million-item
manifest takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import google_crc32c

from ...atomic import atomic_path
from ...errors import BadInputError, InputNotFoundError
from .form import Dataset, ImageRef, Item

MANIFEST_SCHEMA = 2  # 2: the root relative to the manifest's folder, a fingerprint of content, not place or time
READERS = 8  # threads reading image files for the fingerprint (the disk's latency, not the CPU, is the limit)
_BLOCK = 1 << 22  # bytes read at a time
_SEEN = 1 << 16  # files whose stamp is kept, for later rows of the same file


def _content(ds: Dataset) -> dict:
    """The manifest as one JSON object, but its root (what the fingerprint hashes: json.dumps(..., sort_keys=True))."""
    return {
        "schema": MANIFEST_SCHEMA,
        "name": ds.name,
        "metric": ds.metric,
        "images": [{"path": r.path, **_extras(r)} for r in ds.images],
        "captions": list(ds.captions),
        "items": [
            {
                "image": it.image,
                "candidates": list(it.candidates),
                "correct": it.correct,
                "subset": it.subset,
                **({"tags": dict(it.tags)} if it.tags else {}),
                **({"opposite": it.opposite} if it.opposite is not None else {}),
            }
            for it in ds.items
        ],
    }


# Large manifests are encoded a record at a time, with the same bytes json.dumps(_content(ds),
# sort_keys=True) would give.
_esc = json.encoder.encode_basestring_ascii
_encode = json.JSONEncoder(sort_keys=True).encode
_CHUNK = 8192
_HEAD = f'{{"schema": {MANIFEST_SCHEMA}, "fingerprint": "'  # the fingerprint is patched in last
_REWRITE = (
    "rewrite it with `dcsm-cache items` (one written by hand: `dcsm-cache items manifest --root DIR --set file=FILE`)"
)


def _extras(r: ImageRef) -> dict:
    """An image record's optional fields, only where set (so older manifests and fingerprints are unchanged)."""
    return {
        **({"box": list(r.box)} if r.box else {}),
        **({"member": r.member} if r.member else {}),
        **({"canvas": r.canvas} if r.canvas else {}),
    }


def _image_json(r: ImageRef) -> str:
    if r.box is None and r.member is None and r.canvas is None:
        return '{"path": ' + _esc(r.path) + "}"
    return _encode({"path": r.path, **_extras(r)})


def _item_json(it: Item) -> str:
    tags = ', "tags": ' + _encode(dict(it.tags)) if it.tags else ""
    opposite = f'"opposite": {it.opposite}, ' if it.opposite is not None else ""  # keys sorted, as json.dumps
    return (
        f'{{"candidates": [{", ".join(map(str, it.candidates))}], "correct": {it.correct}, '
        f'"image": {it.image}, {opposite}"subset": {_esc(it.subset)}{tags}}}'
    )


def _digest(ds: Dataset, out=None) -> str:
    """The fingerprint; with `out`, also write the sections one record per line to that binary file."""
    h = hashlib.sha256()
    sections = (
        ("captions", map(_esc, ds.captions)),
        ("images", map(_image_json, ds.images)),
        ("items", map(_item_json, ds.items)),
    )
    for n, (key, records) in enumerate(sections):
        h.update(f'{", " if n else "{"}"{key}": ['.encode())
        if out:
            out.write(f'"{key}": [\n'.encode())
        first = True
        while chunk := list(islice(records, _CHUNK)):
            h.update(("" if first else ", ").encode() + ", ".join(chunk).encode())
            if out:
                out.write((("" if first else ",\n") + ",\n".join(chunk)).encode())
            first = False
        h.update(b"]")
        if out:
            out.write((("\n" if not first else "") + ("],\n" if key != "items" else "]}\n")).encode())
    h.update(f', "metric": {_esc(ds.metric)}, "name": {_esc(ds.name)}, "schema": {MANIFEST_SCHEMA}}}'.encode())
    seen: OrderedDict[str, str] = OrderedDict()  # rows of one tar shard (or crops of one image) share a file
    with ThreadPoolExecutor(READERS) as pool:
        for start in range(0, len(ds.images), _CHUNK):
            paths = [os.path.join(ds.root, ref.path) for ref in ds.images[start : start + _CHUNK]]
            todo = [p for p in dict.fromkeys(paths) if p not in seen]
            step = -(-len(todo) // READERS) or 1  # each thread a run of files (a task per file costs more than a read)
            runs = pool.map(_stamps, (todo[i : i + step] for i in range(0, len(todo), step)))
            seen.update(zip(todo, (s for run in runs for s in run)))
            h.update("".join(f"{row}:{seen[p]};" for row, p in enumerate(paths, start)).encode())
            while len(seen) > _SEEN:
                seen.popitem(last=False)
    return h.hexdigest()[:16]


def _stamps(paths: list[str]) -> list[str]:
    return [file_stamp(p) for p in paths]


def file_stamp(path: str) -> str:
    """`size:crc32c` of every byte of the file at `path` (crc32c as 8 hex digits), or "missing"."""
    try:
        with open(path, "rb", buffering=0) as f:
            size, crc = os.fstat(f.fileno()).st_size, 0
            while block := f.read(_BLOCK):
                crc = google_crc32c.extend(crc, block)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return "missing"
    except OSError as err:  # extraction cannot read it either: its row will be invalid
        return f"unreadable:{err.errno}"
    return f"{size}:{crc:08x}"


def fingerprint(ds: Dataset) -> str:
    """sha256 of the manifest content (not its root) and of every image file's size and crc32c (module doc)."""
    return _digest(ds)


def _recorded_root(root: str, manifest: str | os.PathLike) -> str:
    """The root as the manifest records it: as given when absolute, else relative to the manifest's folder."""
    if os.path.isabs(root):
        return root
    try:
        return os.path.relpath(os.path.abspath(root), os.path.dirname(os.path.abspath(manifest)))
    except ValueError:  # another drive (Windows): no relative path
        return os.path.abspath(root)


def _resolved_root(root: str, manifest: str | os.PathLike, schema: int) -> str:
    """The folder the images are under, from the working directory: the recorded root, resolved against the
    manifest's folder (schema 1: against the working directory, as it was written)."""
    if schema < 2 or os.path.isabs(root):
        return root
    return os.path.normpath(os.path.join(os.path.dirname(manifest), root))


def write_manifest(ds: Dataset, path: str | os.PathLike) -> str:
    """Write the manifest atomically, one record per line, in one streaming pass; returns its fingerprint."""
    root = _recorded_root(ds.root, path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(
            (
                _HEAD + "0" * 16 + f'", "name": {_esc(ds.name)}, "root": {_esc(root)}, "metric": {_esc(ds.metric)},\n'
            ).encode()
        )
        fp = _digest(ds, f)
        f.seek(len(_HEAD))
        f.write(fp.encode())
    return fp


def _head(f) -> dict | None:
    """The first line of a manifest in write_manifest's layout, as a dict; None for any other layout."""
    line = f.readline()
    if not (line.startswith(_HEAD) and line.endswith(",\n")):
        return None
    try:
        return json.loads(line[:-2] + "}")
    except json.JSONDecodeError:
        return None


def manifest_fingerprint(path: str | os.PathLike) -> str:
    """The fingerprint recorded in a manifest when it was written (what stores are checked against)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = _head(f)
            if head is None:  # another layout (an older manifest): decode it whole
                f.seek(0)
                head = json.load(f)
            return head["fingerprint"]
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise BadInputError(f"{path} has no recorded fingerprint: {_REWRITE}") from err


def _image_ref(r: dict) -> ImageRef:
    return ImageRef(r["path"], tuple(r["box"]) if r.get("box") else None, r.get("member"), r.get("canvas"))


def _item(r: dict) -> Item:
    return Item(r["image"], tuple(r["candidates"]), r["correct"], r["subset"], r.get("tags", {}), r.get("opposite"))


def _sections(f) -> dict | None:
    """Each section of write_manifest's layout, decoded a chunk of lines at a time; None if the layout differs."""
    out = {}
    for key, make in (("captions", str), ("images", _image_ref), ("items", _item)):
        if f.readline() != f'"{key}": [\n':
            return None
        rows, lines, end = [], [], "],\n" if key != "items" else "]}\n"
        for line in f:
            if line == end:
                break
            lines.append(line)
            if len(lines) == _CHUNK:
                rows += map(make, json.loads("[" + "".join(lines).rstrip().rstrip(",") + "]"))
                lines = []
        else:
            return None
        rows += map(make, json.loads("[" + "".join(lines).rstrip().rstrip(",") + "]"))
        out[key] = tuple(rows)
    return out


def read_manifest(path: str | os.PathLike) -> Dataset:
    """The Dataset of a manifest; write_manifest's layout is read a chunk of lines at a time."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"no manifest at {path}: run `dcsm-cache items` for that dataset first")
    try:
        with open(path, encoding="utf-8") as f:
            doc = _head(f)
            try:
                sections = _sections(f) if doc else None
            except json.JSONDecodeError:  # edited by hand since: decode it whole below
                sections = None
            if sections is None:  # another layout (an older manifest): decode it whole
                f.seek(0)
                doc = json.load(f)
                sections = {
                    "captions": tuple(doc["captions"]),
                    "images": tuple(map(_image_ref, doc["images"])),
                    "items": tuple(map(_item, doc["items"])),
                }
        root = _resolved_root(doc["root"], path, doc.get("schema", 1))
        return Dataset(name=doc["name"], root=root, metric=doc.get("metric", "argmax"), **sections)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as err:
        raise BadInputError(f"{path} is not a dcsm-cache manifest ({err}): {_REWRITE}") from err
