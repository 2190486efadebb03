#!/usr/bin/env bash
# Every GPU figure of the project in one run, in under 8 minutes on one CUDA GPU:
#   1. Qwen2-VL-2B-shaped embedding in bf16 (scripts/bench_embed.py --gpu): items/s and the share
#      of the card's dense bf16 peak;
#   2. DIN and DAIAN training samples/s at batch 4096, float32 and bf16 autocast
#      (scripts/bench_gpu_train.py, the demo world simulated and labelled on the spot);
#   3. faiss-gpu exact search against faiss on the CPU, when the faiss there has GPU support.
# Results go to ${OUT:-out/gpu_check}/; record them in BENCHMARKS.md with the card's name.
#   bash scripts/gpu_check.sh            (PYTHON=... to pick the interpreter; default python3)
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-out/gpu_check}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$DEST/gpu.csv"
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__)" || exit 1

step() {  # name, time limit in seconds, command...
  local name=$1 limit=$2; shift 2
  echo "== $name (at most ${limit} s)"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$DEST/$name.log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

step embed 180 "$PY" scripts/bench_embed.py --skip-text --skip-tiny --gpu --gpu-items 256
step train 240 "$PY" scripts/bench_gpu_train.py --device cuda --rows 131072 --rounds 2 \
  --cache "$DEST/world" --json "$DEST/train.json"
step faiss 60 "$PY" - <<'PY'
import time
import numpy as np
import faiss
if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
    raise SystemExit("faiss here has no GPU support: faiss-gpu search skipped")
rng = np.random.default_rng(0)
xb = rng.standard_normal((1_000_000, 384)).astype(np.float32)
xb /= np.linalg.norm(xb, axis=1, keepdims=True)
xq = xb[:10_000]
cpu = faiss.IndexFlatIP(384); cpu.add(xb)
gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, cpu)
gpu.search(xq[:100], 10)
for name, index in (("gpu", gpu), ("cpu", cpu)):
    t = time.perf_counter(); index.search(xq, 10); s = time.perf_counter() - t
    print(f"faiss {name}: {len(xq) / s:,.0f} queries/s (exact, 1M x 384, k=10)")
PY
echo "figures under $DEST"
