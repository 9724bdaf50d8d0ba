#!/usr/bin/env bash
# The State task's bar on one GPU: Isaac Lab's own PPO (rsl-rl) with our registered runner config, 4096 envs,
# at most 20 minutes of wall clock (env creation and Warp's kernel compilation included), then the curve and a
# video of the last checkpoint. From the repo root:
#   bash benchmarks/ppo/run_gpu.sh [OUT_DIR]          (default benchmarks/ppo/gpu)
set -euo pipefail
OUT=${1:-benchmarks/ppo/gpu}
export PYTHONPATH=$PWD/exts/openarm_vla${PYTHONPATH:+:$PYTHONPATH} OMNI_KIT_ACCEPT_EULA=YES PYTHONUNBUFFERED=1
ISAACLAB=${ISAACLAB:-isaaclab}
mkdir -p "$OUT"
start=$(date +%s)
set +e
timeout -s INT 1200 "$ISAACLAB" train --rl_library rsl_rl --task OpenArm-BoxGrasp-State --num_envs 4096 --device cuda \
    --max_iterations 1500 2>&1 | tee "$OUT/train_full.log" \
    | grep --line-buffered -E "Learning iteration|Metrics/success_rate|Mean reward|Total time" | tee "$OUT/train.log"
set -e
echo "[run_gpu] training stopped after $(( $(date +%s) - start )) s" | tee -a "$OUT/train.log"
run=$(ls -td logs/rsl_rl/openarm_box_grasp_ppo/*/ | head -1)
python benchmarks/ppo/curve.py "$run" --out "$OUT" | tee "$OUT/summary.txt"
ckpt=$(ls -t "$run"model_*.pt | head -1)
"$ISAACLAB" play --rl_library rsl_rl --task OpenArm-BoxGrasp-State-Play --checkpoint "$ckpt" --device cuda --video \
    --video_length 250 > "$OUT/play.log" 2>&1
cp "$(ls -t "$run"videos/play/*.mp4 | head -1)" "$OUT/play.mp4"
cp "$ckpt" "$OUT/"
echo "[run_gpu] $OUT: curve.json curve.png summary.txt play.mp4 $(basename "$ckpt")"
