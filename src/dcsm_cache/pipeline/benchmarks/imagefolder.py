"""Image folders for zero-shot classification: `root/<class>/*.jpg`, or DomainNet's `root/<domain>/<class>/*.jpg`.

    ds = load("data/domainnet", name="domainnet", domains="auto", templates="simple")

Layout: every sub-folder of `root` is a class (flat), or every sub-folder is a domain whose
sub-folders are classes (DomainNet). `domains="auto"` picks the domain layout when no sub-folder of
`root` holds an image itself; `True`/`False` force one. Classes are the sorted folder names (the
union over domains), so a class index means the same class in every domain; a class folder with no
images stays a class. Image files (jpg, jpeg, png, bmp, gif, webp, tif, tiff; any case) are read in
sorted order; hidden entries are skipped. With `split="test"` (domain layout only) each domain keeps
only the images listed in DomainNet's `root/{domain}_test.txt` (lines `path label`).

Class names: the folder name with `_` and `-` read as spaces, or `classnames="imagenet"` (open_clip's
1,000 ImageNet names, in the sorted-wnid order of ImageNet's folders), or a text file with one name
a line in sorted-folder order.

The prompt table: `templates="openai"` (open_clip's 80 OPENAI_IMAGENET_TEMPLATES), `"simple"` (its
7 SIMPLE_IMAGENET_TEMPLATES, a ~11x smaller store) or a list of strings with one `{}` each. Caption
row `t * n_classes + c` is template t filled with class c; rows are not deduplicated, so the table
stays rectangular even when two classes share a name. One item per image: `candidates` = the first
template's rows (`0 .. n_classes-1`), `correct` = the class index, tag `{"domain": d}` in the domain
layout. `evaluate()` on it is single-prompt zero-shot; `pipeline/tasks/zeroshot.py` ensembles every
template (see `prompt_table`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ...errors import BadInputError, ConfigError, InputNotFoundError
from ..items import Dataset, ImageRef, Item

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TEMPLATES = ("openai", "simple")
LAYOUT = "an image folder per class, root/<class>/*.jpg, or root/<domain>/<class>/*.jpg"


def templates_of(kind: str | Sequence[str]) -> list:
    """Prompt templates as callables `classname -> prompt`: open_clip's ("openai", "simple"), or a list of
    strings with one `{}` each (["a photo of a {}.", "a sketch of a {}."])."""
    if not isinstance(kind, str):
        own = list(kind)
        if not own or any(not isinstance(t, str) or t.count("{}") != 1 for t in own):
            raise ConfigError(f"templates {kind!r}: give {' or '.join(TEMPLATES)}, or strings with one '{{}}' each")
        return [t.format for t in own]
    from ..._openclip import open_clip

    if kind not in TEMPLATES:
        raise ConfigError(f"templates {kind!r} is not one of {', '.join(TEMPLATES)} (or a list of strings with '{{}}')")
    meta = open_clip.zero_shot_metadata
    return list(meta.OPENAI_IMAGENET_TEMPLATES if kind == "openai" else meta.SIMPLE_IMAGENET_TEMPLATES)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(path: Path) -> list[Path]:
    return sorted(
        p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS
    )


def _class_names(folders: list[str], classnames: str | None, name: str) -> list[str]:
    if classnames is None:
        return [f.replace("_", " ").replace("-", " ") for f in folders]
    if classnames == "imagenet":
        from ..._openclip import open_clip

        names = list(open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES)
    else:
        path = Path(classnames)
        if not path.is_file():
            raise InputNotFoundError(f"{name}: classnames file {path} does not exist (one class name a line)")
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != len(folders):
        raise BadInputError(
            f"{name}: {len(names)} class names for {len(folders)} class folders; "
            f"give one name per folder, in sorted folder order"
        )
    return names


def _split_list(root: Path, domain: str, split: str, name: str) -> set[str]:
    path = root / f"{domain}_{split}.txt"
    if not path.is_file():
        raise InputNotFoundError(f"{name}: split {split!r} needs {path.name} in {root} (DomainNet's split lists)")
    return {line.split()[0] for line in path.read_text().splitlines() if line.strip()}


def expected(**_) -> tuple[str, ...]:
    """The root itself (its class folders): what the workflow checks for before it plans this benchmark."""
    return ("",)


def load(
    root: str | os.PathLike,
    name: str = "imagefolder",
    domains: bool | str = "auto",
    templates: str | Sequence[str] = "openai",
    classnames: str | None = None,
    split: str | None = None,
) -> Dataset:
    """Zero-shot items of an image-folder dataset (see the module docstring)."""
    base = Path(root)
    if domains not in (True, False, "auto"):
        raise ConfigError(f"{name}: domains={domains!r} must be true, false or auto")
    prompts = templates_of(templates)
    tops = _subdirs(base)
    if not tops:
        raise InputNotFoundError(f"{name}: no sub-folders in {base} ({LAYOUT})")
    if domains == "auto":
        domains = not any(_images(d) for d in tops)
    if split is not None and not domains:
        raise ConfigError(f"{name}: split={split!r} needs the domain layout (root/<domain>/<class>/)")
    groups = {d.name: _subdirs(d) for d in tops} if domains else {"": tops}
    folders = sorted({c.name for classes in groups.values() for c in classes})
    if not folders:
        raise InputNotFoundError(f"{name}: no class folders under the domains of {base} ({LAYOUT})")
    index = {f: i for i, f in enumerate(folders)}
    names = _class_names(folders, classnames, name)
    images, items = [], []
    for domain, classes in groups.items():
        keep = _split_list(base, domain, split, name) if split else None
        for cdir in classes:
            if not domains and any(_subdirs(cdir)) and not _images(cdir):
                raise BadInputError(
                    f"{name}: {cdir} holds folders, not images; pass domains=true for root/<domain>/<class>/ ({LAYOUT})"
                )
            for img in _images(cdir):
                rel = img.relative_to(base).as_posix()
                if keep is not None and rel not in keep:
                    continue
                items.append(
                    Item(
                        len(images),
                        tuple(range(len(folders))),
                        index[cdir.name],
                        "",
                        {"domain": domain} if domains else {},
                    )
                )
                images.append(ImageRef(rel))
    if not items:
        raise InputNotFoundError(f"{name}: no images under {base} ({LAYOUT})")
    captions = tuple(t(c) for t in prompts for c in names)
    return Dataset(name, str(root), tuple(images), captions, tuple(items), "argmax")
