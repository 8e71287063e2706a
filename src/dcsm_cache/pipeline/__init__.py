"""The science of dcsm-cache, in rooms by job (each subpackage re-exports its public names).

    from dcsm_cache.pipeline.extract import extract           # images, captions -> a Zarr feature store
    from dcsm_cache.pipeline.train import train               # store -> DCSM scorer checkpoint
    from dcsm_cache.pipeline.tasks import evaluate            # store (+ scorer) -> result JSON

The DCSM core sits here: items.py (the item form), extract.py and feeding.py (images into the
model in flat memory), cache.py (reading stores without the backbone), dcsm.py (maps and functional
words), scorer.py (the CNN), scorer_file.py (its checkpoint), scorers.py (the registry of scorers),
train.py, device.py (device and precision).

    tokens/       backbone names, loading, checkpoints, one token adapter per tower family
    benchmarks/   one loader per benchmark, each reading its native on-disk layout
    formats/      the user's own data: tables, img2dataset folders, webdataset shards, manifests
    tasks/        what reads stores and writes results: choice benchmarks, zero-shot, retrieval,
                  grounding, report
    paper/        the DCSM reference reproduced: its captions, text padding, scorer, table
    world/        the shapes world, its export, the tiny CLIP and its pretraining

Importing this package imports nothing heavy; the Snakefile reads `scorers` at no cost.
"""
