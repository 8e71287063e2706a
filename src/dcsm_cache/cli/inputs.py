"""The commands that make a workflow's inputs: the shapes world, item manifests, the pretrained backbone.

    dcsm-cache items shapes_spatial --root data/world --out manifests/shapes_spatial.json

`world` renders the embedded default's data, `items` reads any benchmark from its native layout into
the manifest every later stage reads (`benchmarks` lists them), and `pretrain` trains the
shapes-world CLIP that `extract` then loads as `shapes-clip@models/shapes-clip.pt`.
"""

from __future__ import annotations

import json

import click

from ..config import from_mapping
from . import _settings, main, settings_option


@main.command()
@click.option("--out", required=True, type=click.Path(), help="Folder to write the world into.")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Processes writing splits (default: every core)."
)
@settings_option
def world(out: str, workers: int | None, sets: tuple[str, ...]) -> None:
    """Generate the shapes world: images, scenes and probe sets.

    \b
    Example:
      dcsm-cache world --out data/world --set seed=0
    """
    from ..pipeline.world import WorldConfig, generate_world

    generate_world(from_mapping(WorldConfig, _settings(sets), "world"), out, workers=workers)
    click.echo(f"wrote {out}")


@main.command()
@click.argument("benchmark")
@click.option(
    "--root",
    required=True,
    type=click.Path(),
    help="The benchmark's folder, as downloaded. The manifest records it as given when absolute, else relative "
    "to the manifest's own folder (and resolves it so), so the manifest works from any directory.",
)
@click.option("--out", required=True, type=click.Path(), help="Manifest JSON to write.")
@click.option(
    "--paper-compat",
    type=click.Choice(["dcsm", "baseline"]),
    is_flag=False,
    flag_value="dcsm",
    default=None,
    help="Write the captions as the DCSM reference feeds them (prefix and rewrites; "
    "`--paper-compat baseline`: its baselines' captions). Names the dataset "
    "BENCHMARK+paper (+paper-baseline).",
)
@click.option("--name", help="Name the dataset (results and reports show it) instead of BENCHMARK.")
@settings_option
def items(
    benchmark: str, root: str, out: str, paper_compat: str | None, name: str | None, sets: tuple[str, ...]
) -> None:
    """Read BENCHMARK from its native layout and write its item manifest.

    \b
    Example:
      dcsm-cache items shapes_spatial --root data/world --out manifests/shapes_spatial.json
    """
    import dataclasses

    from ..pipeline.benchmarks import load_benchmark
    from ..pipeline.items import write_manifest

    ds = load_benchmark(benchmark, root, **_settings(sets))
    if name:
        ds = dataclasses.replace(ds, name=name)
    if paper_compat:
        from ..pipeline.paper.captions import apply_reference_captions

        ds = apply_reference_captions(ds, benchmark, dcsm=paper_compat == "dcsm")
    fp = write_manifest(ds, out)
    click.echo(
        f"{benchmark}: {len(ds.items)} items, {len(ds.images)} images, {len(ds.captions)} captions -> {out} ({fp})"
    )


@main.command()
def benchmarks() -> None:
    """List the benchmarks the `items` command reads.

    \b
    Example:
      dcsm-cache benchmarks
    """
    from ..pipeline.benchmarks import BENCHMARKS

    for name, b in sorted(BENCHMARKS.items()):
        click.echo(f"{name:24s} {b.description}")


@main.command()
@click.option("--items", "items_path", required=True, type=click.Path(), help="Manifest of (image, caption) pairs.")
@click.option("--out", required=True, type=click.Path(), help="Checkpoint (open_clip state dict) to write.")
@settings_option
def pretrain(items_path: str, out: str, sets: tuple[str, ...]) -> None:
    """Pretrain the shapes-world CLIP with open_clip's contrastive loss.

    \b
    Example:
      dcsm-cache pretrain --items manifests/shapes_pretrain.json --out models/shapes-clip.pt --set steps=400
    """
    from ..pipeline.world.pretrain import PretrainConfig, pretrain as run

    summary = run(items_path, out, from_mapping(PretrainConfig, _settings(sets), "pretrain"))
    click.echo(json.dumps(summary))
