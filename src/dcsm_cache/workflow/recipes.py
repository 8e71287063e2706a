"""Training recipes: the DCSM scorers a workflow configuration trains, each from the stores of its datasets.

    r = recipes(config)                  # {"dcsm": Recipe("dcsm", ("shapes_train",), ...), "dcsm-synth": ...}
    r["dcsm-synth"].checkpoint("vit-b-16-openai")    # 'models/vit-b-16-openai/dcsm-synth.pt'

`train: dataset:` (with `train: settings:`) is the default recipe, `dcsm`: the scorer the embedded
default trains, models/<backbone>/dcsm.pt (rule `train`). `train: recipes:` names more:

    train:
      recipes:
        dcsm-synth:
          datasets: [dcsm_train_spatial, dcsm_train_colour, dcsm_train_negation]
          backbones: [vit-b-16-openai]         # optional: every backbone it is evaluated with
          settings: {loss: reference}          # TrainConfig fields, this recipe's own

Each is trained per backbone from its datasets' stores together (`dcsm-cache train --store A --store
B ...`, one batch of each per step), into models/<backbone>/<recipe>.pt (rule `train_recipe`), and is
a scorer under its own name: a benchmark whose `scorers:` names it is evaluated with it, and results
and the report name it (results/<config>/<backbone>/<benchmark>/<recipe>.json). Its datasets are
checked like any other (`plan.py`): where a folder is absent, the recipe's results are left out and
the folder listed. A recipe that names an unknown dataset or backbone, or takes a scorer's name, is a
ConfigError naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from ..config import require
from ..errors import ConfigError
from ..pipeline.scorers import SCORERS

__all__ = ["DEFAULT", "Recipe", "recipes"]

DEFAULT = "dcsm"  # the recipe `train: dataset:` names; the registry's trained scorer
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Recipe:
    name: str
    datasets: tuple[str, ...]
    backbones: tuple[str, ...] | None = None  # None: every backbone a benchmark evaluates it with
    settings: Mapping = field(default_factory=dict)  # TrainConfig fields

    def __post_init__(self):
        where = f"train: recipes: {self.name}"
        require(bool(_NAME.match(self.name)), where, "a recipe's name is a path part: letters, digits, '_.-'")
        require(
            self.name == DEFAULT or self.name not in SCORERS,
            where,
            f"{self.name!r} is a scorer's name ({', '.join(SCORERS)}): name the recipe otherwise",
        )
        require(bool(self.datasets), where, "datasets: name at least one dataset to train on")
        require(len(set(self.datasets)) == len(self.datasets), where, f"datasets {list(self.datasets)} repeat one")
        require(self.backbones is None or bool(self.backbones), where, "backbones: name at least one, or leave it out")

    def checkpoint(self, backbone: str) -> str:
        return f"models/{backbone}/{self.name}.pt"

    def trains(self, backbone: str) -> bool:
        return self.backbones is None or backbone in self.backbones


def _check(recipe: Recipe, config: Mapping) -> Recipe:
    for kind, names in (("dataset", recipe.datasets), ("backbone", recipe.backbones or ())):
        known = config.get(f"{kind}s") or {}
        for key in names:
            if key not in known:
                raise ConfigError(
                    f"train: recipes: {recipe.name}: {kind} {key!r} is not under {kind}s: add it there "
                    f"(known: {', '.join(known) or 'none'})"
                )
    return recipe


def recipes(config: Mapping) -> dict[str, Recipe]:
    """The config's recipes by name: the default `dcsm` (where `train: dataset:` is set), then `train: recipes:`."""
    train = config.get("train") or {}
    out: dict[str, Recipe] = {}
    if train.get("dataset"):
        out[DEFAULT] = Recipe(DEFAULT, (train["dataset"],), None, dict(train.get("settings") or {}))
    for name, cfg in (train.get("recipes") or {}).items():
        if name in out:
            raise ConfigError(
                f"train: recipes: {name}: the default recipe `train: dataset:` is named {DEFAULT}: name this one "
                f"otherwise, or leave out train: dataset:"
            )
        cfg = cfg or {}
        datasets = cfg.get("datasets") or ()
        backbones = cfg.get("backbones")
        out[name] = _check(
            Recipe(
                str(name),
                (datasets,) if isinstance(datasets, str) else tuple(datasets),
                None if backbones is None else ((backbones,) if isinstance(backbones, str) else tuple(backbones)),
                dict(cfg.get("settings") or {}),
            ),
            config,
        )
    return out
