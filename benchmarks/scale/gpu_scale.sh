#!/usr/bin/env bash
# The scale-out measurements (issue 10) on a lent GPU machine with Isaac Lab staged under /root/site:
#   bash benchmarks/scale/gpu_scale.sh small1 small2 7b_lora 7b_fsdp       (each <= BUDGET_S seconds)
#   small1 / small2   small-preset GRPO, 2048 envs (256 groups x 8) per GPU, on 1 and 2 GPUs: scaling efficiency
#   7b_lora           the 7B preset (configs/train/grpo_7b.yaml), one GRPO step of 64 x 8 trajectories on one GPU: LoRA
#                     r=32, frozen base in bf16, decoder layers compiled (before the timed iteration), micro-batches
#                     of 16 without gradient checkpointing, the rollout's log-probs reused (measured 2026-12-02 as
#                     7b_lora_compile: h200/7b_lora_compile.*)
#   7b_lora_eager     the same uncompiled (agent.compile=false)
#   7b_lora_fp32base  uncompiled with the frozen base in fp32 (measured 2026-12-02: h200/7b_lora_fp32base.*)
#   7b_lora_gc        the low-memory variant: gradient checkpointing, micro-batches of 32, old log-probs recomputed
#                     (SimpleVLA-RL's choices)
#   7b_smoke          the 7B LoRA path at a tenth of the size: 8 x 8 trajectories, 60-step rollouts (does it run on
#                     CUDA, in ~2-3 minutes)
#   7b_fsdp           the step on 2 GPUs of one host, FSDP2 full fine-tune (256 envs per rank), checkpointing on
#   7b_fsdp1          one rank's share of 7b_fsdp on one GPU: the same FSDP2 code in one process (a group of one),
#                     256 envs = 32 groups x 8; everything 7b_fsdp runs per GPU but the inter-GPU traffic. Unsharded,
#                     the fp32 weights, gradients and AdamW state of all 7.5 B parameters are 121 GB, plus the
#                     rollouts' bf16 replica, 15 GB: out of memory on an H200 (measured 2026-12-03: h200/7b_fsdp1.log)
# GRPO takes one env step before its first iteration (Warp compiles the physics kernels its cache lacks there,
# printed as "[grpo] first env step"), so a single timed iteration is the steady state.
# Random-init weights (timing only): agent.keep_low=-0.01 keeps every group, so each iteration updates on all
# its trajectories. Each run's metrics.jsonl goes to $OUT/NAME.jsonl, its last iteration's numbers to $OUT/NAME.json.
# A 7B step outlasts one 10-minute device call: start it detached and follow its streamed output, e.g.
#   OUT=/root/runs/scale/out BUDGET_S=1500 setsid nohup bash benchmarks/scale/gpu_scale.sh 7b_lora > /root/runs/scale.log 2>&1 &
# The from-scratch 7B has byte-level prompts (its Llama tokenizer needs files): 385 tokens per sample instead of
# ~340 with the Llama tokenizer (~12 % more FLOPs). benchmarks/scale/model_phases.py times the model alone.
set -o pipefail
export PYTHONPATH=$PWD/exts/openarm_vla${PYTHONPATH:+:$PYTHONPATH} OMNI_KIT_ACCEPT_EULA=YES PYTHONUNBUFFERED=1
RUN=/root/runs/scale
mkdir -p "$RUN" ${OUT:+"$OUT"}
common=(--algo grpo --device cuda agent.eval_episodes=0 agent.keep_low=-0.01 agent.save_every=0 agent.max_rounds=1)
small=(--preset small --num_envs 2048 env.group_size=8 agent.max_iterations=3 agent.max_rollout_steps=300
       agent.batch_size=512 agent.micro_batch_size=512 env.scene.front_camera.width=128 env.scene.front_camera.height=128)
big=(--recipe configs/train/grpo_7b.yaml agent.max_iterations=1)
tight=PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True  # full fine-tunes fill the GPU: no room lost to fragmentation
for name in "$@"; do
  case $name in
    small1)  cmd=(python3 scripts/train.py "${common[@]}" "${small[@]}") ;;
    small2)  cmd=(python3 -m torch.distributed.run --standalone --nproc_per_node=2 scripts/train.py "${common[@]}" "${small[@]}") ;;
    7b_lora) cmd=(python3 scripts/train.py "${common[@]}" "${big[@]}" --num_envs 512) ;;
    7b_lora_eager) cmd=(python3 scripts/train.py "${common[@]}" "${big[@]}" --num_envs 512 agent.compile=false) ;;
    7b_lora_fp32base) cmd=(python3 scripts/train.py "${common[@]}" "${big[@]}" --num_envs 512 agent.compile=false
                      agent.lora.frozen_bf16=false) ;;
    7b_lora_gc) cmd=(python3 scripts/train.py "${common[@]}" "${big[@]}" --num_envs 512 agent.gradient_checkpointing=true
                agent.micro_batch_size=32 agent.recompute_old_logprobs=true) ;;
    7b_smoke) cmd=(python3 scripts/train.py "${common[@]}" "${big[@]}" --num_envs 64 agent.num_groups=8
                  agent.max_rollout_steps=60 agent.batch_size=32) ;;
    7b_fsdp) cmd=(env "$tight" python3 -m torch.distributed.run --standalone --nproc_per_node=2 scripts/train.py "${common[@]}" "${big[@]}"
                  --num_envs 256 agent.lora.enabled=false agent.parallel=fsdp agent.gradient_checkpointing=true
                  agent.micro_batch_size=32) ;;
    7b_fsdp1) cmd=(env "$tight" python3 scripts/train.py "${common[@]}" "${big[@]}" --num_envs 256 agent.lora.enabled=false
                   agent.parallel=fsdp agent.gradient_checkpointing=true agent.micro_batch_size=32) ;;
    *) echo "[gpu_scale] unknown run $name"; exit 2 ;;
  esac
  rm -rf "${RUN:?}/$name"
  df -h --output=avail "$RUN" | tail -1 | sed "s/^/[gpu_scale] disk free before $name: /"
  echo "[gpu_scale] $name: ${cmd[*]}"
  # the raw output (progress bars included) goes to $RUN/$name.raw.log, its lines without the bars and the env's
  # tables here and to $RUN/$name.log; once the last iteration's line is out (metrics.jsonl has it), the run is
  # stopped unless KEEP_WEIGHTS=1: the timing runs' random weights are not worth a 28 GB write
  (timeout -s KILL "${BUDGET_S:-560}" "${cmd[@]}" --output "$RUN/$name" 2>&1; echo "[gpu_scale] $name exited $?") \
    | tee "$RUN/$name.raw.log" | sed -u 's/\r/\n/g' \
    | grep --line-buffered -v -E "INFO\]|Warp CUDA|[0-9]+/[0-9]+ \[[0-9:]+<|^\s*$|^\+|^\|" | tee "$RUN/$name.log" &
  pipe=$!
  while kill -0 "$pipe" 2>/dev/null; do
    if [ "${KEEP_WEIGHTS:-0}" != 1 ] && grep -q -E "^\[grpo\] iteration ([0-9]+)/\1:" "$RUN/$name.log" 2>/dev/null; then
      sleep 2; echo "[gpu_scale] $name: last iteration done; stopping it before its checkpoint write"
      pkill -KILL -f -- "--output $RUN/$name" ; break
    fi
    sleep 2
  done
  wait "$pipe"
  find "$RUN/$name" -name "*.safetensors*" -delete 2>/dev/null  # the next run needs the disk
  if [ -n "${OUT:-}" ] && [ -f "$RUN/$name/metrics.jsonl" ]; then
    cp "$RUN/$name/metrics.jsonl" "$OUT/$name.jsonl"
    python3 - "$RUN/$name/metrics.jsonl" "$OUT/$name.json" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"perf/iteration_s"' in l]
last = recs[-1] if recs else {}
keys = ("perf/iteration_s", "perf/rollout_s", "perf/rollout_policy_s", "perf/logprob_s", "perf/update_s", "perf/env_steps_per_s",
        "perf/update_env_steps_per_s", "perf/peak_mem_gb", "rollout/mean_finish_step", "rollout/env_steps_total",
        "policy/trajectories", "policy/optimizer_steps")
out = {k: last.get(k) for k in keys}
if last:
    out["iteration_env_steps_per_s"] = (recs[-1]["rollout/env_steps_total"] - (recs[-2]["rollout/env_steps_total"] if len(recs) > 1 else 0)) / last["perf/iteration_s"]
print(json.dumps(out), flush=True)  # first: the log keeps it when the disk is full
json.dump(out, open(sys.argv[2], "w"), indent=1)
PY
  fi
done
nvidia-smi --query-gpu=name,memory.total --format=csv > "${OUT:-/tmp}/gpu.txt" 2>/dev/null
true
