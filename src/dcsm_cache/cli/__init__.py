"""The `dcsm-cache` command: one thin click command per library call.

    dcsm-cache extract --items manifests/shapes_spatial.json --backbone shapes-clip@models/shapes-clip.pt \\
        --out stores/shapes-clip/shapes_spatial.zarr

Every command takes `--set KEY=VALUE` (repeatable) to override a field of its stage's frozen
config dataclass; an unknown key is an error that lists the known ones. Errors raised on purpose
(`DcsmCacheError`) become one line on stderr and exit code 2; nothing already written is touched.
"""

from __future__ import annotations

import atexit
import errno
import gc
import json
import logging
import os
import sys
from pathlib import Path

import click

from ..config import from_mapping
from ..errors import DcsmCacheError
from ..heap import keep_freed_memory
from ..isa import CPU_ISAS, ENV_VAR, pin_cpu_isa
from ..pipeline.scorers import SCORERS


class _Group(click.Group):
    def parse_args(self, ctx, args):
        ctx.meta["argv"] = list(args)  # to name the store in a checksum error
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DcsmCacheError as err:
            click.echo(f"dcsm-cache: error: {err}", err=True)
            sys.exit(2)
        except OSError as err:
            if err.errno not in _FULL:
                raise
            where = f" writing {err.filename}" if err.filename else ""
            click.echo(
                f"dcsm-cache: error: no space left{where} ({os.strerror(err.errno)}); nothing half-written "
                f"was kept: free space (or raise the file size limit) and rerun",
                err=True,
            )
            sys.exit(2)
        except Exception as err:
            from ..stores.feature_store import is_checksum_error

            if not is_checksum_error(err):
                raise
            argv = ctx.meta.get("argv", [])
            store = argv[argv.index("--store") + 1] if "--store" in argv[:-1] else "the store"
            click.echo(
                f"dcsm-cache: error: a chunk of {store} fails its checksum (its bytes changed after "
                f"extraction): run `dcsm-cache verify {store}` to see which, then re-extract it",
                err=True,
            )
            sys.exit(2)


_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


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


def backbone_name_option(f):
    return click.option(
        "--backbone-name",
        help="Name the backbone in the result (the workflow's backbone key); reports name rows by it.",
    )(f)


def name_backbone(result: dict, name: str | None) -> dict:
    """The result with `backbone_name` set (schema: optional key), when a name is given."""
    return {**result, "backbone_name": name} if name else result


def settings_option(f):
    return click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one field of this stage's config (repeatable).",
    )(f)


def _freeze_at_exit() -> None:
    """Freeze the collector at exit (`gc.freeze`: every live object into its permanent generation).

    Otherwise the collections that run while the interpreter tears its modules down walk, again and
    again, the ~380,000 objects torch, torchvision, open_clip and transformers leave: freezing takes
    0.6 s off every `eval` and 1.0-1.4 s off every `extract` (2 cores), and the workflow runs a few
    dozen such jobs. Atexit handlers, buffered output and module teardown still run; what is skipped
    is collecting reference cycles at exit, which Python never promises (nothing here writes through
    a finaliser: stores, files and HDF5 files are closed explicitly).
    """
    atexit.unregister(gc.freeze)  # once per process, however many commands it invokes
    atexit.register(gc.freeze)  # atexit handlers run before the interpreter's final collections


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars (rate and ETA; in a log, a line every 30 s).")
@click.option(
    "--cpu-isa",
    default="native",
    show_default=True,
    envvar=ENV_VAR,
    help=f"CPU instructions torch may use, {' or '.join(CPU_ISAS)}: avx2 gives an AVX2 machine's floats on any "
    f"x86-64 CPU (isa.py; env {ENV_VAR}).",
)
@click.version_option(package_name="dcsm-cache")
def main(verbose: bool, quiet: bool, cpu_isa: str) -> None:
    """Extract CLIP token features once; train and evaluate DCSM scorers from the cache.

    \b
    Example:
      dcsm-cache --quiet eval --store stores/shapes-clip/shapes_spatial.zarr --scorer cosine --out r.json
    """
    _freeze_at_exit()
    pin_cpu_isa(cpu_isa)  # (no command has imported torch yet)
    if quiet:
        from ..progress import set_quiet

        set_quiet()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


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
    help="An unreadable or missing image: mark its row invalid and list it in STORE/bad_images/, or stop.",
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
                f"(listed in {out}/bad_images/); to retry them, fix the files, delete {out} and extract again"
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

    cfg = from_mapping(EvalConfig, {"checkpoint": checkpoint, "device": device, **_settings(sets)}, "eval")
    result = evaluate(store, scorer, cfg)
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


from . import inputs, tasks  # noqa: E402,F401
from . import figures as _figure_commands  # noqa: E402,F401
from . import safety  # noqa: E402,F401
from . import parts  # noqa: E402,F401
from . import analyze, domains  # noqa: E402,F401
