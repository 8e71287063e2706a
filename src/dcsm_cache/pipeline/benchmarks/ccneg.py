"""CC-Neg (CoN-CLIP, Singh et al.): one CC3M image, its caption and a negated caption.

    ds = load("data", name="ccneg", n_eval=40000)

Layout: `ccneg_preprocessed.pt` in `root/ccneg_dataset/` or in `root` itself (the folder CoN-CLIP
calls `ccneg_root_folder`), a `torch.save`d dict with `image_paths` (absolute paths starting with
`/workspace/datasets/cc3m/`) and `annotations` (a list of dicts). It is read with
`torch.load(..., weights_only=True)`: plain lists, dicts and strings, no code is unpickled.
CoN-CLIP replaces the prefix `/workspace/datasets/cc3m/` by the dataset folder; the images come as
`ccneg_images/cc3m_subset_images_extracted_final/*.jpg`, so the rest of the path is looked up
under the folder of the .pt and its `ccneg_images/`, then under `root` and `root/ccneg_images/`;
the first folder that holds the first evaluation image is used for all of them.

Evaluation split: the LAST `n_eval` entries (CoN-CLIP's `num_ccneg_eval_samples` = 40,000; the
rest is its fine-tuning split). One item per entry, in file order: the image and
`[ann["json"]["caption"], ann["sop_data"]["negative-prompt"] with commas removed]`, as CoN-CLIP's
`CCNegEvalDataset` builds them; correct 0, subset "eval", no prefix. Chance is 50%.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, DatasetBuilder
from ._common import require_file

ANNOTATION = "ccneg_preprocessed.pt"
PREFIX = "/workspace/datasets/cc3m/"
LAYOUT = "the CoN-CLIP CC-Neg layout"


def _read(path: Path, name: str) -> tuple[list, list]:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        raise BadInputError(
            f"{name}: {path} cannot be read with torch.load(weights_only=True) "
            f"({err.__class__.__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    if not isinstance(data, dict) or not all(k in data for k in ("image_paths", "annotations")):
        raise BadInputError(f"{name}: {path} should be a dict with image_paths and annotations")
    paths, anns = data["image_paths"], data["annotations"]
    if not isinstance(paths, list) or not isinstance(anns, list) or len(paths) != len(anns):
        raise BadInputError(f"{name}: {path}: image_paths and annotations should be lists of equal length")
    return paths, anns


def _captions(ann, i: int, path: Path, name: str) -> list[str]:
    try:
        caption, negated = ann["json"]["caption"], ann["sop_data"]["negative-prompt"]
    except (KeyError, TypeError):
        raise BadInputError(f"{name}: {path} annotations[{i}] lacks json.caption or sop_data.negative-prompt") from None
    if not isinstance(caption, str) or not isinstance(negated, str):
        raise BadInputError(f"{name}: {path} annotations[{i}]: captions should be strings")
    return [caption, negated.replace(",", "")]


def expected(**_) -> tuple[str, ...]:
    """The annotation file, in either place: what the workflow checks for before it plans this benchmark."""
    return (f"ccneg_dataset/{ANNOTATION}", ANNOTATION)


def load(root: str | os.PathLike, name: str = "ccneg", n_eval: int = 40000) -> Dataset:
    """The CC-Neg evaluation items (see the module docstring)."""
    if isinstance(n_eval, bool) or not isinstance(n_eval, int) or n_eval < 1:
        raise ConfigError(f"{name}: n_eval should be a positive integer, got {n_eval!r}")
    ann = require_file(Path(root, "ccneg_dataset", ANNOTATION), name, LAYOUT, [Path(root, ANNOTATION)])
    paths, anns = _read(ann, name)
    if not paths:
        raise BadInputError(f"{name}: {ann} has no entries")
    start = max(len(paths) - n_eval, 0)
    rel = []
    for i in range(start, len(paths)):
        if not isinstance(paths[i], str):
            raise BadInputError(f"{name}: {ann} image_paths[{i}] should be a string")
        rel.append(paths[i][len(PREFIX) :] if paths[i].startswith(PREFIX) else paths[i])
    bases = list(dict.fromkeys([ann.parent, ann.parent / "ccneg_images", Path(root), Path(root, "ccneg_images")]))
    base = next((b for b in bases if (b / rel[0]).is_file()), None)
    if base is None:
        raise InputNotFoundError(
            f"{name}: expected image {rel[0]} in {ann.parent} or {ann.parent / 'ccneg_images'} ({LAYOUT})"
        )
    builder = DatasetBuilder(name, root)
    for i, r in zip(range(start, len(paths)), rel):
        image = os.path.relpath(base / r, root) if not os.path.isabs(r) else r
        builder.add(Path(image).as_posix(), _captions(anns[i], i, ann, name), 0, "eval")
    return builder.build()
