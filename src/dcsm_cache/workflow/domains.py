"""The domain study as workflow configuration: one `domains:` section expanded into the existing rules' entries.

    study = expand_domains(config)     # the Snakefile, before validation; None when there is no `domains:`
    study.targets                      # the table, CKA matrices, UMAP figures and stats it adds to `all`

A `domains:` section (config/domains.yaml) names the rendered domains' folder and settings
(`world/domains.py`), the natural and test domains, the test domain's held-out classes, the mixtures
(`benchmarks/domains_mixture.py`) and how each mixture's small CLIP is pretrained. It becomes, per
mixture M, a pretraining dataset `domains_pretrain_M`, a pretrained backbone `domains-M` (the
existing `items`, `pretrain` and `extract` rules), and a zero-shot result of `domains-M` on the
shared evaluation set `domains_eval` (the `zeroshot` rule); rules/domains.smk adds the table, the
analyses (their `mixture` wildcard) and the rendering rule. Entries the config already has win.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import MutableMapping

from ..errors import ConfigError

__all__ = ["EVAL", "DomainStudy", "backbone_of", "expand_domains", "under"]

EVAL = "domains_eval"
FEATURES = ("pooled", "tokens")


def backbone_of(mixture: str) -> str:
    return f"domains-{mixture}"


@dataclass(frozen=True)
class DomainStudy:
    name: str  # the config's name: results/<name>/domains/
    root: str
    mixtures: tuple[str, ...]
    domains: tuple[str, ...]
    test_domain: str
    test_classes: tuple[str, ...]
    features: tuple[str, ...]

    @property
    def out(self) -> str:
        return f"results/{self.name}/domains"

    def zeroshot(self, mixture: str) -> str:
        return f"results/{self.name}/{backbone_of(mixture)}/{EVAL}/zeroshot.json"

    def store(self, mixture: str) -> str:
        return f"stores/{backbone_of(mixture)}/{EVAL}.zarr"

    @property
    def targets(self) -> list[str]:
        out = self.out
        return [
            *(f"{out}/figure2.{ext}" for ext in ("md", "csv", "png")),
            *(f"{out}/cka-mixtures-{f}.csv" for f in self.features),
            *(f"{out}/cka-domains-{m}-{f}.csv" for m in self.mixtures for f in self.features),
            *(f"{out}/umap-{m}-{f}.png" for m in self.mixtures for f in self.features),
            *(f"{out}/stats-{m}.json" for m in self.mixtures),
        ]


def expand_domains(config: MutableMapping) -> DomainStudy | None:
    """Add the study's datasets, pretrained backbones and zero-shot results to `config` (in place)."""
    section = config.get("domains")
    if not section:
        return None
    from ..pipeline.benchmarks.domains_mixture import MIXTURES, mixture_domains, prompt_templates
    from ..pipeline.world.domains import DOMAINS

    for key in ("root", "test_domain", "test_classes", "pretrain"):
        if key not in section:
            raise ConfigError(f"config domains: needs {key!r} (see config/domains.yaml)")
    root = section["root"]
    domains = tuple((section.get("settings") or {}).get("domains", DOMAINS))
    natural = section.get("natural", "real")
    mixtures = tuple(section.get("mixtures", MIXTURES))
    features = tuple(section.get("features", FEATURES))
    bad = [f for f in features if f not in FEATURES]
    if bad or not mixtures:
        raise ConfigError(f"config domains: features {bad} not in {FEATURES}, or no mixtures")
    for m in mixtures:
        mixture_domains(m, domains, natural, section["test_domain"])  # an unknown name or domain stops here
    arch = section["pretrain"]["arch"]
    datasets, pretrain, backbones = (config.setdefault(k, {}) for k in ("datasets", "pretrain", "backbones"))
    words = bool(section.get("domain_words", False))
    options = {"test_domain": section["test_domain"], "test_classes": list(section["test_classes"]), "natural": natural}
    options |= {"domain_words": True} if words else {}
    templates = prompt_templates(domains, words)
    datasets.setdefault(
        EVAL, {"root": os.path.join(root, "eval"), "benchmark": "domainnet", "options": {"templates": templates}}
    )
    for m in mixtures:
        b, d = backbone_of(m), f"domains_pretrain_{m}"
        datasets.setdefault(d, {"root": root, "benchmark": "domains_mixture", "options": {"mixture": m, **options}})
        pretrain.setdefault(
            b, {"arch": arch, "dataset": d, "settings": dict(section["pretrain"].get("settings") or {})}
        )
        backbones.setdefault(b, {"model": f"{arch}@models/{b}.pt"})
    zs = config.setdefault("zeroshot", {"backbones": [], "datasets": {}})
    zs["backbones"] = list(dict.fromkeys([*zs.get("backbones", []), *map(backbone_of, mixtures)]))
    zs.setdefault("datasets", {}).setdefault(EVAL, {"settings": {"top_k": [1]}})
    return DomainStudy(
        config.get("name", "default"),
        root,
        mixtures,
        domains,
        section["test_domain"],
        tuple(section["test_classes"]),
        features,
    )


def under(path: str, root: str) -> bool:
    """Whether `path` is `root` or inside it (a dataset the `domains_world` rule builds)."""
    p, r = os.path.normpath(path), os.path.normpath(root)
    return p == r or p.startswith(r + os.sep)
