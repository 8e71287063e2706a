"""Datasets in the formats people already have, read into the item form like any benchmark.

    dcsm-cache items table --root data/mine --set file=data.csv        # CSV, TSV or JSONL
    dcsm-cache items webdataset --root data/cc3m-wds                   # img2dataset's tar shards

table.py (one row an item: captioned, or a choice of candidates), img2dataset.py (the `files`
folders and webdataset shards), manifest.py (a hand-written manifest, checked and fingerprinted),
shards.py (images inside tar shards, each shard read once, in order). They are registered in the
benchmark registry (`benchmarks/__init__.py`) under `table`, `img2dataset`, `webdataset`, `manifest`.
"""
