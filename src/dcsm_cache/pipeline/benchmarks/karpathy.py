"""COCO and Flickr30k captions in Karpathy's split files, for image-text retrieval.

    ds = load("data/coco", name="karpathy_coco", source="coco", split="test")

Layout under `root`: Karpathy's `dataset_coco.json` (or `dataset_flickr30k.json`; option
`annotation` names another file of the same form) and the images. The JSON is
`{"images": [{"filename": ..., "filepath"?: ..., "split": "test", "sentences": [{"raw": ...}, ...]}]}`;
an image is read from `root/{image_dir}/{filepath}/{filename}`, where `filepath` is the record's
field if it has one (COCO: "val2014", "train2014") and `image_dir` defaults to "" for COCO and
"flickr30k-images" for Flickr30k.

`split` is one name or a comma list ("test", "val", "train", "restval"; "train,restval" is
Karpathy's 113k training set). One item per image, in file order: the image and ALL its sentences'
`raw` text as candidates, correct 0, subset = the record's split. Captions are stored once each,
so a sentence two images share is one caption row; `pipeline/tasks/retrieval.py` still scores every
(image, sentence) pair, which is the standard 5k/1k protocol (COCO test: 5,000 images, 25,010
sentences; Flickr30k test: 1,000 and 5,000).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, DatasetBuilder
from ._common import field, read_json, require_file, text

SOURCES = {"coco": ("dataset_coco.json", ""), "flickr30k": ("dataset_flickr30k.json", "flickr30k-images")}
SPLITS = ("train", "restval", "val", "test")
LAYOUT = "Karpathy's caption split JSON"


def expected(source: str = "coco", annotation: str | None = None, **_) -> tuple[str, ...]:
    """The split file: what the workflow checks for before it plans this benchmark."""
    return (annotation or SOURCES.get(source, ("",))[0],)


def load(
    root: str | os.PathLike,
    name: str = "karpathy",
    source: str = "coco",
    split: str = "test",
    annotation: str | None = None,
    image_dir: str | None = None,
) -> Dataset:
    """The retrieval items of one Karpathy split (see the module docstring)."""
    if source not in SOURCES:
        raise ConfigError(f"{name}: source {source!r} is not one of {', '.join(SOURCES)}")
    splits = [s.strip() for s in split.split(",") if s.strip()]
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ConfigError(f"{name}: unknown split {', '.join(bad) or '(none given)'}; valid: {', '.join(SPLITS)}")
    default_ann, default_dir = SOURCES[source]
    ann = require_file(Path(root, annotation or default_ann), name, LAYOUT)
    doc = read_json(ann, name)
    records = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(records, list):
        raise BadInputError(f'{name}: {ann} should be {{"images": [...]}} as in Karpathy\'s split files')
    folder = default_dir if image_dir is None else image_dir
    builder, missing, found = DatasetBuilder(name, root), [], 0
    for i, rec in enumerate(records):
        rec_split = text(field(rec, "split", name, ann, i), name, ann, i, "split")
        if rec_split not in splits:
            continue
        filename = text(field(rec, "filename", name, ann, i), name, ann, i, "filename")
        filepath = rec.get("filepath", "")
        rel = "/".join(p.strip("/") for p in (folder, text(filepath, name, ann, i, "filepath"), filename) if p)
        sentences = field(rec, "sentences", name, ann, i)
        if not isinstance(sentences, list) or not sentences:
            raise BadInputError(f"{name}: {ann} row {i}: sentences should be a non-empty list")
        captions = [text(field(s, "raw", name, ann, i), name, ann, i, "raw") for s in sentences]
        if not Path(root, rel).is_file():
            missing.append(rel)
            continue
        builder.add(rel, captions, 0, rec_split)
        found += 1
    if missing:
        raise InputNotFoundError(
            f"{name}: {len(missing)} images of split {split} missing, e.g. {missing[0]} "
            f"in {root} (set image_dir if they live elsewhere)"
        )
    if not found:
        raise BadInputError(f"{name}: {ann} has no images in split {split}")
    return builder.build()
