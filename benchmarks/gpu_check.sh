#!/usr/bin/env bash
# CUDA cross-checks and benchmarks for a GPU machine, in well under 5 minutes.
#
#   bash benchmarks/gpu_check.sh            # PYTHON=... and BIGRAM_TEST_DATA=... may override
#   DEVICE=cpu bash benchmarks/gpu_check.sh # smoke-test this script's plumbing without a GPU
#
# 1. the CUDA tests (tests/test_device.py), failing if any of them is skipped;
# 2. 3000 steps of `train` on cuda and on cpu, same seed: wall time and losses side by side;
# 3. prepare + train --data DIR on cuda (the split lives on the GPU, batches gathered there);
# 4. torchrun on the GPU(s) with nccl: `train --distributed --device cuda`; then the preemption flow
#    there: 500 steps + --resume 500 more against the 1000-step run (largest difference printed: CUDA's
#    scatter-add may sum in any order, so bit identity is promised on CPU only), and a SIGTERM to
#    torchrun mid-run (every rank's exit code, the checkpoint's step, the seconds to exit);
# 5. `bigram check` / `bigram bench` on cuda, where those commands exist.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
BIGRAM=("$PY" -m bigram)
DEV=${DEVICE:-cuda}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export BIGRAM_CACHE_DIR="$TMP/cache"

DATA=${BIGRAM_TEST_DATA:-}
for c in "$DATA" shared/data/tinyshakespeare.txt ../shared/data/tinyshakespeare.txt; do
  if [ -n "$c" ] && [ -f "$c" ]; then DATA=$c; break; fi
done
if [ -z "$DATA" ] || [ ! -f "$DATA" ]; then
  echo "Tiny Shakespeare not found: set BIGRAM_TEST_DATA=/path/to/tinyshakespeare.txt" >&2
  exit 2
fi
export BIGRAM_TEST_DATA=$DATA

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ "$DEV" = cuda ]; then
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'CUDA is not available'; print('torch', torch.__version__, torch.cuda.get_device_name(), 'GPUs:', torch.cuda.device_count())"
fi

echo "== 1. CUDA tests"
timeout 150 "$PY" -m pytest tests/test_device.py -q -rs -p no:cacheprovider | tee "$TMP/pytest.txt"
if [ "$DEV" = cuda ] && grep -q SKIPPED "$TMP/pytest.txt"; then echo "FAIL: a CUDA test was skipped on a GPU machine" >&2; exit 1; fi

echo "== 2. train 3000 steps: $DEV vs cpu (torch backend, same seed)"
for dev in "$DEV" cpu; do
  start=$(date +%s.%N)
  timeout 120 "${BIGRAM[@]}" --backend torch --device "$dev" train --data "$DATA" --steps 3000 --max-new-tokens 0 --json \
    --out "$TMP/ck-$dev" 2>"$TMP/train-$dev.err" >"$TMP/train-$dev.json"
  end=$(date +%s.%N)
  "$PY" - "$dev" "$start" "$end" "$TMP/train-$dev.json" <<'PYEOF'
import json, sys
dev, start, end, path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
r = json.load(open(path))
print(f"{dev:5s} process {end - start:6.2f} s  train loop {r['wall_s']:6.2f} s  "
      f"{r['tokens_per_s']:>12,.0f} tokens/s  train {r['train_loss']:.4f}  val {r['val_loss']:.4f}")
PYEOF
done
same_loss() {  # same batches on every device: losses agree up to float32 kernel rounding
  "$PY" - "$1" "$2" "$3" <<'PYEOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[2:])
diff = abs(a["val_loss"] - b["val_loss"])
print(f"{sys.argv[1]}: val loss {a['val_loss']:.6f} vs {b['val_loss']:.6f}, |diff| {diff:.2e}")
assert diff < 1e-3, "runs that draw the same batches disagree"
PYEOF
}
same_loss "$DEV vs cpu" "$TMP/train-$DEV.json" "$TMP/train-cpu.json"

echo "== 3. prepare + train --data DIR on $DEV"
"${BIGRAM[@]}" data prepare "$DATA" --out "$TMP/tokens"
timeout 120 "${BIGRAM[@]}" --backend torch --device "$DEV" train --data "$TMP/tokens" --steps 3000 --max-new-tokens 0 --json \
  --out "$TMP/ck-dir" 2>/dev/null >"$TMP/train-dir.json"
same_loss "prepared DIR vs text file on $DEV" "$TMP/train-dir.json" "$TMP/train-$DEV.json"

echo "== 4. torchrun: nccl on cuda (one rank per GPU), gloo on cpu"
NPROC=$("$PY" -c "import torch; print(torch.cuda.device_count() if '$DEV' == 'cuda' else 2)")
timeout 150 "$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m bigram --backend torch \
  --device "$DEV" train --distributed --data "$TMP/tokens" --steps 1000 --batch-size $((32 * NPROC)) --max-new-tokens 0 \
  --json --out "$TMP/ck-ddp"
DDP=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m bigram --backend torch --device "$DEV"
     train --distributed --data "$TMP/tokens" --batch-size $((32 * NPROC)) --max-new-tokens 0)
timeout 150 "${DDP[@]}" --steps 500 --decay-steps 1000 --out "$TMP/ck-half" 2>/dev/null
timeout 150 "${DDP[@]}" --resume "$TMP/ck-half" --steps 500 2>/dev/null
"$PY" - "$TMP/ck-ddp" "$TMP/ck-half" <<'PYEOF'
import sys
import numpy as np
from safetensors.numpy import load
d = max(float(np.abs(load(open(f"{a}/{n}", "rb").read())[k].astype(float)
                     - load(open(f"{sys.argv[2]}/{n}", "rb").read())[k].astype(float)).max())
        for a in sys.argv[1:2] for n in ("model.safetensors", "optimizer.safetensors")
        for k in load(open(f"{a}/{n}", "rb").read()))
print(f"500 steps + --resume 500 vs 1000 steps: largest difference {d:.3g}")
PYEOF
"${DDP[@]}" --steps 1000000 --save-interval 200 --out "$TMP/ck-term" >/dev/null 2>"$TMP/term.err" &
AGENT=$!
for _ in $(seq 1 1200); do [ -f "$TMP/ck-term/config.json" ] && break; sleep 0.1; done
T0=$(date +%s.%N); kill -TERM "$AGENT"; wait "$AGENT" || true; T1=$(date +%s.%N)
grep "^interrupted:" "$TMP/term.err" || echo "SIGTERM: no rank said it stopped (FAILED)"
echo "SIGTERM to torchrun's exit: $("$PY" -c "print(round($T1 - $T0, 2))") s"

echo "== 5. bigram check / bench (where they exist)"
if "${BIGRAM[@]}" check --help >/dev/null 2>&1; then
  timeout 120 "${BIGRAM[@]}" --backend torch --device "$DEV" check || echo "bigram check FAILED"
else echo "skip: no 'bigram check' command in this build"; fi
if "${BIGRAM[@]}" bench --help >/dev/null 2>&1; then
  timeout 120 "${BIGRAM[@]}" --device "$DEV" bench || echo "bigram bench FAILED"
else echo "skip: no 'bigram bench' command in this build"; fi
echo "== done"
