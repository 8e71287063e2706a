#!/usr/bin/env bash
# GPU extraction figures on a machine with CUDA (run from the repo root):
#   bash benchmarks/gpu_extract.sh      # writes $OUT/gpu_extract.log when OUT is set
set -uo pipefail
OUT=${OUT:-/tmp}
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import dcsm_cache._openclip, open_clip, zarr, torch; print('torch', torch.__version__, 'open_clip', open_clip.__version__, 'zarr', zarr.__version__)"
# ViT-B-16 (random weights, 224 px) at extraction's defaults on CUDA: bf16 autocast, batch 256, 8 decoding workers
python3 benchmarks/bench_extract.py --device cuda --arch ViT-B-16 --arch ViT-L-14 --images 1024 --size 256 --batch 256 --workers 8 2>&1 | tee $OUT/gpu_extract.log
