#!/bin/bash
# Plant each classic bug in the NumPy reference, show that the property tests
# and `bigram check` catch it, and put the file back.
#   scripts/mutations.sh            (needs Tiny Shakespeare: BIGRAM_TEST_DATA=PATH)
# (a) repeated tokens not summed in the embedding backward (dW[idx] += dout)
# (b) AdamW without bias correction
# (c) softmax without the max shift
set -u
cd "$(dirname "$0")/.."
F=bigram/backends/numpy_backend.py
if ! git diff --quiet -- "$F"; then echo "refusing: $F has uncommitted changes" >&2; exit 2; fi
trap 'git checkout -- "$F"' EXIT
PY=${PYTHON:-python}
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}
DATA=${BIGRAM_TEST_DATA:-}
for m in a b c; do
  git checkout -- "$F"
  $PY - "$F" "$m" <<'PYEOF'
import sys
path, m = sys.argv[1:]
edits = {
    "a": [("np.add.at(dW, idx.reshape(-1), dout.reshape(-1, C))", "dW[idx.reshape(-1)] += dout.reshape(-1, C)")],
    "b": [("bias1 = 1 - c.beta1**self.t", "bias1 = 1.0"), ("bias2_sqrt = (1 - c.beta2**self.t) ** 0.5", "bias2_sqrt = 1.0")],
    "c": [("e = np.exp(logits - logits.max(axis=-1, keepdims=True))", "e = np.exp(logits)")],
}[m]
s = open(path).read()
for old, new in edits:  # every occurrence: AdamW's bias correction is in step() and step_inplace()
    assert s.count(old) >= 1, f"mutation {m}: {old!r} not found"
    s = s.replace(old, new)
open(path, "w").write(s)
print(f"=== mutation {m}: " + "; ".join(new for _, new in edits))
PYEOF
  $PY -m pytest tests/test_properties.py tests/test_oracles.py tests/test_check.py -q -p no:warnings -p no:cacheprovider 2>&1 | grep -E "^FAILED|passed|failed"
  for dt in float64 float32; do
    $PY -m bigram check --backends numpy,torch --dtype "$dt" ${DATA:+--data "$DATA"} 2>&1 | grep -E "FAIL"
    echo "bigram check --dtype $dt: exit ${PIPESTATUS[0]}"
  done
done
