"""The domain study's pretraining sets: a mixture of rendering domains, the test domain's test classes held out.

    ds = load("data/domains", mixture="cg-low", test_domain="sketch", test_classes=["heart", "star"])

Reads `root/train/<domain>/<class>/*.png` as written by `world/domains.py` (root/domains.json marks a
complete set) and captions each image "a <class>" (`caption`; with `domain_words`, "a <domain noun> of
a <class>"), one captioned item per image, for `dcsm-cache pretrain`. Class-only captions make the
contrastive loss ask for the shape alone: with domain words, a 300-step tiny CLIP learned the domain
(5 of them, the easy half of the caption) and stayed at chance on the class (13.5% top-1 of 10).

The four mixtures of Kempf et al. (ICML 2025, "When and how does CLIP enable domain and compositional
generalization?"), by which domains they draw from:

- `natural-only`: the natural domain alone;
- `cg-low` (low diversity): the natural domain and the test domain;
- `cg-high` (high diversity): every domain;
- `leave-out`: every domain but the test domain.

In every mixture the test domain's `test_classes` are never shown (they are what the study asks
about); every other (domain, class) of the mixture is. Evaluation reads `root/eval/` with the
`domainnet` benchmark (`benchmarks/imagefolder.py`), and prompts of the same form.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from ...errors import ConfigError, InputNotFoundError
from ..items import DatasetBuilder
from ..world.files import read_world_file

NOUNS = {"real": "photo", "clipart": "clipart", "painting": "painting", "sketch": "sketch", "quickdraw": "doodle"}
MIXTURES = {
    "natural-only": lambda domains, natural, test: [natural],
    "cg-low": lambda domains, natural, test: [natural, test],
    "cg-high": lambda domains, natural, test: list(domains),
    "leave-out": lambda domains, natural, test: [d for d in domains if d != test],
}


def caption(domain: str, cls: str, domain_words: bool = False) -> str:
    """'a star', or with `domain_words` 'a sketch of a star': the pretraining caption, and the prompts' form."""
    return (
        f"a {NOUNS.get(domain, domain)} of a {cls.replace('_', ' ')}" if domain_words else f"a {cls.replace('_', ' ')}"
    )


def prompt_templates(domains: Sequence[str], domain_words: bool = False) -> list[str]:
    """Zero-shot templates of the captions' form: ['a {}'], or one per domain ['a photo of a {}', ...]."""
    return [f"a {NOUNS.get(d, d)} of a {{}}" for d in domains] if domain_words else ["a {}"]


def mixture_domains(mixture: str, domains: Sequence[str], natural: str, test_domain: str) -> list[str]:
    """The domains `mixture` draws from; an unknown mixture or domain is a ConfigError naming the known ones."""
    if mixture not in MIXTURES:
        raise ConfigError(f"domains: unknown mixture {mixture!r} (known: {', '.join(MIXTURES)})")
    for role, d in (("natural", natural), ("test_domain", test_domain)):
        if d not in domains:
            raise ConfigError(f"domains: {role} {d!r} is not one of the rendered domains {', '.join(domains)}")
    if natural == test_domain:
        raise ConfigError(f"domains: the test domain {test_domain!r} must not be the natural domain")
    return MIXTURES[mixture](domains, natural, test_domain)


def expected(**_) -> tuple[str, ...]:
    return ("domains.json",)


def load(
    root: str | os.PathLike,
    name: str = "domains_mixture",
    mixture: str = "cg-high",
    test_domain: str = "sketch",
    test_classes: Sequence[str] = (),
    natural: str = "real",
    domain_words: bool = False,
):
    """Captioned pretraining items of `mixture` (see the module docstring)."""
    base = Path(root)
    info = read_world_file(base / "domains.json", base)
    domains, classes = info["domains"], info["classes"]
    unknown = [c for c in test_classes if c not in classes]
    if unknown or not test_classes:
        raise ConfigError(
            f"{name}: test_classes {list(test_classes)} must be a non-empty subset of the classes {', '.join(classes)}"
        )
    b = DatasetBuilder(name, base)
    for domain in mixture_domains(mixture, domains, natural, test_domain):
        for cls in classes:
            if domain == test_domain and cls in test_classes:
                continue
            folder = base / "train" / domain / cls
            files = sorted(folder.glob("*.png")) if folder.is_dir() else []
            if not files:
                raise InputNotFoundError(f"{name}: no images in {folder}: regenerate with `dcsm-cache domains world`")
            for f in files:
                b.add(
                    f.relative_to(base).as_posix(), [caption(domain, cls, domain_words)], subset=domain, domain=domain
                )
    return b.build()
