"""`dcsm-cache verify`: is a feature store whole, its bytes unchanged and its values sound?

    dcsm-cache verify stores/shapes-clip/shapes_spatial.zarr

A thin wrapper over `stores/verify.py`; registers itself on the `main` group.
"""

from __future__ import annotations

import sys

import click

from . import main


@main.command()
@click.argument("store", type=click.Path())
@click.option("--items", "items_path", type=click.Path(), help="Manifest, if not the one the store records.")
def verify(store: str, items_path: str | None) -> None:
    """Check a store's parts, chunk checksums, values and manifest; print each problem, exit 1 on any.

    \b
    Example:
      dcsm-cache verify stores/shapes-clip/shapes_spatial.zarr
    """
    from ..stores.verify import verify_store

    counted, problems = verify_store(store, items_path)
    for p in problems:
        click.echo(f"{store}: {p}")
    what = f"{counted['parts']} part(s), {counted['chunks']} chunk(s), {counted['rows']} row(s) checked"
    if problems:
        click.echo(f"{store}: {len(problems)} problem(s); {what}", err=True)
        sys.exit(1)
    click.echo(f"{store}: ok ({what})")
