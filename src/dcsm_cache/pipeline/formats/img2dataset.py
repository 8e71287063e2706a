"""img2dataset's output, as a captioned set: the `files` folders or webdataset `.tar` shards.

    ds = load_shards("data/cc3m-wds")   # dcsm-cache items webdataset --root data/cc3m-wds
    ds = load_files("data/cc3m")        # dcsm-cache items img2dataset --root data/cc3m

img2dataset writes every sample as `{key}.jpg` (or .png, .webp, ...), `{key}.txt` (the caption)
and `{key}.json` (url, status, size; the caption too where asked), grouped in numbered folders
`00000/000000001.jpg` (`output_format=files`) or numbered shards `00000.tar` in `root`
(`output_format=webdataset`; any webdataset whose samples are consecutive members sharing a key,
the name up to the first dot, reads the same way). Shards compressed with gzip (`.tar.gz`, `.tgz`)
are read as webdataset reads them, through tarfile's transparent decompression. One item per
sample, in shard and member (or key) order, with its caption as the one candidate, correct 0: for
extraction, pretraining and retrieval. `caption_key` reads the caption from the `.json` instead of
the `.txt`; a key without an image file is skipped. A shard is read as one stream, never unpacked:
its images stay inside it (`ImageRef.member`) and its rows are consecutive, so extraction reads
each shard once, in order.
`name` names the dataset (default: the root folder's name).
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

from ...errors import BadInputError, InputNotFoundError
from ..items import Dataset, DatasetBuilder, ImageRef

IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"})
SHARD_EXTS = (".tar", ".tar.gz", ".tgz")  # what webdataset reads as shards (gzip'd: decompressed on the fly)


def expected(**_) -> tuple[str, ...]:
    """The root itself (its numbered folders or shards): what the workflow checks before it plans this dataset."""
    return ("",)


def load_files(root: str | os.PathLike, name: str | None = None, caption_key: str | None = None) -> Dataset:
    """The samples of img2dataset's `files` layout under `root` (see the module docstring)."""
    name = name or Path(root).resolve().name
    folders = sorted(p for p in Path(root).iterdir() if p.is_dir() and p.name.isdigit())
    if not folders:
        raise InputNotFoundError(
            f"{name}: expected numbered folders 00000/, 00001/, ... in {root} (img2dataset output_format=files)"
        )
    text_ext = "json" if caption_key else "txt"
    builder = DatasetBuilder(name, root)
    for folder in folders:
        samples: dict[str, dict[str, str]] = {}
        for entry in os.scandir(folder):
            key, dot, ext = entry.name.partition(".")
            if dot and entry.is_file():
                samples.setdefault(key, {})[ext.lower()] = entry.name
        for key in sorted(samples):
            files = samples[key]
            image = next((files[e] for e in files if e in IMAGE_EXTS), None)
            if image is not None:
                data = (folder / files[text_ext]).read_bytes() if text_ext in files else None
                builder.add(f"{folder.name}/{image}", [_caption(data, caption_key, name, f"{folder}/{key}")])
    return builder.build()


def load_shards(root: str | os.PathLike, name: str | None = None, caption_key: str | None = None) -> Dataset:
    """The samples of the webdataset shards (`*.tar`, `*.tar.gz`, `*.tgz`) in `root`, in name order (module doc)."""
    name = name or Path(root).resolve().name
    files = sorted(p for p in Path(root).iterdir() if p.is_file())
    shards = [p for p in files if p.name.endswith(SHARD_EXTS)]
    if not shards:
        other = [p.name for p in files if ".tar." in p.name][:3]
        raise InputNotFoundError(
            f"{name}: expected webdataset shards 00000.tar, 00001.tar, ... (or .tar.gz, .tgz) in {root} "
            f"(img2dataset output_format=webdataset)"
            + (f"; {', '.join(other)} use another compression: decompress them to .tar first" if other else "")
        )
    builder = DatasetBuilder(name, root)
    for shard in shards:
        try:
            with tarfile.open(shard, "r|*") as tar:  # one sequential stream (gzip or not): no seeks, nothing unpacked
                for key, sample in _samples(tar, caption_key):
                    if "image" in sample:
                        caption = _caption(sample.get("text"), caption_key, name, f"{shard}:{key}")
                        builder.add(ImageRef(shard.name, member=sample["image"]), [caption])
        except (tarfile.TarError, EOFError, OSError) as err:
            raise BadInputError(
                f"{name}: shard {shard} is truncated or not a tar file, plain or gzip'd ({err})"
            ) from None
    return builder.build()


def _samples(tar: tarfile.TarFile, caption_key: str | None):
    """(key, {"image": member name, "text": bytes of the .txt or .json}) for each run of members sharing a key."""
    key, sample = None, {}
    for member in tar:
        if not member.isfile():
            continue
        head, _, base = member.name.rpartition("/")
        stem, dot, ext = base.partition(".")
        if not dot:
            continue
        if (f"{head}/" if head else "") + stem != key:
            if key is not None:
                yield key, sample
            key, sample = (f"{head}/" if head else "") + stem, {}
        ext = ext.lower()
        if ext in IMAGE_EXTS:
            sample.setdefault("image", member.name)
        elif ext == ("json" if caption_key else "txt"):
            sample["text"] = tar.extractfile(member).read()
    if key is not None:
        yield key, sample


def _caption(data: bytes | None, caption_key: str | None, name: str, where: str) -> str:
    """The sample's caption from `data`: its .txt, or `caption_key` of its .json."""
    if data is None:
        raise BadInputError(
            f"{name}: {where} has no .txt caption (caption_key=... reads one from the .json)"
            if caption_key is None
            else f"{name}: {where} has no .json to read {caption_key!r} from"
        )
    try:
        if caption_key is None:
            return data.decode("utf-8").strip()
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInputError(f"{name}: {where}: caption file cannot be read ({err})") from None
    value = doc.get(caption_key) if isinstance(doc, dict) else None
    if not isinstance(value, str):
        raise BadInputError(f"{name}: {where}.json has no text under {caption_key!r} (got {value!r})")
    return value.strip()
