#!/bin/bash
# Issue 19's work on the lent GPU machine (the `device` tool's run), prepared on the CPU to run in one go.
#
# Here, first: `bash ../shared/device/prepare-tvm.sh 24` writes the TVM install in parts .device-tvm/p1..pN and
# prints each part's size and the project tree's: each call carries the tree plus one part, at most 64 MiB,
# so pick the part size (its argument, MiB) that keeps every part under 64 - tree (24 with a ~38 MiB tree).
# Then `run` calls back to back: p1..p(N-1) with the staging command it prints, and the last one
#   bash .device-tvm/pN/install-tvm.sh && export PYTHONPATH=/opt/tvmsite:$PWD && bash benchmarks/gpu_session.sh 420
# with carry [".device-tvm/pN"] and a timeout_s of about 60 s more than the budget below.
#
# Argument: the seconds this script may take (default 420). Each step runs under a timeout taken from what
# is left, so the archive is always written. STEPS (environment variable, default "env tests throughput
# collect") picks steps, e.g. STEPS="env collect" in a session that only adds records. Logged to
# $OUT/session.log (also printed: the run's output_tail shows it):
#   env         GPU and driver (nvidia-smi), Python, torch, TVM and whether TVM sees the GPU;
#   tests       the GPU tests with CDMPP_SLOW_TESTS=1 (CUDA inference = CPU's, a tiny real CUDA tuning run,
#               the CUDA tensor intrinsics and a tensor-core build);
#   throughput  benchmarks/predict_throughput.py --device cuda (end-to-end predict, inference alone in
#               fp32 / TF32 / bf16);
#   collect     CUDA records on the H200's own target (the nvidia-h200 entry of cdmpp_tvm/device/table.py),
#               configs/workloads/dataset-cuda.yaml, fast builder, round-robin across the networks; it resumes
#               data/dataset-cuda-h200.tar.xz (earlier sessions' records, committed) and is stopped with
#               SIGTERM at the deadline (only the batch in flight is lost); then its data card, with the
#               build and run error rates.
#   search      (not in the default STEPS) bench-search on the H200 target, SEARCH_WORKLOAD (default
#               dcgan_generator), cdmpp vs xgb, 128 trials, 2 seeds, with --dlight-reference (TVM's rule-based
#               schedules as the no-search reference); it resumes benchmarks/results/search-h200-<workload>/
#               runs-partial.tar.xz when committed. With collect in STEPS too, each gets half the time left.
# Everything is packed into $OUT/gpu-run-<UTC stamp>.tar.xz: logs, the throughput figure, and the whole
# collection directory. Back here: unpack it, replace data/dataset-cuda-h200.tar.xz with the collection
# (tar -cJf data/dataset-cuda-h200.tar.xz -C <unpacked>/gpu-run-*/data dataset-cuda-h200), add the data
# card to data/README.md, commit. A step that fails is logged with its exit code and the next one runs.
set -uo pipefail
: "${OUT:?run this on the device machine (the run tool sets OUT)}"
BUDGET=${1:-420}
STEPS=${STEPS:-env tests throughput collect}
START=$(date +%s)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN=/tmp/gpu-run-$STAMP
LOG=$OUT/session.log
PY=${PY:-python3}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:-/opt/tvmsite}:$REPO
mkdir -p "$RUN/data"
cd "$REPO" || exit 2

left() { echo $((BUDGET - ($(date +%s) - START))); }
log() { echo "=== $(date -u +%T) (+$(($(date +%s) - START)) s) $*" | tee -a "$LOG"; }
wants() { [[ " $STEPS " == *" $1 "* ]]; }
# run_step NAME SECONDS CMD...: runs CMD under a timeout (SIGTERM, then SIGKILL 20 s later), output to the log.
run_step() {
  local name=$1 secs=$2; shift 2
  if [ "$secs" -lt 20 ]; then log "$name: skipped, only $secs s left"; return; fi
  log "$name: start (timeout $secs s): $*"
  timeout -s TERM -k 20 "$secs" "$@" 2>&1 | tee -a "$RUN/$name.log" | tail -n 40 | tee -a "$LOG"
  log "$name: exit ${PIPESTATUS[0]}"
}
pack() {
  cp "$LOG" "$RUN/session.log"
  tar -cJf "$OUT/gpu-run-$STAMP.tar.xz" -C /tmp "gpu-run-$STAMP" && log "packed $OUT/gpu-run-$STAMP.tar.xz ($(du -h "$OUT/gpu-run-$STAMP.tar.xz" | cut -f1))"
}
trap pack EXIT

log "gpu_session.sh: budget $BUDGET s, steps: $STEPS, repo $REPO, commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"

if wants env; then
  run_step env 60 bash -c "nvidia-smi; $PY -c \"import sys, torch, tvm; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA in torch'); print('tvm', tvm.__version__, 'cuda', tvm.cuda(0).exist)\"; $PY -m pip list 2>/dev/null | grep -i -E '^(numpy|scipy|scikit-learn|xgboost|pytest|pyyaml|tqdm|psutil|matplotlib|ninja|apache-tvm) '"
fi

if wants tests; then
  run_step tests $(( $(left) < 240 ? $(left) / 3 : 240 )) env CDMPP_SLOW_TESTS=1 $PY -m pytest -q -p no:cacheprovider \
    tests/test_tuning.py::test_gpu_inference_matches_cpu tests/test_tuning.py::test_tune_on_the_gpu_with_the_model_on_the_gpu \
    tests/test_tvm_patches.py::test_cuda_target_completes_the_partial_package_and_tensor_core_candidates_build
fi

if wants throughput; then
  run_step throughput $(( $(left) < 300 ? $(left) / 2 : 150 )) $PY benchmarks/predict_throughput.py --device cuda --out "$RUN/throughput"
fi

TARGET=$($PY -c "import json; from cdmpp_tvm.device import KNOWN_DEVICES; print(json.dumps(KNOWN_DEVICES['nvidia-h200'].target))")
if wants collect; then
  if [ -f data/dataset-cuda-h200.tar.xz ]; then
    tar -xJf data/dataset-cuda-h200.tar.xz -C "$RUN/data" && log "collect: resuming data/dataset-cuda-h200.tar.xz"
  fi
  secs=$(( $(left) - 45 )); wants search && secs=$(( secs / 2 ))
  run_step collect $secs $PY -m cdmpp_tvm.cli collect --suite dataset-cuda --target "$TARGET" \
    --builder fast --random 48 --evolutionary 32 --skip-single-program --out "$RUN/data/dataset-cuda-h200"
  run_step data-card 30 $PY -m cdmpp_tvm.cli data-card "$RUN/data/dataset-cuda-h200"
fi

if wants search; then
  WL=${SEARCH_WORKLOAD:-dcgan_generator}
  mkdir -p "$RUN/search-h200-$WL"
  if [ -f "benchmarks/results/search-h200-$WL/runs-partial.tar.xz" ]; then
    tar -xJf "benchmarks/results/search-h200-$WL/runs-partial.tar.xz" -C "$RUN/search-h200-$WL" && log "search: resuming"
  fi
  run_step search $(( $(left) - 45 )) $PY -m cdmpp_tvm.cli bench-search --workload "$WL" --models cdmpp xgb \
    --trials 128 --budgets 64 128 --seeds 0 1 --target "$TARGET" --skip-single-program --dlight-reference \
    --out "$RUN/search-h200-$WL"
fi
log "done"
