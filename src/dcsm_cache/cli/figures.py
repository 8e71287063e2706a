"""`dcsm-cache` commands that draw or score for a person: `show` (one item's heatmaps), `score` (one image), `gallery`.

    dcsm-cache show --store stores/shapes-clip/shapes_spatial.zarr --item 3 --checkpoint models/shapes-clip/dcsm.pt
    dcsm-cache score data/world/images/test/000000.png "a red circle above a blue square" "a blue square above ..."
    dcsm-cache gallery --store stores/shapes-clip/shapes_spatial.zarr --checkpoint models/shapes-clip/dcsm.pt --out G

Each is a thin wrapper over one library call in `pipeline/figures/` and registers itself on `main`.
"""

from __future__ import annotations

import click

from . import main


@main.command()
@click.option("--store", required=True, type=click.Path(), help="Feature store of a choice benchmark.")
@click.option("--item", required=True, type=int, help="Item number in the store's manifest (from 0).")
@click.option("--checkpoint", type=click.Path(), help="DCSM scorer: its scores in the titles; it picks the wrong one.")
@click.option("--out", type=click.Path(), help="PNG to write (default: item<N>.png).")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
def show(store: str, item: int, checkpoint: str | None, out: str | None, device: str) -> None:
    """Draw one item's DCSM heatmaps: the image, the true and the strongest wrong caption's maps, word overlays.

    \b
    Example:
      dcsm-cache show --store stores/shapes-clip/shapes_spatial.zarr --item 3 \\
        --checkpoint models/shapes-clip/dcsm.pt --out item3.png
    """
    from ..pipeline.figures.heatmap import show_item

    info = show_item(store, item, out or f"item{item}.png", checkpoint=checkpoint, device=device)
    for name, scores in info["scores"].items():
        click.echo(
            f"{name:7s} " + "  ".join(f"{s:8.3f}{'*' if k == info['correct'] else ' '}" for k, s in enumerate(scores))
        )
    click.echo(f"(* true caption; wrong shown: {info['captions'][info['wrong']]!r}) -> {info['out']}")


@main.command()
@click.argument("image", type=click.Path())
@click.argument("captions", nargs=-1, required=True)
@click.option(
    "--backbone",
    default="shapes-clip",
    show_default=True,
    help="A key of the config's backbones: (its scorer: models/KEY/dcsm.pt), or any name `extract` takes.",
)
@click.option("--checkpoint", type=click.Path(), help="DCSM scorer checkpoint (default: the workflow's, if built).")
@click.option("--config", default="config/config.yaml", show_default=True, type=click.Path(), help="Workflow config.")
@click.option("--heatmaps", type=click.Path(), help="Folder to draw each caption's map and word overlays into.")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
def score(
    image: str,
    captions: tuple[str, ...],
    backbone: str,
    checkpoint: str | None,
    config: str,
    heatmaps: str | None,
    device: str,
) -> None:
    """Rank CAPTIONS for IMAGE by the backbone's cosine and by the DCSM scorer, side by side.

    \b
    Example:
      dcsm-cache score data/world/images/test/000000.png "a red circle above a blue square" \\
        "a blue square above a red circle" --heatmaps maps/
    """
    from ..pipeline.figures.score import rank_captions

    out = rank_captions(image, list(captions), backbone, checkpoint, device, heatmaps, config)
    click.echo(
        f"{out['image']}  backbone {out['backbone']}" + (f", scorer {out['checkpoint']}" if out["checkpoint"] else "")
    )
    columns = [("cosine (CLIP)", "cosine")] + ([("DCSM scorer", "dcsm")] if "dcsm" in out["scores"] else [])
    text = [c if len(c) <= 48 else c[:47] + "…" for c in captions]
    width = max(len(t) for t in text)
    num = len(str(len(captions)))
    click.echo("   ".join(f"{title:<{num + 12 + width}}" for title, _ in columns).rstrip())
    for rank in range(len(captions)):
        cells = []
        for _, key in columns:
            k = out["ranked"][key][rank]
            cells.append(f"{rank + 1:>{num}}. {out['scores'][key][k]:8.3f}  {text[k]:<{width}}")
        click.echo("   ".join(cells).rstrip())
    if "note" in out:
        click.echo(f"note: {out['note']}")
    if not out["checkpoint"]:
        click.echo("(no DCSM scorer: pass --checkpoint, or build the workflow's with `snakemake --cores all`)")
    for path in out.get("heatmaps", []):
        click.echo(f"wrote {path}")


@main.command()
@click.option("--store", "stores", required=True, multiple=True, type=click.Path(), help="Store (repeatable).")
@click.option("--checkpoint", required=True, type=click.Path(), help="The DCSM scorer to compare with the cosine.")
@click.option("--out", required=True, type=click.Path(), help="Folder to write the PNGs and index.json into.")
@click.option("--per-kind", default=2, show_default=True, help="Items drawn per store and kind.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def gallery(stores: tuple[str, ...], checkpoint: str, out: str, per_kind: int, device: str) -> None:
    """Draw items the cosine gets wrong and the DCSM right, and the reverse, as heatmaps.

    \b
    Example:
      dcsm-cache gallery --store stores/shapes-clip/shapes_spatial.zarr \\
        --checkpoint models/shapes-clip/dcsm.pt --out results/default/gallery-shapes-clip
    """
    from ..pipeline.figures.gallery import gallery as run

    index = run(list(stores), checkpoint, out, per_kind=per_kind, device=device)
    for s in index["stores"]:
        click.echo(
            f"{s['dataset']}: DCSM right and cosine wrong on {s['dcsm_right']} of {s['n_items']} items, "
            f"the reverse on {s['cosine_right']}; drew {len(s['dcsm_right_files']) + len(s['cosine_right_files'])}"
        )
    click.echo(f"wrote {out}/index.json")
