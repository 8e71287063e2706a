"""The science of dcsm-cache, in rooms by job (each subpackage re-exports its public names).

    from dcsm_cache.pipeline.extract import extract           # images, captions -> a Zarr feature store
    from dcsm_cache.pipeline.train import train               # store -> DCSM scorer checkpoint
    from dcsm_cache.pipeline.tasks import evaluate            # store (+ scorer) -> result JSON

What every room shares sits here: items/ (the item form and its manifest), device.py (device
and precision) and scorers.py (the registry of scorers, standard library only).

    items/        ImageRef, Item, Dataset and its builder; the manifest file; opening an image
    extract/      images and captions into a store, in flat memory: the stage, feeding, cached views
    dcsm/         the maps and their CNN scorer, its checkpoint, stores read without the backbone
    train/        the training loop, batches at cache speed, the losses, validation, resuming
    tokens/       backbone names, loading, checkpoints, one token adapter per tower family
    benchmarks/   one loader per benchmark, each reading its native on-disk layout
    formats/      the user's own data: tables, img2dataset folders, webdataset shards, manifests
    tasks/        what reads stores and writes results: choice benchmarks, zero-shot, retrieval,
                  grounding, report
    paper/        the DCSM reference reproduced: its captions, text padding, scorer, table
    world/        the shapes world, its export, the tiny CLIP and its pretraining
    figures/      DCSM heatmaps, the gallery, plots, scoring one image against captions
    analysis/     representations across domains: CKA, UMAP embeddings, their statistics

Importing this package imports nothing heavy; the Snakefile reads `scorers` at no cost.
"""
