#!/usr/bin/env bash
# One sitting of a mastery run on a lent GPU machine (Isaac Lab etc. staged under /root/site by the device tool, no
# .venv), and what carries the run to the next sitting: only files of <= 16 MiB come back, 8 and 64 MiB a call.
#   bash benchmarks/mastery/gpu_sitting.sh run SEED BUDGET_S [OVERRIDE ...]
#        the mastery recipe's demos, sft, select and grpo stages for seed SEED in /root/runs/mSEED, stopped (killed:
#        every stage resumes) before BUDGET_S seconds (STAGES="grpo report test" in a later sitting); start it
#        detached and keep a call in flight
#   bash benchmarks/mastery/gpu_sitting.sh pack SEED
#        a light copy of the run directory (the chosen SFT policy as bf16 safetensors shards, the latest GRPO checkpoint
#        as a resumable bf16 export without the optimizer's moments, the metrics and configs), in one tar split into
#        15 MiB pieces under /root/runs/carry_mSEED (Warp's kernel cache: benchmarks/perf/gpu_lease.sh warp_out)
#   bash benchmarks/mastery/gpu_sitting.sh resume SEED
#        the next sitting (runs/carry/mSEED carried in): puts it in place; then `run`
#        (stages grpo, then report and test) continues the run
#   bash benchmarks/mastery/gpu_sitting.sh out SEED K
#        pieces 4K..4K+3 to $OUT (K = 0, 1, ...; the listing says how many there are)
# Here: cat the pieces in order into one tar and unpack it (runs/ is ignored by git); benchmarks/mastery/README.md
# says how the next sitting continues from it.
set -o pipefail
export PYTHONPATH=$PWD/exts/openarm_vla${PYTHONPATH:+:$PYTHONPATH} OMNI_KIT_ACCEPT_EULA=YES PYTHONUNBUFFERED=1
cmd=${1:?run, pack, resume or out}; seed=${2:?seed}
run=/root/runs/m$seed carry=/root/runs/carry_m$seed
case $cmd in
  run)
    budget=${3:?budget in seconds}; shift 3
    RUN=$run RECIPE=mastery ARGS="seed=$seed $*" BUDGET_S=$budget COPY_OUT=0 \
      bash benchmarks/learning_h100/gpu_stages.sh ${STAGES:-demos sft select grpo} ;;
  pack)
    # a light copy of the run directory: unpacked at /root/runs/mSEED on the next machine, `run` there resumes GRPO
    rm -rf "$carry" && mkdir -p "$carry/m$seed"
    sft=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$run/sft_choice.json") || exit 1
    python3 scripts/export_policy.py "$sft" "$carry/m$seed/$(realpath --relative-to="$run" "$sft")" || exit 1
    grpo=$(python3 -c "import sys; from openarm_vla.utils.run_files import checkpoint_dirs; d = checkpoint_dirs(sys.argv[1]); print(d[-1] if d else '')" "$run/grpo")
    if [ -n "$grpo" ]; then
      python3 scripts/export_policy.py --resumable "$grpo" "$carry/m$seed/grpo/checkpoints/$(basename "$grpo")" || exit 1
    fi
    for f in stages.json sft_choice.json sft/metrics.jsonl sft/config.yaml grpo/metrics.jsonl grpo/config.yaml; do
      [ -f "$run/$f" ] && { mkdir -p "$carry/m$seed/$(dirname "$f")"; cp "$run/$f" "$carry/m$seed/$f"; }
    done
    cp "/root/runs/m$seed.log" "$carry/m$seed/sitting.log" 2>/dev/null
    tar -cf - -C "$carry" "m$seed" | split -b 15M -d -a 2 - "$carry/piece."
    du -sh "$carry/m$seed"/*; ls -la "$carry"/piece.* ;;
  resume)
    # the next sitting: the carried run directory (runs/carry/mSEED here, travelling with the working tree) in place
    [ -d "$run" ] || cp -r "runs/carry/m$seed" "$run"
    ls "$run" "$run/grpo/checkpoints" ;;
  out)
    k=${3:?piece batch}
    for i in $(seq $((4 * k)) $((4 * k + 3))); do
      p=$(printf "%s/piece.%02d" "$carry" "$i"); [ -f "$p" ] && cp "$p" "$OUT/"
    done
    ls -la "$OUT" ;;
  *) echo "gpu_sitting: unknown command $cmd (run, pack, resume, out)"; exit 2 ;;
esac
