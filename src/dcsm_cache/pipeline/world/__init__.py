"""The shapes world: procedurally generated scenes, their benchmark exports, and a tiny CLIP pretrained on them.

    generate_world(WorldConfig(seed=0), "data/world")
    pretrain("manifests/shapes_pretrain.json", "models/shapes-clip.pt", PretrainConfig(steps=400))

scenes.py (scene grammar: objects, captions, scenes), generate.py (drawing and writing
them), files.py (the world's files, read and written),
export.py (probes in What'sUp, CLEVR-bind and SugarCREPE layouts), tinyclip.py (the shapes-clip
model, registered in tokens/shapes_clip.py), pretrain.py (CLIP's loss plus a token-level late-interaction loss),
late_interaction.py (that loss's MaxSim and FILIP scores, with a fast MaxSim backward), domains.py
(one shape per image drawn in five rendering domains, for the domain study: docs/domains.md).
"""

from importlib import import_module

from .files import read_world, read_world_file, world_images
from .generate import generate_world
from .scenes import FAMILIES, RELATIONS, WorldConfig, caption_is_true, parse_caption, phrase

# pretraining and export load torch and open_clip: re-exported lazily, so the world's own users do not
_LAZY = {"PretrainConfig": "pretrain", "export_world": "export"}
__all__ = [
    "FAMILIES",
    "RELATIONS",
    "PretrainConfig",
    "WorldConfig",
    "caption_is_true",
    "export_world",
    "generate_world",
    "parse_caption",
    "phrase",
    "read_world",
    "read_world_file",
    "world_images",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
