"""The shapes world on disk: the one reader of its JSON files, and their atomic writer.

    info, scenes = read_world("data/world")          # world.json, and scenes/{split}.json by split
    cfg, drawn = world_images("data/world")          # per image file: (split, its scene, its objects)

`world.json` is written last by `generate_world`, so a world without it is incomplete. Every file
carries the world's FORMAT; one of another format, or unreadable, is one line saying to regenerate it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ...atomic import write_text
from ...errors import BadInputError, InputNotFoundError

__all__ = ["FORMAT", "SPLITS", "read_world", "read_world_file", "world_images", "write_world_json"]

FORMAT = 3  # 2: train/val scenes have opposite images; 3: a heldout_val split
SPLITS = ("pretrain", "train", "val", "test", "heldout", "heldout_val")  # (each split seeded by its place here)


def read_world_file(path: Path, root: Path) -> dict:
    """A JSON file of the world at `root` (world.json or scenes/{split}.json), checked for its format."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        what = (
            f"no complete shapes world at {root} (world.json missing)"
            if path.name == "world.json"
            else f"world file {path} is missing"
        )
        raise InputNotFoundError(f"{what}: run `dcsm-cache world --out {root}`") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(
            f"{path} is not valid JSON ({err}): regenerate the world with `dcsm-cache world --out {root}`"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise BadInputError(
            f"{path} has world format {found!r}, not {FORMAT}: regenerate it with `dcsm-cache world --out {root}`"
        )
    return doc


def read_world(root: str | os.PathLike) -> tuple[dict, dict[str, list[dict]]]:
    """world.json and the scenes of every split of the world at `root`."""
    root = Path(root)
    info = read_world_file(root / "world.json", root)
    scenes = {}
    for split in SPLITS:
        doc = read_world_file(root / "scenes" / f"{split}.json", root)
        if not isinstance(doc.get("scenes"), list):
            raise BadInputError(
                f"{root / 'scenes' / f'{split}.json'} has no scene list: "
                f"regenerate the world with `dcsm-cache world --out {root}`"
            )
        scenes[split] = doc["scenes"]
    return info, scenes


def world_images(root: str | os.PathLike) -> tuple[dict, dict[str, tuple[str, dict, list[dict]]]]:
    """The world's config and, per image file it drew (opposite images included), its split, its scene
    and the objects the image shows (an opposite image shows its own)."""
    info, splits = read_world(root)
    images = {}
    for split, scenes in splits.items():
        for s in scenes:
            images[s["file"]] = (split, s, s["objects"])
            if "opposite" in s:
                images[s["opposite"]["file"]] = (split, s, s["opposite"]["objects"])
    return info["config"], images


def write_world_json(path: Path, doc: dict, rows: str | None = None) -> None:
    """Write atomically; a list under `rows` is written one compact JSON object a line."""
    text = json.dumps(doc, indent=1)
    if rows is not None:
        head = json.dumps({k: v for k, v in doc.items() if k != rows})[:-1]
        text = head + f', "{rows}": [\n' + ",\n".join(json.dumps(r) for r in doc[rows]) + "\n]}\n"
    write_text(path, text)
