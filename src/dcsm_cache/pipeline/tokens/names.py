"""Backbone names: the one place that understands every naming form (open_clip is the registry).

    parse_backbone("ViT-B-32-quickgelu@weights/negclip.pth")   # BackboneSpec(arch=..., path=...)

Forms (docs/backbones.md): `arch.tag` (open_clip's pretrained registry), `arch@path` (a local weights
file), `hf-hub:org/name` (an open_clip model on the Hugging Face hub), bare `arch` (seeded random
weights). An unknown architecture or tag is one line that says where to look.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..._openclip import open_clip
from ...errors import UnknownNameError
from . import shapes_clip  # noqa: F401  (registers the shapes-world model configs)

__all__ = ["BackboneSpec", "parse_backbone"]


@dataclass(frozen=True)
class BackboneSpec:
    spec: str
    arch: str
    tag: str | None = None  # open_clip pretrained tag
    path: str | None = None  # local weights file
    hub: str | None = None  # hf-hub:org/name

    @property
    def weights(self) -> str:
        return self.hub or self.path or self.tag or "random"


def parse_backbone(spec: str) -> BackboneSpec:
    """Split a backbone name into its form; an unknown architecture or tag lists where to look."""
    spec = spec.strip()
    if spec.startswith("hf-hub:"):
        repo = spec[len("hf-hub:") :]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise UnknownNameError(f"backbone {spec!r}: write a hub model as hf-hub:org/name")
        return BackboneSpec(spec, arch=spec, hub=spec)
    if "@" in spec:
        arch, path = spec.split("@", 1)
        if arch != "blip":  # blip@folder: a Hugging Face BLIP folder (tokens/blip.py), not an open_clip arch
            _check_arch(arch, spec)
        if not path:
            raise UnknownNameError(f"backbone {spec!r}: no weights file after '@' (write arch@/path/to/weights.pt)")
        return BackboneSpec(spec, arch=arch, path=os.path.expanduser(path))
    if spec in open_clip.list_models():
        return BackboneSpec(spec, arch=spec)
    arch, _, tag = spec.rpartition(".")
    _check_arch(arch or spec, spec)
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if not open_clip.is_pretrained_cfg(arch, tag):
        raise UnknownNameError(
            f"unknown backbone {spec!r}: {arch} has no pretrained tag {tag!r} "
            f"(tags: {', '.join(tags) or 'none'}; or name a local file as {arch}@/path)"
        )
    return BackboneSpec(spec, arch=arch, tag=tag)


def _check_arch(arch: str, spec: str) -> None:
    if arch not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if m.lower().startswith(arch.lower()[:5])][:8]
        raise UnknownNameError(
            f"unknown backbone {spec!r}: architecture {arch!r} is not an open_clip model "
            f"(similar: {', '.join(close) or 'none'}; all: open_clip.list_models())"
        )
