"""`dcsm-cache parts`: which extraction parts of a feature store are finished.

    dcsm-cache parts stores/shapes-clip/shapes_train.zarr    # which extraction parts are finished

`parts` is what the workflow's gathering rule runs after a store's part jobs (rules/extract.smk):
it exits 2 when a part is missing, naming it, so a store is never used half-made. It also lists the
images that could not be read (the store's `bad_images` attribute), whose rows are marked invalid.
"""

from __future__ import annotations

import click

from . import main


@main.command()
@click.argument("store", type=click.Path())
def parts(store: str) -> None:
    """List a store's extraction parts and unreadable images; exit 2 naming the parts not finished.

    \b
    Example:
      dcsm-cache parts stores/shapes-clip/shapes_train.zarr
    """
    from ..stores.feature_store import FeatureStore

    handle = FeatureStore.open(store)  # IncompleteStoreError (exit 2) names the missing parts
    a = handle.attrs
    for i in range(a["nparts"]):
        rows = handle.part_rows(i)
        click.echo(
            f"part {i} of {a['nparts']}: images {rows['image'][0]}:{rows['image'][1]}, "
            f"captions {rows['text'][0]}:{rows['text'][1]}, done"
        )
    for rec in handle.bad_images():
        click.echo(f"unreadable image, row {rec['row']} marked invalid: {rec['reason']}")
    click.echo(f"{store}: complete ({a['dataset']}, {a['backbone']})")
