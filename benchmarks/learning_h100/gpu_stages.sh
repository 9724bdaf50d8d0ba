#!/usr/bin/env bash
# Stages of configs/h100.yaml on a lent GPU machine that has no .venv (Isaac Lab etc. come staged under
# /root/site, see the device tool); outputs stay on the machine's disk in /root/runs between calls, and every
# call copies the small result files to $OUT. Stops cleanly before BUDGET_S seconds; the next call resumes.
#   bash benchmarks/learning_h100/gpu_stages.sh STAGE [STAGE ...]      (BUDGET_S=560 by default)
# RUN (output dir, /root/runs/h100), RECIPE (h100) and ARGS (recipe overrides, e.g. "sft.agent.proprio=false")
# select another run; COPY_OUT=0 leaves $OUT alone. The output streams (line-buffered), so a run started detached
# (setsid ... > LOG &) can be followed from later calls with tail.
set -o pipefail
export PYTHONPATH=$PWD/exts/openarm_vla${PYTHONPATH:+:$PYTHONPATH} OMNI_KIT_ACCEPT_EULA=YES PYTHONUNBUFFERED=1
RUN=${RUN:-/root/runs/h100}
mkdir -p "$RUN"
deadline=$((SECONDS + ${BUDGET_S:-560}))
for stage in "$@"; do
  left=$((deadline - SECONDS))
  if (( left < 30 )); then echo "[gpu_stages] no time left for $stage"; break; fi
  echo "[gpu_stages] $stage (at most ${left} s)"
  # shellcheck disable=SC2086
  timeout -s KILL "$left" python3 scripts/quickstart.py "${RECIPE:-h100}" --stage "$stage" "output=$RUN" ${ARGS:-} 2>&1 \
    | grep --line-buffered -v "^\s*$" | grep --line-buffered -v -E "^\+|^\||INFO\]|Warp CUDA|it/s\]|ep/s\]|step/s\]"
  rc=${PIPESTATUS[0]}
  if (( rc == 137 || rc == 124 )); then echo "[gpu_stages] $stage stopped at the time budget; the next call resumes it"; break; fi
  if (( rc != 0 )); then echo "[gpu_stages] $stage failed with exit $rc"; break; fi
done
if [ -n "${OUT:-}" ] && [ "${COPY_OUT:-1}" != 0 ]; then
  for f in results.json curve.png sft_choice.json stages.json grpo_success.mp4 grpo_failure.mp4; do
    [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"
  done
  [ -f "$RUN/sft/metrics.jsonl" ] && cp "$RUN/sft/metrics.jsonl" "$OUT/sft_metrics.jsonl"
  [ -f "$RUN/grpo/metrics.jsonl" ] && cp "$RUN/grpo/metrics.jsonl" "$OUT/grpo_metrics.jsonl"
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > "$OUT/gpu.txt" 2>/dev/null
  true
fi
