"""`dcsm-cache analyze` (CKA, UMAP) and `dcsm-cache stats`: representation analysis from the cache, on dask.

    dcsm-cache analyze cka stores/a/domains_eval.zarr stores/b/domains_eval.zarr --out cka.csv --png cka.png
    dcsm-cache analyze cka stores/a/domains_eval.zarr --across domains --features tokens --out cka.csv
    dcsm-cache analyze umap stores/a/domains_eval.zarr --out umap.png
    dcsm-cache stats stores/a/domains_eval.zarr --out stats.json

Thin wrappers over `pipeline/analysis/` (cka.py, embed.py, stats.py). Every command reads the store
out of core with dask, shows a progress bar, and runs on a dask.distributed scheduler with
`--scheduler tcp://HOST:8786` (its workers must see the store's path).
"""

from __future__ import annotations

import click

from . import _settings, main, settings_option
from ..config import from_mapping

_SCHEDULER = click.option(
    "--scheduler", default=None, metavar="ADDRESS", help="A dask.distributed scheduler (tcp://host:8786)."
)
_FEATURES = click.option(
    "--features",
    type=click.Choice(["pooled", "tokens"]),
    default=None,
    help="Pooled embeddings (default) or patch tokens.",
)


def _cfg(sets: tuple[str, ...], features: str | None):
    from ..pipeline.analysis.arrays import AnalysisConfig

    values = _settings(sets)
    if features:
        values["features"] = features
    return from_mapping(AnalysisConfig, values, "analyze")


@main.group()
def analyze() -> None:
    """Representation analysis from feature stores: linear CKA and UMAP, pooled or patch tokens.

    \b
    Example:
      dcsm-cache analyze cka stores/domains-cg-high/domains_eval.zarr stores/domains-leave-out/domains_eval.zarr
    """


@analyze.command()
@click.argument("stores", nargs=-1, required=True, type=click.Path())
@click.option(
    "--across",
    type=click.Choice(["stores", "domains"]),
    default="stores",
    show_default=True,
    help="A matrix over the stores (same images), or over one store's domains (paired scenes).",
)
@click.option("--domain", default=None, help="Across stores: only this domain's images.")
@click.option("--labels", default=None, help="Comma-separated names of the stores, for the matrix.")
@click.option("--out", required=True, type=click.Path(), help="The matrix as CSV.")
@click.option("--png", default=None, type=click.Path(), help="A heatmap of the matrix.")
@_FEATURES
@_SCHEDULER
@settings_option
def cka(stores, across, domain, labels, out, png, features, scheduler, sets) -> None:
    """Linear CKA between stores of the same images, or between one store's domains.

    \b
    Example:
      dcsm-cache analyze cka stores/domains-cg-high/domains_eval.zarr
    stores/domains-natural-only/domains_eval.zarr --features tokens --out cka.csv --png cka.png
    """
    from ..errors import BadInputError
    from ..pipeline.analysis.cka import cka_domains, cka_stores
    from ..pipeline.analysis.plots import heatmap, write_matrix

    cfg = _cfg(sets, features)
    if across == "domains":
        if len(stores) != 1 or domain:
            raise BadInputError("--across domains takes one store and no --domain")
        names, matrix = cka_domains(stores[0], cfg, scheduler)
    else:
        if len(stores) < 2:
            raise BadInputError("CKA across stores needs two or more stores (or --across domains with one)")
        names, matrix = cka_stores(stores, cfg, domain, scheduler)
        if labels:
            names = labels.split(",")
            if len(names) != len(stores):
                raise BadInputError(f"--labels names {len(names)} stores, {len(stores)} given")
    write_matrix(names, matrix, out)
    title = f"linear CKA, {cfg.features}" + (f", domain {domain}" if domain else "")
    if png:
        heatmap(names, matrix, png, title)
    click.echo(
        f"{title}:\n" + "\n".join(f"{n:>24s} " + " ".join(f"{v:6.3f}" for v in row) for n, row in zip(names, matrix))
    )
    click.echo(f"wrote {out}" + (f", {png}" if png else ""))


@analyze.command()
@click.argument("store", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="PNG to write.")
@_FEATURES
@_SCHEDULER
@settings_option
def umap(store, out, features, scheduler, sets) -> None:
    """UMAP of a store's embeddings (pooled, or patch tokens), coloured by domain and by class.

    \b
    Example:
      dcsm-cache analyze umap stores/domains-cg-high/domains_eval.zarr --features tokens --out umap.png
    """
    from ..pipeline.analysis.embed import plot_umap, umap_points

    points = umap_points(store, _cfg(sets, features), scheduler)
    plot_umap(points, out)
    click.echo(f"{points.title} -> {out}")


@main.command()
@click.argument("store", type=click.Path())
@click.option("--out", default=None, type=click.Path(), help="JSON to write (printed when left out).")
@_SCHEDULER
@settings_option
def stats(store, out, scheduler, sets) -> None:
    """Token norms, NaN/inf counts and DCSM value statistics of a store, read chunk by chunk.

    \b
    Example:
      dcsm-cache stats stores/shapes-clip/shapes_binding.zarr --out stats.json --set chunk_bytes=8000000
    """
    import json

    from ..atomic import write_json
    from ..pipeline.analysis.stats import store_stats

    result = store_stats(store, _cfg(sets, None), scheduler)
    if out:
        write_json(result, out)
    d, bad = result["dcsm"], sum(v for a in result["nonfinite"].values() for v in a.values())
    click.echo(
        f"{store}: {result['n_valid_images']}/{result['n_images']} images, {bad} NaN/inf values; "
        f"DCSM correct {d['correct']['mean']:.3f}±{d['correct']['std']:.3f}, "
        f"other {d['other']['mean'] if d['other']['n'] else float('nan'):.3f}" + (f" -> {out}" if out else "")
    )
    if not out:
        click.echo(json.dumps(result, indent=1))
