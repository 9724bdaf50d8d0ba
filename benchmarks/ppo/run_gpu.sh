#!/usr/bin/env bash
# The State task's bar on one GPU: Isaac Lab's own PPO (rsl-rl) with our registered runner config, 4096 envs,
# at most MINUTES (default 20) of wall clock (env creation and Warp's kernel compilation included), then the curve
# and, where moviepy is installed, a video of the last checkpoint. From the repo root:
#   bash benchmarks/ppo/run_gpu.sh [OUT_DIR]          (default benchmarks/ppo/gpu; MINUTES=15 for a shorter cap)
# A run longer than one sitting of the GPU machine continues in the next from the checkpoint the last one brought
# back (actor, critic, optimizer and iteration; rsl-rl writes a new run folder):
#   CHECKPOINT=benchmarks/ppo/gpu/model_N.pt bash benchmarks/ppo/run_gpu.sh OUT_DIR_2
# Each sitting records its process start and wall clock (sitting.json, in OUT_DIR and the run folder), so that
# `curve.py RUN_1 RUN_2 ...` puts every sitting on one clock: minutes since the first process started, each
# sitting's start-up (Warp's kernel compilation included) counted.
# On the GPU machine (Isaac Lab staged under /root/site, no `isaaclab` command, no moviepy: the default staging set)
# run it detached and follow train.log; the checkpoint comes back with the curve, and the video is made on any
# machine with moviepy (this repo's .venv): isaaclab play --rl_library rsl_rl --task OpenArm-BoxGrasp-State-Play
# --checkpoint OUT_DIR/model_N.pt --video --video_length 250 --device cpu
set -euo pipefail
OUT=${1:-benchmarks/ppo/gpu}
MINUTES=${MINUTES:-20}
DEVICE=${DEVICE:-cuda} NUM_ENVS=${NUM_ENVS:-4096} MAX_ITERATIONS=${MAX_ITERATIONS:-1500}  # others: a CPU smoke of this script
CHECKPOINT=${CHECKPOINT:-}
SAVE_INTERVAL=${SAVE_INTERVAL:-10}  # a sitting cut by its cap loses at most this many iterations
export PYTHONPATH=$PWD/exts/openarm_vla${PYTHONPATH:+:$PYTHONPATH} OMNI_KIT_ACCEPT_EULA=YES PYTHONUNBUFFERED=1
if [ -z "${ISAACLAB:-}" ]; then
  if command -v isaaclab > /dev/null; then ISAACLAB=isaaclab; else ISAACLAB="python3 -m isaaclab"; fi
fi
mkdir -p "$OUT"
start=$(date +%s)
set +e
# shellcheck disable=SC2086
timeout -s INT $((MINUTES * 60)) $ISAACLAB train --rl_library rsl_rl --task OpenArm-BoxGrasp-State --num_envs "$NUM_ENVS" \
    --device "$DEVICE" --max_iterations "$MAX_ITERATIONS" ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} \
    agent.save_interval="$SAVE_INTERVAL" 2>&1 | tee "$OUT/train_full.log" \
    | grep --line-buffered -E "Learning iteration|Metrics/success_rate|Mean reward|Total time" | tee "$OUT/train.log"
set -e
wall=$(( $(date +%s) - start ))
echo "[run_gpu] training stopped after $wall s (cap $MINUTES min)" | tee -a "$OUT/train.log"
run=$(ls -td logs/rsl_rl/openarm_box_grasp_ppo/*/ | head -1)
printf '{"start_epoch": %s, "wall_s": %s, "minutes_cap": %s, "num_envs": %s, "device": "%s", "checkpoint_in": "%s"}\n' \
    "$start" "$wall" "$MINUTES" "$NUM_ENVS" "$DEVICE" "$CHECKPOINT" | tee "$run/sitting.json" > "$OUT/sitting.json"
after=""  # a continued run: its curve joins the earlier sittings' (their curve.json came back beside the checkpoint)
[ -n "$CHECKPOINT" ] && [ -f "$(dirname "$CHECKPOINT")/curve.json" ] && after="$(dirname "$CHECKPOINT")/curve.json"
python3 benchmarks/ppo/curve.py "$run" --out "$OUT" ${after:+--after "$after"} | tee "$OUT/summary.txt"
ckpt=$(ls -t "$run"model_*.pt | head -1)
cp "$ckpt" "$OUT/"
if python3 -c "import moviepy.editor" 2> /dev/null; then
  # shellcheck disable=SC2086
  $ISAACLAB play --rl_library rsl_rl --task OpenArm-BoxGrasp-State-Play --checkpoint "$ckpt" --device "$DEVICE" --video \
      --video_length 250 > "$OUT/play.log" 2>&1
  cp "$(ls -t "$run"videos/play/*.mp4 | head -1)" "$OUT/play.mp4"
  echo "[run_gpu] $OUT: curve.json curve.png summary.txt play.mp4 $(basename "$ckpt")"
else
  echo "[run_gpu] $OUT: curve.json curve.png summary.txt $(basename "$ckpt") (no moviepy here: play the checkpoint" \
       "with --video where it is installed)"
fi
