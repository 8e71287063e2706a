#!/usr/bin/env bash
# The GPU figures in one prepared run (from the repo root, on a machine with CUDA; under 8 minutes on an H100):
#   bash benchmarks/gpu_extract.sh                       # logs and each benchmark's JSON line under $OUT
#   DEVICE=cpu SMALL=1 bash benchmarks/gpu_extract.sh    # the dry run tests/test_gpu_extract.py does on a CPU
#
# 1. extraction against the model's forward alone, ViT-B-16 and ViT-L-14 (random weights, 256 px JPEGs), with the
#    decoding workers and with JPEGs decoded on the GPU (--decode device);
# 2. the pipeline around a model that costs nothing (the ceiling after the model) against a plain write and
#    against decoding alone;
# 3. the store's writes against a plain sequential write of the same bytes to the same disk;
# 4. DCSM training from the store against the reference's recompute, both on the GPU.
# Every line a benchmark prints goes to $OUT/<name>.log; the last lines (one JSON object each) to $OUT/figures.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-gpu-figures}
mkdir -p "$OUT"
: > "$OUT/figures.jsonl"
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1
if [ -n "${SMALL:-}" ]; then  # the dry run: every command and flag, at sizes a CPU runs in seconds
    ARCHS=(--arch shapes-clip-tiny); ONE=(--arch shapes-clip-tiny); IMAGES=8; ROWS=64; BATCH=4; WORKERS=1
    ROUNDS=1; TRAIN=(--arch shapes-clip-tiny --images 8 --batch 4 --steps 3)
else
    ARCHS=(--arch ViT-B-16 --arch ViT-L-14); ONE=(--arch ViT-B-16); IMAGES=1024; ROWS=4096; BATCH=256
    WORKERS=$(($(nproc) - 1)); ROUNDS=3
    TRAIN=(--arch ViT-B-16 --images 64 --batch 16 --steps 130)
fi

run() {  # NAME COMMAND...: its output to $OUT/NAME.log and the screen, its last line to figures.jsonl
    local name=$1
    shift
    echo "== $name: $*"
    "$@" 2>&1 | tee "$OUT/$name.log"
    tail -n 1 "$OUT/$name.log" | python3 -c "import json, sys; d = json.loads(sys.stdin.read()); \
d['benchmark'] = '$name'; print(json.dumps(d))" >> "$OUT/figures.jsonl"
}

if [ "$DEVICE" != cpu ]; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
python3 -c "import dcsm_cache._openclip, open_clip, zarr, torch; print('torch', torch.__version__, \
'open_clip', open_clip.__version__, 'zarr', zarr.__version__)"
COMMON=(--device "$DEVICE" --images "$IMAGES" --size 256 --batch "$BATCH" --workers "$WORKERS")
run extract python3 benchmarks/bench_extract.py "${COMMON[@]}" "${ARCHS[@]}"
if [ "$DEVICE" != cpu ]; then  # (decode=device needs CUDA)
    run extract_device_decode python3 benchmarks/bench_extract.py "${COMMON[@]}" "${ARCHS[@]}" --decode device
fi
run null_model python3 benchmarks/bench_extract.py --null-model "${COMMON[@]}" "${ONE[@]}" --images $((4 * IMAGES)) \
    --rounds "$ROUNDS"
run store_write python3 benchmarks/bench_store.py --write --rows "$ROWS" --rounds "$ROUNDS"
run train python3 benchmarks/bench_train.py --device "$DEVICE" "${TRAIN[@]}"
echo "figures: $OUT/figures.jsonl"
