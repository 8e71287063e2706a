"""The `dcsm-cache` command: one thin click command per library call.

    dcsm-cache extract --items manifests/shapes_spatial.json --backbone shapes-clip@models/shapes-clip.pt \\
        --out stores/shapes-clip/shapes_spatial.zarr

Every command takes `--set KEY=VALUE` (repeatable) to override a field of its stage's frozen
config dataclass; an unknown key is an error that lists the known ones. Errors raised on purpose
(`DcsmCacheError`) become one line on stderr and exit code 2; nothing already written is touched.
Here: the group, its options and what the commands share. The commands: stages.py (extract, train,
eval, report), inputs.py (world, items, benchmarks, pretrain), tasks.py (zeroshot, retrieval, grounding, probe,
the exports), figures.py (show, score, gallery), analyze.py, domains.py, parts.py, safety.py (verify).
With DCSM_CACHE_WARM set (the workflow sets it), the command line runs in a warm server's child (warm.py).
"""

from __future__ import annotations

import atexit
import errno
import gc
import json
import logging
import os
import sys

import click

from ..errors import DcsmCacheError
from ..isa import CPU_ISAS, ENV_VAR, pin_cpu_isa
from .warm import ENV_VAR as WARM
from .warm import forward


class _Group(click.Group):
    def main(self, args=None, prog_name=None, **extra):
        if args is None and os.environ.get(WARM):  # the command line, in a workflow job: a warm child runs it
            code = forward(sys.argv)
            if code is not None:
                sys.exit(code)
        return super().main(args, prog_name, **extra)

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
            from ..stores.chunk_files import is_checksum_error

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


from . import stages  # noqa: E402,F401  (extract, train, eval, report)
from . import inputs, tasks  # noqa: E402,F401
from . import figures as _figure_commands  # noqa: E402,F401
from . import safety  # noqa: E402,F401
from . import parts  # noqa: E402,F401
from . import analyze, domains  # noqa: E402,F401
