"""A store's extraction as Snakemake jobs: how many parts, what each part runs with and asks the executor for.

    ex = extraction(config, "shapes_train")   # the validated Snakemake config, a dict
    ex.nparts, ex.settings, ex.resources       # 3, {"batch_size": 128}, {"gpu": 0, "mem_mb": 4000, "runtime": 60}
    ex.threads                                 # 1 (0: every core the workflow was given)
    ex.markers("shapes-clip", "shapes_train")  # the part jobs' outputs, which one rule gathers

The config's `extract:` section holds the defaults of every store: `nparts` (jobs per store, each
`dcsm-cache extract --part i --nparts K`), `resources` (what each part job asks the executor for:
`gpu`, `mem_mb`, `runtime` in minutes, or any other resource a cluster plugin reads), `threads` (the
cores each part job takes, which Snakemake passes on as OMP_NUM_THREADS; 0 or absent: every core)
and `settings` (the extract command's `--set` fields). A dataset's own `extract:` block overrides
them for its store: its `nparts`, `resources` and `threads` keys are read here, every other key is a
setting. A part job's
output is a marker beside the store; a killed job leaves none, so a rerun redoes that part alone
while the store's own part markers keep the finished ones as they are (stores/feature_store.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError

__all__ = ["DEFAULT_RESOURCES", "Extraction", "extraction", "part_marker"]

# What a part job asks for when the config says nothing: no GPU (extraction then runs where it is
# sent; a cluster profile asks for one, config/profiles/slurm/), 4 GB and an hour.
DEFAULT_RESOURCES = {"gpu": 0, "mem_mb": 4000, "runtime": 60}
_OWN_KEYS = ("nparts", "resources", "threads")  # keys of a dataset's `extract:` block that are not settings


def part_marker(backbone: str, dataset: str, part: int, nparts: int) -> str:
    """The output of one part job: stores/<backbone>/<dataset>.parts/<part>-of-<nparts>.done"""
    return f"stores/{backbone}/{dataset}.parts/{part}-of-{nparts}.done"


@dataclass(frozen=True)
class Extraction:
    nparts: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    resources: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    threads: int = 0  # cores per part job; 0: every core

    def markers(self, backbone: str, dataset: str) -> list[str]:
        return [part_marker(backbone, dataset, i, self.nparts) for i in range(self.nparts)]


def _whole(key: str, value: Any, where: str, least: int, what: str) -> int:
    """A whole number >= `least`, as YAML gives it (an int) or `--config` does (a string)."""
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < least:
        raise ConfigError(f"{where}: {key}={value!r} is not a whole number of {what}")
    return int(text)


def _own_or_section(key: str, own: Mapping, section: Mapping, where: str, default: int, least: int, what: str) -> int:
    """The dataset's own `key`, else the `extract:` section's, else `default`."""
    if key in own:
        return _whole(key, own[key], where, least, what)
    return _whole(key, section.get(key, default), "config: extract", least, what)


def _resources(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: resources must be a mapping such as {{gpu: 1, mem_mb: 8000, runtime: 120}}")
    return dict(value)


def extraction(config: Mapping[str, Any], dataset: str) -> Extraction:
    """The extraction of `dataset`'s stores: the `extract:` section with the dataset's own block laid over it."""
    section = config.get("extract") or {}
    if dataset not in (config.get("datasets") or {}):
        raise ConfigError(f"config: no dataset {dataset!r} under datasets:")
    own = dict(config["datasets"][dataset].get("extract") or {})
    where = f"config: datasets: {dataset}: extract"
    nparts = _own_or_section("nparts", own, section, where, 1, 1, "parts >= 1")
    resources = {
        **DEFAULT_RESOURCES,
        **_resources(section.get("resources"), "config: extract"),
        **_resources(own.get("resources"), where),
    }
    global_settings = dict(section.get("settings") or {})
    if "part" in own or "nparts" in global_settings or "part" in global_settings:
        raise ConfigError(
            f"{where if 'part' in own else 'config: extract: settings'}: part and nparts are set by the workflow: "
            f"write `nparts: K` in the `extract:` section (beside `settings:`) or in a dataset's `extract:` block"
        )
    settings = {**global_settings, **{k: v for k, v in own.items() if k not in _OWN_KEYS}}
    threads = _own_or_section("threads", own, section, where, 0, 0, "cores (0: every core)")
    return Extraction(nparts, settings, resources, threads)
