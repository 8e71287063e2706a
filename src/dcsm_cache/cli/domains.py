"""`dcsm-cache domains`: the domain-generalisation study's rendered domains and its Figure-2 table.

    dcsm-cache domains world --out data/domains --set n_train=60
    dcsm-cache domains table --root data/domains --test-domain sketch --test-classes heart,star \\
        --result natural-only=results/domains/domains-natural-only/domains_eval/zeroshot.json ... \\
        --out results/domains/domains/figure2

Thin wrappers over `pipeline/world/domains.py` and `pipeline/tasks/domains_table.py`; the workflow
(config/domains.yaml, rules/domains.smk) runs both.
"""

from __future__ import annotations

import click

from . import _settings, main, settings_option
from ..config import from_mapping


@main.group()
def domains() -> None:
    """The domain-generalisation study: rendering domains and the per-mixture table.

    \b
    Example:
      dcsm-cache domains world --out data/domains
    """


@domains.command(name="world")
@click.option("--out", required=True, type=click.Path(), help="Folder for train/ and eval/ (root/<domain>/<class>/).")
@settings_option
def world(out: str, sets: tuple[str, ...]) -> None:
    """Draw one shape per image in every rendering domain (real, clipart, painting, sketch, quickdraw).

    \b
    Example:
      dcsm-cache domains world --out data/domains --set n_train=60 --set n_eval=20
    """
    from ..pipeline.world.domains import DomainsConfig, generate_domains

    cfg = from_mapping(DomainsConfig, _settings(sets), "domains")
    generate_domains(cfg, out)
    n = len(cfg.domains) * len(cfg.classes)
    click.echo(f"wrote {out}: {n * cfg.n_train} train and {n * cfg.n_eval} eval images ({len(cfg.domains)} domains)")


@domains.command()
@click.option("--root", required=True, type=click.Path(), help="The rendered domains (domains.json names the classes).")
@click.option("--test-domain", required=True, help="The domain whose held-out classes the study asks about.")
@click.option("--test-classes", required=True, help="Its held-out classes, comma-separated.")
@click.option(
    "--result",
    "results",
    multiple=True,
    required=True,
    metavar="MIXTURE=ZEROSHOT.json",
    help="A mixture's zero-shot result on the evaluation set (repeatable; rows in this order).",
)
@click.option("--out", required=True, type=click.Path(), help="Path stem: OUT.md, OUT.csv and OUT.png are written.")
def table(root: str, test_domain: str, test_classes: str, results: tuple[str, ...], out: str) -> None:
    """The Figure-2 table: per mixture, top-1 on the test domain's held-out classes, its others, other domains.

    \b
    Example:
      dcsm-cache domains table --root data/domains --test-domain sketch --test-classes heart,star
    --result cg-high=results/domains/domains-cg-high/domains_eval/zeroshot.json --out results/domains/domains/figure2
    """
    from pathlib import Path

    from ..pipeline.tasks.domains_table import study_table, write_table
    from ..pipeline.world.files import read_world_file

    pairs = {}
    for r in results:
        mixture, sep, path = r.partition("=")
        if not sep:
            raise click.BadParameter(f"{r!r} is not MIXTURE=PATH", param_hint="--result")
        pairs[mixture] = path
    classes = read_world_file(Path(root) / "domains.json", Path(root))["classes"]
    held = [c for c in test_classes.split(",") if c]
    rows = study_table(pairs, test_domain, held, classes)
    written = write_table(rows, out, test_domain, held)
    for row in rows:
        click.echo(f"{row['mixture']:>14s}: held-out {row['heldout']:.1f}%  other classes {row['seen']:.1f}%")
    click.echo("wrote " + ", ".join(map(str, written)))
