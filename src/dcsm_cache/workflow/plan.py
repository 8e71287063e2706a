"""What a workflow configuration can run on this machine: its result files, and what is missing for the rest.

    p = plan(config)                # the validated Snakemake config, a dict; paths relative to the workdir
    p.targets                       # ('results/default/shapes-clip/shapes_binding/cosine.json', ...)
    print(p.describe())             # what is missing, where it should be, where it comes from

A result is requested for every (backbone, benchmark, scorer) under `evaluate:`, every
(backbone, dataset) under `zeroshot:` and `retrieval:`, and under `linear_probe:` every (backbone,
test dataset) once on its whole train dataset and once per `shots` (`probe_task`). It can be made
here when its backbone's weights, its datasets' folders (a probe's train dataset too) and its
scorer's checkpoint are present:

- weights: a local file (`arch@path`) must exist; a backbone this workflow pretrains needs its
  pretraining set; `arch.tag` and `hf-hub:` weights are assumed downloadable unless HF_HUB_OFFLINE
  is set, when they must be in the Hugging Face cache (`tokens.weights_cached`, the only place
  open_clip is imported); a bare `arch` (seeded random weights) is always there;
- a dataset: one built here (its root is a world's or an export's of `worlds.py`, or under the domain
  study's) is always there;
  any other needs its root and one of the files its benchmark's loader reads first
  (`benchmarks.expected_files`);
- a scorer: `dcsm` needs the training set, `dcsm-paper` the file the backbone's entry names, a
  training recipe (`recipes.py`; a benchmark names it among its `scorers`) every one of its datasets.

Everything else is left out and listed once, grouped by the path it should be at. `strict: true`
(or `--config strict=true`) refuses to run with the same list, and so does a config of which
nothing can run (`Plan.refusal`). A key that names no backbone, dataset, scorer or recipe is a ConfigError.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError, DcsmCacheError
from ..pipeline.scorers import SCORERS
from .domains import under
from .recipes import DEFAULT, Recipe, recipes
from .worlds import Worlds

__all__ = [
    "KINDS",
    "PROBE",
    "TASKS",
    "Missing",
    "Plan",
    "plan",
    "probe_shots",
    "probe_task",
    "result_path",
    "strict_flag",
    "summary_path",
]

TASKS = ("zeroshot", "retrieval")  # config sections whose results are one file per (backbone, dataset)
PROBE = "linear_probe"  # the config section whose results are one file per (backbone, test dataset, shots)
KINDS = {  # what can be missing -> where the docs say it comes from
    "backbone": 'backbone weights (docs/backbones.md, "Where the weights come from")',
    "checkpoint": 'scorer checkpoints (docs/backbones.md, "Where the weights come from")',
    "dataset": "dataset folders (docs/benchmarks.md, the benchmark's section)",
}


def result_path(name: str, backbone: str, dataset: str, task: str) -> str:
    """results/<config name>/<backbone>/<dataset>/<scorer, zeroshot or retrieval>.json"""
    return f"results/{name}/{backbone}/{dataset}/{task}.json"


def probe_task(shots: int | None) -> str:
    """A linear probe's result name: `linear_probe-full` on the whole train split, `linear_probe-4shot` on 4 a class."""
    return f"{PROBE}-{'full' if shots is None else f'{int(shots)}shot'}"


def probe_shots(task: str) -> int | None:
    """The shots a probe's result name says (None: the whole train split); the inverse of `probe_task`."""
    tail = task[len(PROBE) + 1 :]
    return None if tail == "full" else int(tail[: -len("shot")])


def _is_task(task: str) -> bool:
    """A result of a task (zero-shot, retrieval, a linear probe) rather than a scorer's."""
    return task in TASKS or task.startswith(f"{PROBE}-")


def summary_path(name: str) -> str:
    return f"results/{name}/summary.md"


def strict_flag(value) -> bool:
    """`strict` as YAML gives it (a boolean) or as `--config strict=true` does (a string)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"config: strict={value!r} is not true or false")
    return text in ("true", "1", "yes")


def _offline() -> bool:  # the rule of pipeline/tokens/hub.py's offline(), which imports open_clip
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Missing:
    kind: str  # a key of KINDS
    path: str  # where it should be
    name: str  # the config key it is for: a backbone, "dcsm-paper of <backbone>", a dataset
    detail: str = ""


@dataclass(frozen=True)
class Plan:
    name: str
    strict: bool
    targets: tuple[str, ...]  # the result files that can be made here
    requested: int  # how many result files the config asks for
    missing: tuple[Missing, ...]

    @property
    def summary(self) -> str:
        return summary_path(self.name)

    def missing_lines(self) -> list[str]:
        """Per kind, where it comes from; then one line per path: what should be there."""
        lines = []
        for kind, source in KINDS.items():
            groups: dict[str, list[Missing]] = {}
            for m in self.missing:
                if m.kind == kind:
                    groups.setdefault(m.path, []).append(m)
            if groups:
                width = min(48, max(map(len, groups)))
                lines.append(f"  {source}:")
                lines += [
                    f"    {path:{width}s}  " + ", ".join(f"{m.name} ({m.detail})" if m.detail else m.name for m in ms)
                    for path, ms in groups.items()
                ]
        return lines

    def describe(self) -> str:
        head = (
            f"dcsm-cache: config '{self.name}': {len(self.targets)} of {self.requested} requested results can be "
            f"made here"
        )
        if not self.missing:
            return head + "."
        return "\n".join(
            [
                head + "; left out, as these are not on this machine:",
                *self.missing_lines(),
                "Put them there and rerun to add their results (`--config strict=true` stops instead).",
            ]
        )

    def refusal(self) -> str | None:
        """Why the workflow must not run (strict with something missing, or nothing to run), else None."""
        if self.strict and self.missing:
            return "\n".join(
                [
                    f"dcsm-cache: config '{self.name}' has strict: true, and these are not on this "
                    f"machine ({len(self.targets)} of {self.requested} results could be made):",
                    *self.missing_lines(),
                ]
            )
        if not self.targets:
            return "\n".join(
                [
                    f"dcsm-cache: config '{self.name}': nothing can run here; none of its {self.requested} "
                    f"results has its weights, folders and checkpoints present:",
                    *self.missing_lines(),
                ]
            )
        return None


class _Checker:
    """Answers 'is it here?' once per backbone, dataset and checkpoint, noting what is not."""

    def __init__(self, config: Mapping, workdir: Path):
        self.config, self.workdir = config, workdir
        self.backbones, self.datasets = config["backbones"], config["datasets"]
        self.worlds = Worlds(config)
        self.domains = (config.get("domains") or {}).get("root")  # the domain study's rendered sets (domains.py)
        self.recipes = recipes(config)
        self.missing: dict[tuple[str, str, str], Missing] = {}
        self.seen: dict[tuple[str, str], bool] = {}

    def note(self, m: Missing) -> bool:
        self.missing.setdefault((m.kind, m.path, m.name), m)
        return False

    def here(self, rel: str) -> bool:
        path = Path(os.path.expanduser(rel))
        return (path if path.is_absolute() else self.workdir / path).exists()

    def once(self, kind: str, key: str, check) -> bool:
        if (kind, key) not in self.seen:
            self.seen[(kind, key)] = check(key)
        return self.seen[(kind, key)]

    def dataset(self, key: str) -> bool:
        return self.once("dataset", key, self._dataset)

    def _dataset(self, key: str) -> bool:
        cfg = self.datasets[key]
        root = cfg["root"]
        if self.worlds.marker(root) or (self.domains and under(root, self.domains)):
            return True  # a world, an export of one (rules/world.smk) or the domain study (`domains_world`) builds it
        from ..pipeline.benchmarks import expected_files  # the registry imports numpy and PIL: only when asked

        bench = cfg.get("benchmark", key)
        files = expected_files(bench, cfg.get("options") or {})
        if any(self.here(os.path.join(root, f)) for f in files):
            return True
        where = os.path.join(root, files[0]) if files[0] else root
        return self.note(Missing("dataset", where, key, bench if bench != key.split("+")[0] else ""))

    def backbone(self, key: str) -> bool:
        return self.once("backbone", key, self._backbone)

    def _backbone(self, key: str) -> bool:
        pretrain = self.config.get("pretrain") or {}
        if key in pretrain:
            return self.dataset(pretrain[key]["dataset"])  # the `pretrain` rule builds the weights
        model = self.backbones[key]["model"]
        if "@" in model and not model.startswith("hf-hub:"):
            path = model.split("@", 1)[1]
            if not self.here(path):
                return self.note(Missing("backbone", path, key, model))
        if not _offline():
            return True  # a registry or hub name downloads on first use; a bare arch has random weights
        from ..pipeline import tokens  # imports open_clip

        try:
            spec = tokens.parse_backbone(model)
            if (spec.tag or spec.hub) and not spec.path and not tokens.weights_cached(spec):
                where = "the Hugging Face cache (HF_HUB_OFFLINE is set: run once without it)"
                return self.note(Missing("backbone", where, key, model))
            repos = tokens.text_files_missing(spec)  # the tokenizer (or text tower) some families read from the hub
            where = f"the Hugging Face cache, for {', '.join(repos)} (HF_HUB_OFFLINE is set: `extract` says how)"
            return not repos or self.note(Missing("backbone", where, key, model))
        except DcsmCacheError as err:
            return self.note(Missing("backbone", model, key, str(err)))

    def scorer(self, backbone: str, scorer: str) -> bool:
        if scorer in self.recipes:  # a recipe (the default `dcsm` too): every one of its datasets
            return all([self.dataset(d) for d in self.recipes[scorer].datasets])
        source = SCORERS[scorer].checkpoint
        if source is None:
            return True
        path = self.backbones[backbone][source]
        return self.once("checkpoint", path, self.here) or self.note(
            Missing("checkpoint", path, f"{scorer} of {backbone}", "the DCSM reference's checkpoint")
        )


def _known(keys, where: Mapping, section: str, kind: str) -> None:
    for key in keys:
        if key not in where:
            raise ConfigError(
                f"{section} names {kind} {key!r}, which is not under {kind}s: add it there "
                f"(known: {', '.join(where) or 'none'})"
            )


def _requests(config: Mapping, trained: Mapping[str, Recipe]):
    """(backbone, dataset, scorer or task, the other datasets it reads) for every result the config asks for."""
    backbones = config["backbones"]
    evaluate = config.get("evaluate") or {}
    for b in evaluate.get("backbones", []):
        own = backbones[b].get("scorers", [])  # scorers only this backbone has (BLIP's ITM head)
        for d, bcfg in evaluate.get("benchmarks", {}).items():
            extra = own if "cosine" in bcfg["scorers"] else []  # beside the backbone's own cosine
            for s in dict.fromkeys([*bcfg["scorers"], *extra]):
                if s in trained:  # a recipe, where it trains for this backbone
                    if trained[s].trains(b):
                        yield b, d, s, ()
                elif SCORERS[s].checkpoint is None or SCORERS[s].checkpoint in backbones[b]:  # dcsm-paper: a file
                    yield b, d, s, ()
    for task in TASKS:
        section = config.get(task) or {}
        for b in section.get("backbones", []):
            for d in section.get("datasets", {}):
                yield b, d, task, ()
    probe = config.get(PROBE) or {}
    for b in probe.get("backbones", []):
        for d, pcfg in probe.get("datasets", {}).items():
            for shots in dict.fromkeys([None, *probe.get("shots", [])]):
                yield b, d, probe_task(shots), (pcfg["train"],)


def _check_scorers(config: Mapping, trained: Mapping[str, Recipe]) -> None:
    """Every benchmark's scorers are registry scorers or recipes; `dcsm` needs the default recipe."""
    for bench, bcfg in ((config.get("evaluate") or {}).get("benchmarks") or {}).items():
        for s in bcfg["scorers"]:
            if s == DEFAULT and s not in trained:
                raise ConfigError(
                    f"evaluate: {bench}: scorer {DEFAULT} is the scorer train: dataset: trains, and train names "
                    f"no dataset: add one, or name a recipe of train: recipes: instead"
                )
            if s not in SCORERS and s not in trained:
                raise ConfigError(
                    f"evaluate: {bench}: scorer {s!r} is neither a scorer ({', '.join(SCORERS)}) nor a recipe "
                    f"under train: recipes: (known: {', '.join(r for r in trained if r != DEFAULT) or 'none'})"
                )


def _check_names(config: Mapping) -> dict[str, Recipe]:
    """Every key a section names exists; the config's recipes (`recipes.py`), checked the same way."""
    backbones, datasets = config["backbones"], config["datasets"]
    for section in ("evaluate", *TASKS, PROBE):
        cfg = config.get(section) or {}
        _known(cfg.get("backbones", []), backbones, section, "backbone")
        _known(cfg.get("benchmarks" if section == "evaluate" else "datasets", {}), datasets, section, "dataset")
    probes = ((config.get(PROBE) or {}).get("datasets") or {}).values()
    _known([p["train"] for p in probes], datasets, f"{PROBE}: train", "dataset")
    _known([d for d in [(config.get("train") or {}).get("dataset")] if d], datasets, "train", "dataset")
    _known([p["dataset"] for p in (config.get("pretrain") or {}).values()], datasets, "pretrain", "dataset")
    trained = recipes(config)
    for name in trained:
        if _is_task(name):  # results/<config>/<backbone>/<dataset>/<task>.json is the task's
            raise ConfigError(
                f"train: recipes: {name}: {name!r} is a task's name ({', '.join(TASKS)}, {PROBE}-*): rename it"
            )
    _check_scorers(config, trained)
    return trained


def plan(config: Mapping, workdir: str | os.PathLike = ".") -> Plan:
    """The results of `config` that can be made in `workdir`, and what is missing for the others."""
    trained = _check_names(config)
    check = _Checker(config, Path(workdir))
    targets, requested = [], 0
    for backbone, dataset, task, reads in _requests(config, trained):
        requested += 1
        found = [
            check.backbone(backbone),
            check.dataset(dataset),
            *[check.dataset(d) for d in reads],
            _is_task(task) or check.scorer(backbone, task),
        ]  # every check runs, so each absence is noted
        if all(found):
            targets.append(result_path(config.get("name", "default"), backbone, dataset, task))
    return Plan(
        config.get("name", "default"),
        strict_flag(config.get("strict", False)),
        tuple(targets),
        requested,
        tuple(check.missing.values()),
    )
