#!/usr/bin/env bash
# One sitting of a mastery run on a lent GPU machine (Isaac Lab etc. staged under /root/site by the device tool, no
# .venv), and what carries the run to the next sitting: only files of <= 16 MiB come back, 8 and 64 MiB a call.
#   bash benchmarks/mastery/gpu_sitting.sh run SEED BUDGET_S [OVERRIDE ...]
#        the mastery recipe's demos, sft, select and grpo stages for seed SEED in /root/runs/mSEED, stopped (killed:
#        every stage resumes) before BUDGET_S seconds; start it detached and keep a call in flight
#   bash benchmarks/mastery/gpu_sitting.sh pack SEED
#        the chosen SFT policy and the latest GRPO checkpoint as bf16 safetensors shards, the run's small files and
#        Warp's kernel cache, in one tar split into 15 MiB pieces under /root/runs/carry_mSEED
#   bash benchmarks/mastery/gpu_sitting.sh out SEED K
#        pieces 4K..4K+3 to $OUT (K = 0, 1, ...; the listing says how many there are)
# Here: cat the pieces in order into one tar and unpack it (runs/ is ignored by git); benchmarks/mastery/README.md
# says how the next sitting continues from it.
set -o pipefail
export PYTHONPATH=$PWD/exts/openarm_vla${PYTHONPATH:+:$PYTHONPATH} OMNI_KIT_ACCEPT_EULA=YES PYTHONUNBUFFERED=1
cmd=${1:?run, pack or out}; seed=${2:?seed}
run=/root/runs/m$seed carry=/root/runs/carry_m$seed
case $cmd in
  run)
    budget=${3:?budget in seconds}; shift 3
    RUN=$run RECIPE=mastery ARGS="seed=$seed $*" BUDGET_S=$budget COPY_OUT=0 \
      bash benchmarks/learning_h100/gpu_stages.sh demos sft select grpo ;;
  pack)
    rm -rf "$carry" && mkdir -p "$carry/m$seed"
    sft=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$run/sft_choice.json") || exit 1
    python3 scripts/export_policy.py "$sft" "$carry/m$seed/sft_policy" || exit 1
    grpo=$(python3 -c "import sys; from openarm_vla.utils.run_files import checkpoint_dirs; d = checkpoint_dirs(sys.argv[1]); print(d[-1] if d else '')" "$run/grpo")
    [ -n "$grpo" ] && { python3 scripts/export_policy.py "$grpo" "$carry/m$seed/grpo_$(basename "$grpo")" || exit 1; }
    for f in stages.json sft_choice.json sft/metrics.jsonl sft/config.yaml grpo/metrics.jsonl grpo/config.yaml; do
      [ -f "$run/$f" ] && { mkdir -p "$carry/m$seed/$(dirname "$f")"; cp "$run/$f" "$carry/m$seed/$f"; }
    done
    cp /root/runs/m$seed.log "$carry/m$seed/" 2>/dev/null
    warp=${WARP_CACHE_PATH:-$HOME/.cache/warp}
    [ -d "$warp" ] && tar -cf "$carry/m$seed/warp_cache.tar" -C "$(dirname "$warp")" "$(basename "$warp")"
    tar -cf - -C "$carry" "m$seed" | split -b 15M -d -a 2 - "$carry/piece."
    du -sh "$carry/m$seed"/* && ls -la "$carry"/piece.* ;;
  out)
    k=${3:?piece batch}
    for i in $(seq $((4 * k)) $((4 * k + 3))); do
      p=$(printf "%s/piece.%02d" "$carry" "$i"); [ -f "$p" ] && cp "$p" "$OUT/"
    done
    ls -la "$OUT" ;;
  *) echo "gpu_sitting: unknown command $cmd (run, pack, out)"; exit 2 ;;
esac
