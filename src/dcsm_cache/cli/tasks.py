"""`dcsm-cache` commands for the other evaluation tasks and the world's benchmark exports.

    dcsm-cache zeroshot --store stores/ViT-B-16.openai/domainnet.zarr --out results/zeroshot/domainnet.json
    dcsm-cache retrieval --store stores/ViT-B-16.openai/karpathy_coco.zarr --out results/retrieval/coco.json
    dcsm-cache linear-probe --train stores/ViT-B-16.openai/cifar10_train.zarr \
        --test stores/ViT-B-16.openai/cifar10.zarr --out results/cifar10-4shot.json --shots 4 --seed 0 --seed 1
    dcsm-cache export-world --world data/world --out data/world_export
    dcsm-cache grounding --store stores/shapes-clip/shapes_binding.zarr --world data/world
    dcsm-cache probe --train stores/shapes-clip/shapes_train.zarr --test stores/shapes-clip/shapes_binding.zarr \
        --world data/world
    dcsm-cache export stores/shapes-clip/shapes_spatial.zarr shapes_spatial.h5   # and `import` back

Each is a thin wrapper over one library call (`pipeline/tasks/zeroshot.py`, `pipeline/tasks/retrieval.py`,
`pipeline/tasks/linear_probe.py`, `pipeline/world/export.py`, `pipeline/tasks/grounding.py`,
`pipeline/tasks/probe.py`) and registers itself on the `main` group. (`linear-probe` is the CLIP paper's
classification protocol on pooled features; `probe` reads colour and shape from the shapes world's tokens.)
"""

from __future__ import annotations

import click

from . import _settings, backbone_name_option, main, name_backbone, settings_option
from ..config import from_mapping


@main.command()
@click.option("--store", required=True, type=click.Path(), help="Store of an imagefolder/domainnet manifest.")
@click.option("--out", required=True, type=click.Path(), help="Result JSON to write.")
@click.option("--items", "items_path", type=click.Path(), help="Manifest, if not the one the store records.")
@backbone_name_option
@settings_option
def zeroshot(store: str, out: str, items_path: str | None, backbone_name: str | None, sets: tuple[str, ...]) -> None:
    """Zero-shot top-k classification from a store's pooled embeddings (prompt ensemble).

    \b
    Example:
      dcsm-cache zeroshot --store stores/shapes-clip/shapes_objects.zarr --out zs.json --set 'top_k=[1,5]'
    """
    from ..pipeline.tasks.results import write_result
    from ..pipeline.tasks.zeroshot import ZeroShotConfig, zeroshot as run
    from ..workflow.code import code_fingerprint

    cfg = from_mapping(ZeroShotConfig, _settings(sets), "zeroshot")
    result = run(store, cfg, items=items_path, code=code_fingerprint("zeroshot"))
    write_result(name_backbone(result, backbone_name), out)
    tops = ", ".join(f"{k} {100 * v:.1f}%" for k, v in result.items() if k.startswith("top"))
    click.echo(
        f"{result['dataset']} zero-shot: {tops} of {result['n_items']} images, {result['n_classes']} classes "
        f"x {result['n_templates']} templates -> {out}"
    )


@main.command()
@click.option("--store", required=True, type=click.Path(), help="Feature store of a `karpathy_*` manifest.")
@click.option("--out", required=True, type=click.Path(), help="Result JSON to write.")
@click.option("--items", "items_path", type=click.Path(), help="Manifest, if not the one the store records.")
@backbone_name_option
@settings_option
def retrieval(store: str, out: str, items_path: str | None, backbone_name: str | None, sets: tuple[str, ...]) -> None:
    """Image-text retrieval recall@k, both directions, from a store's pooled embeddings.

    \b
    Example:
      dcsm-cache retrieval --store stores/ViT-B-16.openai/karpathy_coco.zarr --out results/coco.json
    """
    from ..pipeline.tasks.results import write_result
    from ..pipeline.tasks.retrieval import RetrievalConfig, retrieval as run
    from ..workflow.code import code_fingerprint

    cfg = from_mapping(RetrievalConfig, _settings(sets), "retrieval")
    result = run(store, cfg, items=items_path, code=code_fingerprint("retrieval"))
    write_result(name_backbone(result, backbone_name), out)

    def line(d):
        return " ".join(f"{k} {100 * v:.1f}" for k, v in result[d].items() if k.startswith("R@"))

    click.echo(
        f"{result['dataset']}: image->text {line('image_to_text')}; text->image {line('text_to_image')} "
        f"({result['n_images']} images, {result['n_texts']} texts) -> {out}"
    )


@main.command(name="linear-probe")
@click.option(
    "--train", "train_store", required=True, type=click.Path(), help="Store of a classification set's train split."
)
@click.option("--test", "test_store", required=True, type=click.Path(), help="Store of its test split, same backbone.")
@click.option("--out", required=True, type=click.Path(), help="Result JSON to write.")
@click.option("--shots", type=int, help="Images a class drawn from train per seed (few-shot). Default: all of train.")
@click.option(
    "--seed",
    "seeds",
    type=int,
    multiple=True,
    help="Seed of the draw and of the held-out part (repeatable: one probe each, averaged). Default: 0.",
)
@click.option(
    "--features",
    default="pooled",
    show_default=True,
    help="pooled (image/pooled) or tokens (the mean of the patch tokens).",
)
@backbone_name_option
@settings_option
def linear_probe(
    train_store: str,
    test_store: str,
    out: str,
    shots: int | None,
    seeds: tuple[int, ...],
    features: str,
    backbone_name: str | None,
    sets: tuple[str, ...],
) -> None:
    """Linear probe on frozen image features: logistic regression fit on one store, scored on another.

    The CLIP paper's protocol: L2-normalised features, C chosen on a held-out part of train, refit on all
    of train; top-1 and mean per-class accuracy on the test store.

    \b
    Example:
      dcsm-cache linear-probe --train stores/shapes-clip/shape_classes_train.zarr \\
        --test stores/shapes-clip/shape_classes_test.zarr --out lp.json --shots 4 --seed 0 --seed 1
    """
    from ..pipeline.tasks.linear_probe import LinearProbeConfig, linear_probe as run
    from ..pipeline.tasks.results import write_result
    from ..workflow.code import code_fingerprint

    given = {
        "features": features,
        **({"shots": shots} if shots is not None else {}),
        **({"seeds": seeds} if seeds else {}),
    }
    cfg = from_mapping(LinearProbeConfig, {**_settings(sets), **given}, "linear-probe")
    result = run(train_store, test_store, cfg, code=code_fingerprint("linear_probe"))
    write_result(name_backbone(result, backbone_name), out, seeds={"linear_probe": list(cfg.seeds)})
    click.echo(
        f"{result['train_dataset']} -> {result['dataset']} linear probe ({cfg.features}, "
        f"{f'{cfg.shots} a class' if cfg.shots else 'all of train'}, {len(cfg.seeds)} seed(s)): "
        f"top-1 {100 * result['accuracy']:.1f}% ± {100 * result['stderr']:.1f}, mean per class "
        f"{100 * result['mean_per_class']:.1f}% ± {100 * result['mean_per_class_stderr']:.1f} of {result['n_items']} "
        f"images, {result['n_classes']} classes (chance {100 * result['chance']:.1f}%), C {result['C']:.3g} -> {out}"
    )


@main.command(name="export-world")
@click.option("--world", required=True, type=click.Path(), help="Shapes world written by `dcsm-cache world`.")
@click.option("--out", required=True, type=click.Path(), help="Folder to write one data root per probe split into.")
@click.option(
    "--formats",
    default="whatsup,clevr_bind,sugarcrepe",
    show_default=True,
    help="Comma list of benchmark formats to write.",
)
def export_world(world: str, out: str, formats: str) -> None:
    """Export the world's probe sets in What'sUp, CLEVR-bind and SugarCREPE layouts.

    \b
    Example:
      dcsm-cache export-world --world data/world --out data/world-export
    """
    from ..pipeline.world.export import export_world as run

    doc = run(world, out, formats)
    for split, info in doc["splits"].items():
        click.echo(
            f"{out}/{split}: "
            + ", ".join(f"{k} {n}" for k, n in info["benchmarks"].items())
            + (f" ({info['dropped']} dropped)" if info["dropped"] else "")
        )
    click.echo(f"wrote {out}/export.json")


@main.command()
@click.option("--store", required=True, type=click.Path(), help="Store of a shapes-world probe manifest.")
@click.option("--world", required=True, type=click.Path(), help="The shapes world the manifest was made from.")
@click.option("--out", type=click.Path(), help="Also write the report as JSON here.")
@click.option(
    "--alone/--no-alone",
    default=True,
    show_default=True,
    help="Also encode each word and phrase on its own (loads the backbone).",
)
@click.option("--device", default="cpu", show_default=True, help="Where to encode the words alone.")
def grounding(store: str, world: str, out: str | None, alone: bool, device: str) -> None:
    """How often a word's best-matching image token lies on the object it names.

    \b
    Example:
      dcsm-cache grounding --store stores/shapes-clip/shapes_binding.zarr --world data/world
    """
    from ..pipeline.tasks.results import write_result
    from ..pipeline.tasks.grounding import grounding as run

    report = run(store, world, alone=alone, device=device)
    if out:
        write_result(report, out)
    for side in ("in_context", "alone"):
        if side in report:
            click.echo(f"{side:10s} " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in report[side].items()))
    click.echo(f"({report['n_objects']} named objects, chance {100 * report['chance']:.1f}%)")


@main.command()
@click.option("--train", "train_store", required=True, type=click.Path(), help="Store whose objects fit the probe.")
@click.option("--test", "test_store", required=True, type=click.Path(), help="Store whose objects score it.")
@click.option("--world", required=True, type=click.Path(), help="The shapes world both manifests were made from.")
@click.option("--out", type=click.Path(), help="Also write the report as JSON here.")
def probe(train_store: str, test_store: str, world: str, out: str | None) -> None:
    """What the image tokens at each object say it is: a linear probe of colour and shape.

    \b
    Example:
      dcsm-cache probe --train stores/shapes-clip/shapes_train.zarr \
        --test stores/shapes-clip/shapes_binding.zarr --world data/world
    """
    from ..pipeline.tasks.probe import ATTRIBUTES
    from ..pipeline.tasks.probe import probe as run
    from ..pipeline.tasks.results import write_result

    report = run(train_store, test_store, world)
    if out:
        write_result(report, out)
    for attr in ATTRIBUTES:
        r = report[attr]
        hardest = sorted(r["pairs"].items(), key=lambda kv: kv[1])[:3]
        click.echo(
            f"{attr:7s} {100 * r['accuracy']:.1f}% (chance {100 * r['chance']:.1f}%); hardest pairs: "
            + ", ".join(f"{k} {100 * v:.1f}%" for k, v in hardest)
        )
    ceiling = report["binding_ceiling"]
    if ceiling["n_scenes"]:
        splits = ", ".join(f"{k} {100 * v:.1f}%" for k, v in ceiling["splits"].items())
        click.echo(f"binding scenes: the probe picks the true shape assignment {100 * ceiling['accuracy']:.1f}%")
        click.echo(f"  by split: {splits}")
    click.echo(f"({report['n_train']} objects to fit, {report['n_test']} to score)")


@main.command(name="export")
@click.argument("store", type=click.Path())
@click.argument("out", type=click.Path())
def export_(store: str, out: str) -> None:
    """Write a complete feature store as one HDF5 file (same arrays, chunks and attributes).

    \b
    Example:
      dcsm-cache export stores/shapes-clip/shapes_spatial.zarr shapes_spatial.h5
    """
    from ..stores.hdf5 import export_hdf5

    click.echo(f"wrote {export_hdf5(store, out)}")


@main.command(name="import")
@click.argument("h5", type=click.Path())
@click.argument("store", type=click.Path())
@click.option(
    "--overwrite", is_flag=True, help="Replace the store at STORE, if there is one (kept until the new is whole)."
)
def import_(h5: str, store: str, overwrite: bool) -> None:
    """Rebuild a feature store from an HDF5 file written by `dcsm-cache export`, every checksum checked.

    \b
    Example:
      dcsm-cache import shapes_spatial.h5 stores/shapes-clip/shapes_spatial.zarr
    """
    from ..stores.hdf5 import import_hdf5

    import_hdf5(h5, store, overwrite=overwrite)
    click.echo(f"wrote {store}")
