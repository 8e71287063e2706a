"""`dcsm-cache` commands for the four stages every run goes through: extract, train, eval, report.

    dcsm-cache extract --items manifests/shapes_spatial.json --backbone shapes-clip@models/shapes-clip.pt \\
        --out stores/shapes-clip/shapes_spatial.zarr
    dcsm-cache train --store stores/shapes-clip/shapes_train.zarr --out models/shapes-clip/dcsm.pt
    dcsm-cache eval --store stores/shapes-clip/shapes_spatial.zarr --scorer dcsm \\
        --checkpoint models/shapes-clip/dcsm.pt --out results/shapes_spatial/dcsm.json
    dcsm-cache report results/default/*/*/*.json --out results/default/summary.md

Each is a thin wrapper over one library call (`pipeline/extract`, `pipeline/train`, `pipeline/tasks/choice.py`,
`pipeline/tasks/report.py`) and registers itself on the `main` group.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..config import from_mapping
from ..errors import DcsmCacheError
from ..heap import keep_freed_memory
from ..pipeline.scorers import SCORERS
from . import _settings, backbone_name_option, main, name_backbone, settings_option


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
@click.option(
    "--on-bad-image",
    type=click.Choice(["skip", "fail"]),
    default="skip",
    show_default=True,
    help="An unreadable or missing image: mark its row invalid and list it (`dcsm-cache parts STORE`), or stop.",
)
@click.option("--wait", is_flag=True, help="If another process is writing this part, wait for it instead of stopping.")
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
    on_bad_image: str,
    wait: bool,
    sets: tuple[str, ...],
) -> None:
    """Extract per-token image and text features into a Zarr store.

    \b
    Example:
      dcsm-cache extract --items manifests/shapes_spatial.json --backbone shapes-clip@models/shapes-clip.pt \\
        --out stores/shapes-clip/shapes_spatial.zarr

    `--set views=K` also stores K-1 seeded augmented views of each image, which training draws from.
    """
    from ..pipeline.extract import ExtractConfig, extract as run

    cfg = from_mapping(
        ExtractConfig,
        {
            "part": part,
            "nparts": nparts,
            "device": device,
            "workers": workers,
            "overwrite": overwrite,
            "on_bad_image": on_bad_image,
            "wait": wait,
            **_settings(sets),
        },
        "extract",
    )
    store = run(items_path, backbone, out, cfg)
    click.echo(f"{out}: part {part} of {nparts} done" + (" (store complete)" if store.attrs.get("complete") else ""))
    if store.attrs.get("complete"):
        valid = store.image_valid[:]
        if not valid.all():  # a store reused as complete keeps them: say how to retry once the files are fixed
            click.echo(
                f"{out}: {int((~valid).sum())} of {len(valid)} images could not be read and are marked invalid "
                f"(`dcsm-cache parts {out}` lists them); to retry them, fix the files, delete {out} and extract again"
            )


@main.command()
@click.option(
    "--store",
    "stores",
    required=True,
    multiple=True,
    type=click.Path(),
    help="Feature store of the training set; repeat for several of one backbone (one batch of each per step).",
)
@click.option("--out", required=True, type=click.Path(), help="Scorer checkpoint to write.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--resume", is_flag=True, help="Continue from OUT.resume (written every checkpoint_every steps) if there."
)
@settings_option
def train(stores: tuple[str, ...], out: str, device: str, resume: bool, sets: tuple[str, ...]) -> None:
    """Train the DCSM scorer from cached features (one store, or several: the paper's training sources).

    \b
    Example:
      dcsm-cache train --store stores/shapes-clip/shapes_train.zarr --out models/shapes-clip/dcsm.pt --resume
    """
    from ..pipeline.train import TrainConfig, train as run

    keep_freed_memory()  # before the first tensor: the steps reuse memory instead of faulting it in (heap.py)
    cfg = from_mapping(TrainConfig, {"device": device, "resume": resume, **_settings(sets)}, "train")
    summary = run(stores[0] if len(stores) == 1 else list(stores), out, cfg)
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
@backbone_name_option
@click.option(
    "--scorer-name",
    help="Name the scorer in the result (a workflow recipe, e.g. dcsm-synth); reports name rows by it. "
    "Default: --scorer.",
)
@settings_option
def eval_(
    store: str,
    scorer: str,
    checkpoint: str | None,
    out: str,
    device: str,
    backbone_name: str | None,
    scorer_name: str | None,
    sets: tuple[str, ...],
) -> None:
    """Score a benchmark's items from its store.

    \b
    Example:
      dcsm-cache eval --store stores/shapes-clip/shapes_spatial.zarr --scorer dcsm \\
        --checkpoint models/shapes-clip/dcsm.pt --out results/default/shapes-clip/shapes_spatial/dcsm.json
    """
    from ..pipeline.tasks.choice import EvalConfig, evaluate
    from ..pipeline.tasks.results import write_result
    from ..workflow.code import code_fingerprint

    cfg = from_mapping(EvalConfig, {"checkpoint": checkpoint, "device": device, **_settings(sets)}, "eval")
    result = evaluate(store, scorer, cfg, code=code_fingerprint("evaluate"))
    if scorer_name:
        result = {**result, "scorer": scorer_name}
    write_result(name_backbone(result, backbone_name), out, seeds=_train_seeds(checkpoint))
    click.echo(
        f"{result['dataset']} {result['scorer']}: {100 * result['accuracy']:.1f}% of {result['n_items']} items "
        f"(chance {100 * result['chance']:.1f}%) -> {out}"
    )


def _train_seeds(checkpoint: str | None) -> dict:
    """The seed a dcsm-cache scorer checkpoint was trained with ({} for none or another kind)."""
    from ..pipeline.dcsm import read_meta

    try:
        return {"train": read_meta(checkpoint)["train_config"]["seed"]} if checkpoint else {}
    except (DcsmCacheError, KeyError, TypeError):
        return {}


@main.command()
@click.argument("results", nargs=-1, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Markdown table to write (CSV, JSON, HTML go beside it).")
@click.option("--figures/--no-figures", default=True, show_default=True, help="Also draw the figures and HTML page.")
@click.option("--gallery", multiple=True, type=click.Path(), help="Folder of `gallery` PNGs for the HTML page.")
def report(results: tuple[str, ...], out: str, figures: bool, gallery: tuple[str, ...]) -> None:
    """Merge result JSONs into the table (Markdown, CSV, JSON), the figures and an HTML page.

    \b
    Example:
      dcsm-cache report results/default/*/*/*.json --out results/default/summary.md
    """
    from ..pipeline.tasks.report import report as run

    click.echo(run([Path(r) for r in results], out, figures=figures, gallery=gallery))
