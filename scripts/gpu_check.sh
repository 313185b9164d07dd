#!/usr/bin/env bash
# The GPU verification in one command, from the repository root of a machine with CUDA:
#
#     bash scripts/gpu_check.sh
#
# 1. versions (nvidia-smi, torch, CUDA)                               -> $OUT/env.log
# 2. pytest -m gpu on the test files that hold GPU tests (capped)       -> $OUT/gpu_tests.log
# 3. fit() under torchrun with DDP over nccl, one rank per GPU:          -> $OUT/ddp_nccl.log
#    `mmcourse train 07 --profile full` for GPU_CHECK_DDP_EPOCHS (3) epochs, capped at
#    GPU_CHECK_DDP_CAP (75) s; its checkpoint and metrics JSON go to $OUT/ddp/
# 4. benchmarks/bench_gpu.py in the time that is left (capped)          -> $OUT/bench_gpu.log
#
# Everything finishes within GPU_CHECK_BUDGET seconds (default 450) of the start: the tests
# get at most GPU_CHECK_TEST_CAP (170) s, the DDP run GPU_CHECK_DDP_CAP, the benchmark the rest
# through its --deadline, and `timeout` backs them up. GPU_CHECK_DRY=1 runs the same steps on a
# CPU-only machine in a reduced form (GPU tests skip, the DDP run is 2 gloo ranks on the CPU on
# a tiny default-profile run, the benchmark runs its CPU parts on the default profile), to check
# the script itself. PYTHON picks the interpreter (default python3); OUT the log folder.
set -uo pipefail

PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_check_out}
BUDGET=${GPU_CHECK_BUDGET:-450}
TEST_CAP=${GPU_CHECK_TEST_CAP:-170}
DRY=${GPU_CHECK_DRY:-0}
DDP_CAP=${GPU_CHECK_DDP_CAP:-75}
DDP_EPOCHS=${GPU_CHECK_DDP_EPOCHS:-3}
mkdir -p "$OUT"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" MPLBACKEND=Agg PYTHONHASHSEED=0
SECONDS=0

{
  echo "== gpu_check $(date -u +%FT%TZ) dry=$DRY budget=${BUDGET}s"
  nvidia-smi || echo "nvidia-smi: not available"
  "$PY" - <<'EOF'
import importlib.util, os, sys
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, cuda available: {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print(f"GPU {torch.cuda.get_device_name()}, capability {torch.cuda.get_device_capability()}, "
          f"bf16 {torch.cuda.is_bf16_supported()}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
print(f"CPU threads {torch.get_num_threads()}, os.cpu_count {os.cpu_count()}")
for name in ("mlxtend", "numpy", "scipy", "sklearn", "matplotlib", "tqdm", "pytest", "triton"):
    spec = importlib.util.find_spec(name)
    print(f"  {name:<11} {'found at ' + str(spec.origin) if spec else 'MISSING'}")
import mmcourse
print(f"mmcourse from {mmcourse.__file__}")
EOF
} 2>&1 | tee "$OUT/env.log"

# -- 2. the GPU tests (only the files that have some: the others may import jupyter tooling) --
GPU_TEST_FILES=$(grep -l -E "pytest\.mark\.gpu|^pytestmark = pytest\.mark\.gpu" tests/test_*.py | tr '\n' ' ')
echo "== pytest -m gpu $GPU_TEST_FILES (cap ${TEST_CAP}s)" | tee "$OUT/gpu_tests.log"
# shellcheck disable=SC2086
timeout -k 10 "$TEST_CAP" "$PY" -m pytest -m gpu $GPU_TEST_FILES -q -p no:cacheprovider -p no:nbval \
  --durations=12 2>&1 | tee -a "$OUT/gpu_tests.log"
TEST_RC=${PIPESTATUS[0]}
echo "== pytest exit code $TEST_RC after ${SECONDS}s" | tee -a "$OUT/gpu_tests.log"

# -- 3. DDP over nccl: every GPU of this machine, one rank each (2 gloo ranks on the CPU if dry) --
if [ "$DRY" = "1" ]; then
  NPROC=2
  DDP_ARGS=(--profile default --epochs 1 --limit 256)
  DDP_ENV=(MMCOURSE_DEVICE=cpu)
else
  NPROC=$(nvidia-smi -L 2>/dev/null | grep -c "^GPU")
  DDP_ARGS=(--profile full --epochs "$DDP_EPOCHS")
  DDP_ENV=()
fi
{
  echo "== $(date -u +%FT%TZ) torchrun --standalone --nproc_per_node $NPROC -m mmcourse.train 07 ${DDP_ARGS[*]} (cap ${DDP_CAP}s)"
  if [ "${NPROC:-0}" -lt 1 ]; then
    echo "== no GPU listed by nvidia-smi: DDP run skipped"
  else
    env "${DDP_ENV[@]}" timeout -k 10 "$DDP_CAP" "$PY" -m torch.distributed.run --standalone \
      --nproc_per_node "$NPROC" -m mmcourse.train 07 "${DDP_ARGS[@]}" --out "$OUT/ddp" --quiet
    echo "== torchrun exit code $? after ${SECONDS}s"
    [ -f "$OUT/ddp/07.json" ] && "$PY" -c "import json, sys; m = json.load(open(sys.argv[1])); \
print({k: m[k] for k in ('world_size', 'backend', 'device', 'global_batch', 'train_seconds', 'test')}); \
[print(r) for r in m['history']['records']]" "$OUT/ddp/07.json"
  fi
} 2>&1 | tee "$OUT/ddp_nccl.log"
DDP_RC=$(grep -q "torchrun exit code 0" "$OUT/ddp_nccl.log" && echo 0 || echo 1)

# -- 4. the benchmark, in the time left ----------------------------------------------------------
LEFT=$((BUDGET - SECONDS - 15))
if [ "$DRY" = "1" ]; then
  BENCH_ARGS=(--profile default --quick --only cnn-mnist,captioner --full-budget 15)
else
  # the full-profile runs get at most 150 s and leave 90 s for the fit()-vs-bare-loop and
  # torch.compile sections after them
  BENCH_ARGS=(--profile full --cpu-steps 3 --gpu-steps 30 --repeats 3 --full-budget 150
              --reserve 90 --compile cnn-mnist,captioner)
fi
if [ "$LEFT" -lt 60 ]; then
  echo "== bench skipped: only ${LEFT}s left of the ${BUDGET}s budget" | tee "$OUT/bench_gpu.log"
  BENCH_RC=124
else
  END_AT=$(( $(date +%s) + LEFT ))
  echo "== bench_gpu.py ${BENCH_ARGS[*]} --end-at $END_AT (${LEFT}s)" | tee "$OUT/bench_gpu.log"
  timeout -k 10 $((LEFT + 20)) "$PY" -u benchmarks/bench_gpu.py "${BENCH_ARGS[@]}" --end-at "$END_AT" \
    2>&1 | grep --line-buffered -v -E "UserWarning: .*(synchroniz|deterministic)|warnings.warn" \
    | tee -a "$OUT/bench_gpu.log"
  BENCH_RC=${PIPESTATUS[0]}
fi
echo "== done in ${SECONDS}s: pytest rc=$TEST_RC, ddp rc=$DDP_RC, bench rc=$BENCH_RC; logs in $OUT" \
  | tee -a "$OUT/bench_gpu.log"
[ "$TEST_RC" = "0" ] && [ "$DDP_RC" = "0" ] && [ "$BENCH_RC" = "0" ]
