#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one call that fits a lent machine's few minutes: gpu_tests/,
# then bench_index, bench_training and bench_featurevis on the device. Each step has its own time
# limit (590 s in all); its output goes to $OUT/<step>.log and a benchmark's JSON (its last line) to
# $OUT/gpu_round.jsonl, one line per step. Runs from the checkout with a Python that already has
# torch, torchvision, numpy, PIL and pytest:
#   PY=python3 OUT=gpu_round bash benchmarks/gpu_round.sh        (DEVICE=cpu checks the script itself)
set -u
PY=${PY:-python3}
OUT=${OUT:-gpu_round}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}

step() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local code=$? result=null
  if [[ $code == 0 && $name == bench_* ]]; then
    result=$(tail -n 1 "$OUT/$name.log")
  fi
  echo "{\"step\": \"$name\", \"exit\": $code, \"seconds\": $((SECONDS - start)), \"result\": $result}" | tee -a "$OUT/gpu_round.jsonl"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1
"$PY" -c "import torch, torchvision; print(torch.__version__, torchvision.__version__, torch.cuda.is_available())" >> "$OUT/gpu.txt" 2>&1
step gpu_tests 150 "$PY" -m pytest -q gpu_tests
step bench_index 200 "$PY" benchmarks/bench_index.py --device "$DEVICE" --skip-memory --second-images 2048
step bench_training 120 "$PY" benchmarks/bench_training.py --device "$DEVICE" --no-gui
step bench_featurevis 120 "$PY" benchmarks/bench_featurevis.py --device "$DEVICE"
