#!/usr/bin/env bash
# The GPU figures of docs/BENCHMARKS.md (issue 21, goals 4 and 5) in one run on a lent GPU machine
# (no internet; the project's pure-Python and audio-reader wheels carried in .whl/, the official AF2 src
# files and einops_exts in .official/, see bench/official_decode.py). Results land in $OUT (or ./gpu-out).
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .whl/*.whl 2>&1 | tail -n 3
export PYTHONPATH=$PWD:/tmp/site
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  nproc; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
echo "== ours: decode at AF2-3B (hf / lite / static / graph)"
timeout 200 python3 bench/decode_gpu.py --device cuda --dtype bfloat16 --tokens 32 \
  --out "$OUT/decode-gpu.json" 2>&1 | tail -n 40
echo "== official AF2 code, same GPU"
timeout 110 python3 bench/official_decode.py --official-src .official/af2_hf_src --size af2-3b --device cuda \
  --dtype bfloat16 --audios 1,8 --new-tokens 16 --repeats 2 --out "$OUT/official-gpu.json" 2>&1 | tail -n 25
echo "== SFT stage tokens/s and MFU at AF2-3B"
timeout 150 python3 bench/train_gpu.py --device cuda --size af2-3b --max-seconds 75 \
  --out "$OUT/train-gpu.json" 2>&1 | tail -n 25
