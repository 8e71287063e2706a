"""The shapes worlds a configuration draws and the benchmark folders it exports from them.

    w = Worlds(config)
    w.marker("data/world96-export/test")    # 'data/world96-export/export.json': the file whose rule makes it

`world:` is the default's own world. `worlds:` draws more (folder -> `dcsm-cache world` settings: the same
kind of scenes with another seed, image size, object sizes, shades, blur or noise), and `exports:`
writes a world's probe sets in What'sUp's, CLEVR-bind's and SugarCREPE's own layouts (folder -> the
world it reads; `dcsm-cache export-world`), so that those benchmarks' loaders read them as a user's
download. A dataset whose root is one of these folders, or under one, is built here: its manifest
waits for the marker its folder's rule writes last (world.json, export.json).
"""

from __future__ import annotations

import os
from typing import Mapping

from ..errors import ConfigError
from .domains import under

__all__ = ["Worlds"]


def _norm(path: str) -> str:
    return os.path.normpath(path)


class Worlds:
    def __init__(self, config: Mapping):
        self.main = _norm(config["world"]["root"])
        self.extra = {_norm(root): dict(settings or {}) for root, settings in (config.get("worlds") or {}).items()}
        self.exports = {_norm(out): _norm(world) for out, world in (config.get("exports") or {}).items()}
        roots = {self.main, *self.extra}
        for out, world in self.exports.items():
            if world not in roots:
                raise ConfigError(
                    f"exports: {out} reads the world {world}, which is neither `world: root:` nor one of `worlds:` "
                    f"({', '.join(sorted(roots))})"
                )
        if self.main in self.extra:
            raise ConfigError(f"worlds: {self.main} is the default world (`world: root:`); give another folder")

    def marker(self, root: str) -> str | None:
        """The file written last by the rule that makes the folder `root` (a world, an export or a part of
        one), or None where nothing here makes it."""
        root = _norm(root)
        if root == self.main or root in self.extra:
            return os.path.join(root, "world.json")
        out = next((o for o in self.exports if under(root, o)), None)
        return os.path.join(out, "export.json") if out else None
