#!/usr/bin/env bash
# The SFT choice of configs/pipelines/h100.yaml, measured: one demo set, then several SFT runs of the recipe at once on
# one GPU (on an H200 two at once ran ~1,300 samples/s each, one alone ~2,250; three fit at ~25 GB each). Each
# run is a full pipeline directory RUN_BASE_<name> sharing the demos, so the best one continues with
# `RUN=RUN_BASE_<name> ARGS="<its overrides>" gpu_stages.sh
# sft select grpo report`. Every run is held-out-evaluated every sft.agent.eval_every steps; the per-run SFT
# metrics come back as $OUT/sft_<name>.jsonl and a one-line summary per run goes to $OUT/variants.txt.
#   bash benchmarks/learning_h100/sft_variants.sh NAME="OVERRIDES" [NAME="OVERRIDES" ...]
# e.g. proprio="" noproprio="sft.agent.proprio=false" abs="sft.agent.proprio=false sft.agent.action_frame=absolute"
# BUDGET_S (560) bounds the whole call; RUN_BASE (/root/runs/h100), RECIPE (h100) and ARGS (overrides for all).
set -o pipefail
here=$(dirname "$0")
base=${RUN_BASE:-/root/runs/h100}
start=$SECONDS
budget=${BUDGET_S:-560}
RUN=$base COPY_OUT=0 BUDGET_S=$budget bash "$here/gpu_stages.sh" demos || exit 1
[ -f "$base/demos.hdf5" ] || { echo "[sft_variants] no demos in $base"; exit 1; }
left=$((budget - (SECONDS - start)))
pids=()
for spec in "$@"; do
  name=${spec%%=*}; over=${spec#*=}
  run=${base}_$name
  mkdir -p "$run"
  ln -sf "$base/demos.hdf5" "$run/demos.hdf5"
  [ -f "$base/dataset_statistics.json" ] && ln -sf "$base/dataset_statistics.json" "$run/dataset_statistics.json"
  echo "[sft_variants] $name: ${over:-recipe defaults} -> $run (at most ${left} s)"
  RUN=$run COPY_OUT=0 BUDGET_S=$left ARGS="${ARGS:-} $over" bash "$here/gpu_stages.sh" sft > "$run.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}"
for spec in "$@"; do
  name=${spec%%=*}; run=${base}_$name
  tail -n 5 "$run.log" | sed "s/^/[$name] /"
  if [ -f "$run/sft/metrics.jsonl" ]; then
    python3 - "$name" "$run/sft/metrics.jsonl" <<'PY'
import json, sys
name, path = sys.argv[1:]
rows = [json.loads(line) for line in open(path)]
evals = [f"{r['iteration']}: {100 * r['eval/success']:.1f}%" for r in rows if "eval/success" in r]
last = [r for r in rows if "sft/loss" in r][-1:]
loss = f"loss {last[0]['sft/loss']:.3f} acc {last[0]['sft/token_acc']:.3f} at {last[0]['iteration']}" if last else "no step"
print(f"[sft_variants] {name}: {loss}; held-out {', '.join(evals) or 'none yet'}")
PY
    [ -n "${OUT:-}" ] && cp "$run/sft/metrics.jsonl" "$OUT/sft_$name.jsonl"
  fi
done | tee ${OUT:+"$OUT/variants.txt"}
true
