"""The `dcsm-cache` command: one thin click command per library call.

    dcsm-cache extract --items manifests/shapes_spatial.json --backbone shapes-clip@models/shapes-clip.pt \\
        --out stores/shapes-clip/shapes_spatial.zarr

Every command takes `--set KEY=VALUE` (repeatable) to override a field of its stage's frozen
config dataclass; an unknown key is an error that lists the known ones. Errors raised on purpose
(`DcsmCacheError`) become one line on stderr and exit code 2; nothing already written is touched.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from ..config import from_mapping
from ..errors import DcsmCacheError
from ..pipeline.scorers import SCORERS


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DcsmCacheError as err:
            click.echo(f"dcsm-cache: error: {err}", err=True)
            sys.exit(2)


def _settings(pairs: tuple[str, ...]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def settings_option(f):
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one field of this stage's config (repeatable).",
    )(f)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.version_option(package_name="dcsm-cache")
def main(verbose: bool) -> None:
    """Extract CLIP token features once; train and evaluate DCSM scorers from the cache."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.option("--out", required=True, type=click.Path(), help="Folder to write the world into.")
@settings_option
def world(out: str, sets: tuple[str, ...]) -> None:
    """Generate the shapes world: images, scenes and probe sets."""
    from ..pipeline.world import WorldConfig, generate_world

    generate_world(from_mapping(WorldConfig, _settings(sets), "world"), out)
    click.echo(f"wrote {out}")


@main.command()
@click.argument("benchmark")
@click.option("--root", required=True, type=click.Path(), help="The benchmark's folder, as downloaded.")
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
    """Read BENCHMARK from its native layout and write its item manifest."""
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
    """List the benchmarks the `items` command reads."""
    from ..pipeline.benchmarks import BENCHMARKS

    for name, b in sorted(BENCHMARKS.items()):
        click.echo(f"{name:24s} {b.description}")


@main.command()
@click.option("--items", "items_path", required=True, type=click.Path(), help="Manifest of (image, caption) pairs.")
@click.option("--out", required=True, type=click.Path(), help="Checkpoint (open_clip state dict) to write.")
@settings_option
def pretrain(items_path: str, out: str, sets: tuple[str, ...]) -> None:
    """Pretrain the shapes-world CLIP with open_clip's contrastive loss."""
    from ..pipeline.world.pretrain import PretrainConfig, pretrain as run

    summary = run(items_path, out, from_mapping(PretrainConfig, _settings(sets), "pretrain"))
    click.echo(json.dumps(summary))


@main.command()
@click.option("--items", "items_path", required=True, type=click.Path(), help="Manifest written by `items`.")
@click.option("--backbone", required=True, help="arch.tag, arch@/path/to/weights or hf-hub:org/name.")
@click.option("--out", required=True, type=click.Path(), help="Zarr store to create or complete.")
@click.option("--part", default=0, show_default=True, help="Which part of --nparts to extract.")
@click.option("--nparts", default=1, show_default=True, help="Split extraction into this many parts.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--workers",
    type=int,
    default=-1,
    show_default=True,
    help="Processes decoding images ahead of the model (0: in this process; -1: auto).",
)
@click.option("--overwrite", is_flag=True, help="Replace a store made with other settings or data.")
@settings_option
def extract(
    items_path: str,
    backbone: str,
    out: str,
    part: int,
    nparts: int,
    device: str,
    workers: int,
    overwrite: bool,
    sets: tuple[str, ...],
) -> None:
    """Extract per-token image and text features into a Zarr store."""
    from ..pipeline.extract import ExtractConfig, extract as run

    cfg = from_mapping(
        ExtractConfig,
        {
            "part": part,
            "nparts": nparts,
            "device": device,
            "workers": workers,
            "overwrite": overwrite,
            **_settings(sets),
        },
        "extract",
    )
    store = run(items_path, backbone, out, cfg)
    click.echo(f"{out}: part {part} of {nparts} done" + (" (store complete)" if store.attrs.get("complete") else ""))


@main.command()
@click.option("--store", required=True, type=click.Path(), help="Feature store of the training set.")
@click.option("--out", required=True, type=click.Path(), help="Scorer checkpoint to write.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@settings_option
def train(store: str, out: str, device: str, sets: tuple[str, ...]) -> None:
    """Train the DCSM scorer from cached features."""
    from ..pipeline.train import TrainConfig, train as run

    summary = run(store, out, from_mapping(TrainConfig, {"device": device, **_settings(sets)}, "train"))
    click.echo(json.dumps(summary))


@main.command(name="eval")
@click.option("--store", required=True, type=click.Path(), help="Feature store of the benchmark.")
@click.option(
    "--scorer",
    required=True,
    type=click.Choice(list(SCORERS)),
    help="; ".join(f"{s.name}: {s.help}" for s in SCORERS.values()) + ".",
)
@click.option(
    "--checkpoint",
    type=click.Path(),
    help="Scorer checkpoint (for " + ", ".join(s.name for s in SCORERS.values() if s.needs_checkpoint) + ").",
)
@click.option("--out", required=True, type=click.Path(), help="Result JSON to write.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@settings_option
def eval_(store: str, scorer: str, checkpoint: str | None, out: str, device: str, sets: tuple[str, ...]) -> None:
    """Score a benchmark's items from its store."""
    from ..pipeline.tasks.choice import EvalConfig, evaluate
    from ..pipeline.tasks.results import write_result

    cfg = from_mapping(EvalConfig, {"checkpoint": checkpoint, "device": device, **_settings(sets)}, "eval")
    result = evaluate(store, scorer, cfg)
    write_result(result, out)
    click.echo(
        f"{result['dataset']} {scorer}: {100 * result['accuracy']:.1f}% of {result['n_items']} items "
        f"(chance {100 * result['chance']:.1f}%) -> {out}"
    )


@main.command()
@click.argument("results", nargs=-1, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Markdown table to write (a CSV goes beside it).")
def report(results: tuple[str, ...], out: str) -> None:
    """Merge result JSONs into a Markdown table and a CSV."""
    from ..pipeline.tasks.report import report as run

    click.echo(run([Path(r) for r in results], out))


from . import tasks  # noqa: E402,F401
from . import analyze, domains  # noqa: E402,F401
