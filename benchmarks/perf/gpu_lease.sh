#!/usr/bin/env bash
# One lease of the GPU machine, started detached so that it outlives the 10-minute command limit:
#   setsid nohup bash benchmarks/perf/gpu_lease.sh [PART ...] > /root/runs/lease.log 2>&1 &
# then follow /root/runs/lease.log from later calls; `bash benchmarks/perf/gpu_lease.sh collect` packs what came out
# into $OUT (two tarballs under 16 MiB). Parts (default: expert mini profile):
#   profile   benchmarks/perf/profile_stages.py grpo, sft and demos at the learning recipe's sizes (small preset,
#             4096 envs at 128 px; SFT batch 256; demos 2080 envs)
#   mini      the mini recipe (configs/pipelines/mini.yaml) end to end, then its GRPO policy exported as bf16
#             safetensors shards (the policy the CPU job shows)
#   mini_sft  the mini recipe's demos and SFT stages only (1024 demos in one wave, 4000 SFT steps, ~6 min), the SFT
#             policy exported like mini's (how the CPU job's shown policy was made; its PROVENANCE.md)
#   mini_grpo GRPO from the shipped policy (assets/policies/box_grasp_mini, --init) with the mini recipe's GRPO
#             settings, 8 iterations (~5 min), exported like mini's to $R/box_grasp_mini_grpo (collect brings it back)
#   resets    benchmarks/perf/reset_cost.py: ms per env step at 2080 envs, 128 px, without and with 32 auto-resets per
#             step, box-mass event on and off (the demo loop's 0.72 s steps)
#   solver    the scripted expert (1024 envs, one episode each, 128 px: its success and env-steps/s) and contact
#             fidelity (benchmarks/contact/measure.py, 1024 envs) under MuJoCo-Warp solver settings: the defaults
#             (100 iterations, 50 line-search steps, serial line search), 30 iterations, 30 and parallel line search
#   expert    the scripted expert on 4096 envs, 4096 episodes, 128 px
#   expert_cost  benchmarks/perf/expert_cost.py: the expert's ms per act at 752fcca and now (no env)
#   forward   benchmarks/perf/forward_cost.py: the small preset's rollout forward (4096 rows) and update step (512 rows)
#             under each numeric path (no env)
#   dr        env-steps/s at 4096 envs, 128 px (and physics only), back to back: OpenArm-BoxGrasp, OpenArm-BoxGrasp-DR,
#             and DR without distractors (issue 24's randomization cost and where it goes); the policy image's shading
#             alone, eager and fused (benchmarks/generalization/shade_cost.py)
#   sleep     env-steps/s at 4096 envs, 128 px, random actions, back to back: OpenArm-BoxGrasp and OpenArm-BoxGrasp-DR
#             without and with Newton's body sleeping (env.sim.physics.solver_cfg.enable_sleeping)
#   sleep_expert  the scripted expert's success and rate at 1024 envs, 128 px, without and with body sleeping
#   warp_in   Warp's kernel cache carried in (runs/warp_cache/warp_cache.tgz.*, from warp_out of an earlier lease) put in
#             place: a fresh machine then skips most of the ~2.5 minutes of kernel compilation of its first env
#   warp_out  this machine's Warp kernel cache to $OUT as gzipped 15 MiB pieces (bring them to runs/warp_cache/)
#   grpo_ab   3 unprofiled GRPO iterations at the recipe's size before (eager, old log-probs recomputed) and after
#             (agent.compile, the rollout's log-probs reused)
#   grpo_cudnn  3 unprofiled GRPO iterations of the recipe (compiled, log-probs reused), the model's attention off
#             cuDNN (as now) and on torch's own order (cuDNN first, as before)
#   grpo_next 3 unprofiled GRPO iterations of the recipe with c4d980e's settings (OpenVLA's prompt template, micro-batches
#             of 512, 100 solver iterations) and as now (the instruction alone as the prompt, 1024, 30); the ViT blocks
#             are compiled in both (c4d980e compiled the decoder layers only: forward_cost's rows tell that part)
#   sft_prompt  profile_stages.py sft (compiled) with OpenVLA's prompt template and with the instruction alone
#   forward_prompt  forward_cost.py's compiled path with each prompt template
#   sft_ab    profile_stages.py sft eager and with agent.compile
#   io        benchmarks/perf/checkpoint_cost.py (the loop's wait per checkpoint, written in the loop vs in the
#             background) and demo_load.py (SFT's demo loading, old vs new loader and file layout), ~1 minute
#   profile_grpo | profile_sft | profile_demos   one of the profiles alone
# Isaac Lab etc. come staged under /root/site (the device tool); outputs stay in /root/runs between calls.
set -o pipefail
export PYTHONPATH=$PWD/exts/openarm_vla${PYTHONPATH:+:$PYTHONPATH} OMNI_KIT_ACCEPT_EULA=YES PYTHONUNBUFFERED=1
R=/root/runs
mkdir -p "$R/profile" "$R/out" "$R/dr" "$R/sleep"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(expert mini profile)
quiet() { grep --line-buffered -v "^\s*$" | grep --line-buffered -v -E "^\+|^\| |INFO\]|Warp CUDA|it/s\]|ep/s\]|step/s\]"; }
env_rates() {  # DIR FLAGS NAME:TASK:OVERRIDES ...: env-steps/s at 4096 envs, 128 px, 100 random-action steps, back to back
  local dir=$1 flags=$2; shift 2
  for v in "$@"; do
    name=${v%%:*}; rest=${v#*:}; task=${rest%%:*}; ovr=${rest#*:}
    # shellcheck disable=SC2086
    python3 scripts/benchmark.py $ovr --task "$task" --num_envs 4096 --image_size 128 --steps 100 --warmup 20 $flags \
      --device cuda:0 --json "$R/$dir/$name.json" 2>&1 | quiet | grep -E "^\[benchmark\]|Error" | sed "s/^/[$name] /"
  done
}
grpo_variants() {  # NAME:ARGS ...: 3 unprofiled GRPO iterations per variant, one process each, into $R/grpo_ab/NAME
  for v in "$@"; do
    name=${v%%:*}; args=${v#*:}
    # shellcheck disable=SC2086
    python3 benchmarks/perf/profile_stages.py grpo --plain 3 --out "$R/grpo_ab/$name" $args 2>&1 | quiet \
      | grep -E "^\[profile\]|^\[grpo\] compiled|Error|error" | sed "s/^/[$name] /"
  done
}
for part in "${parts[@]}"; do
  t0=$SECONDS
  echo "[lease] $part: start $(date +%T)"
  case $part in
    profile)
      for stage in grpo sft demos; do
        python3 benchmarks/perf/profile_stages.py "$stage" --out "$R/profile" 2>&1 | quiet | tail -40
      done ;;
    grpo_ab)
      # one GRPO iteration before / after the speed changes, same machine, same lease: 3 unprofiled iterations each
      grpo_variants "before:agent.compile=false agent.recompute_old_logprobs=true" \
                    "after:agent.compile=true agent.recompute_old_logprobs=false" ;;
    grpo_cudnn)
      # the recipe's GRPO (compiled, log-probs reused) with the model's attention kept off cuDNN (now) and on
      # torch's own order, cuDNN first (before: a plan per new row count, the in-loop forward's 2x?)
      grpo_variants "no_cudnn:" "cudnn_sdp:--cudnn_sdp" ;;
    grpo_next)
      grpo_variants "c4d980e:--prompt openvla agent.micro_batch_size=512 env.sim.physics.solver_cfg.iterations=100" "now:" ;;
    sft_prompt)
      for v in openvla instruction; do
        python3 benchmarks/perf/profile_stages.py sft --out "$R/sft_prompt/$v" --prompt $v agent.compile=true 2>&1 | quiet \
          | tail -30 | sed "s/^/[$v] /"
      done ;;
    forward_prompt)
      for v in openvla instruction; do
        python3 benchmarks/perf/forward_cost.py --only_compiled --shapes 0 --top 0 --prompt $v \
          --json "$R/forward_prompt_$v.json" 2>&1 | grep forward_cost | sed "s/^/[$v] /"
      done ;;
    sft_ab)
      for v in "before:" "compile:agent.compile=true"; do
        name=${v%%:*}; ovr=${v#*:}
        # shellcheck disable=SC2086
        python3 benchmarks/perf/profile_stages.py sft --out "$R/sft_ab/$name" $ovr 2>&1 | quiet | tail -30 | sed "s/^/[$name] /"
      done ;;
    io)
      python3 benchmarks/perf/checkpoint_cost.py --device cuda 2>&1 | grep checkpoint_cost
      python3 benchmarks/perf/demo_load.py --demos 400 2>&1 | grep demo_load ;;
    profile_grpo|profile_sft|profile_demos)
      python3 benchmarks/perf/profile_stages.py "${part#profile_}" --out "$R/profile" 2>&1 | quiet | tail -40 ;;
    mini)
      RUN=$R/mini RECIPE=mini BUDGET_S=1500 COPY_OUT=0 bash benchmarks/learning_h100/gpu_stages.sh demos sft select grpo report
      python3 scripts/export_policy.py "$R/mini/grpo/final" "$R/box_grasp_mini" --dtype bfloat16 --max_shard_mb 15 ;;
    mini_sft)
      RUN=$R/mini RECIPE=mini BUDGET_S=900 COPY_OUT=0 ARGS="sft.agent.eval_every=0 sft.agent.save_every=500" \
        bash benchmarks/learning_h100/gpu_stages.sh demos sft
      python3 scripts/export_policy.py "$R/mini/sft/final" "$R/box_grasp_mini" --dtype bfloat16 --max_shard_mb 15 ;;
    mini_grpo)
      python3 scripts/train.py --algo grpo --task OpenArm-BoxGrasp --init assets/policies/box_grasp_mini --output "$R/mini_grpo" \
        --num_envs 4096 --max_iterations 8 --resume --device cuda:0 --seed 0 env.scene.front_camera.width=64 \
        env.scene.front_camera.height=64 env.group_size=8 agent.eval_seed=10000 agent.eval_episodes=256 agent.num_groups=256 \
        agent.oversample=2.0 agent.max_rounds=2 agent.max_rollout_steps=200 agent.temperature=1.0 agent.batch_size=256 \
        agent.micro_batch_size=512 agent.lr=5e-5 agent.warmup_steps=8 agent.eval_every=4 agent.save_every=1 2>&1 \
        | quiet | grep "^\[grpo\]"
      python3 scripts/export_policy.py "$R/mini_grpo/final" "$R/box_grasp_mini_grpo" --dtype bfloat16 --max_shard_mb 15 ;;
    resets)
      python3 benchmarks/perf/reset_cost.py --num_envs 2080 --image_size 128 --device cuda:0 --resets_per_step 32 \
        --json "$R/resets.json" 2>&1 | quiet | grep reset_cost ;;
    solver)
      S=env.sim.physics.solver_cfg
      for v in "default:" "it30:$S.iterations=30" "it30_lspar:$S.iterations=30 $S.ls_parallel=true"; do
        name=${v%%:*}; ovr=${v#*:}
        # shellcheck disable=SC2086
        python3 scripts/evaluate.py --policy expert --num_envs 1024 --num_episodes 1024 --image_size 128 --device cuda:0 \
          --output "$R/solver/$name" --no_progress $ovr 2>&1 | quiet | grep "success" | sed "s/^/[$name] /"
        # shellcheck disable=SC2086
        python3 benchmarks/contact/measure.py --num_envs 1024 --device cuda --json "$R/solver/$name/contact.json" $ovr 2>&1 \
          | quiet | tail -4 | sed "s/^/[$name] /"
      done ;;
    expert_cost)
      python3 benchmarks/perf/expert_cost.py --rev 752fcca --num_envs 1024 4096 --device cuda --json "$R/expert_cost.json" 2>&1 \
        | grep expert_cost ;;
    forward)
      python3 benchmarks/perf/forward_cost.py --json "$R/forward_cost.json" 2>&1 | grep forward_cost ;;
    expert)
      python3 scripts/evaluate.py --policy expert --num_envs 4096 --num_episodes 4096 --image_size 128 --device cuda:0 \
        --output "$R/expert4096" --no_progress 2>&1 | quiet | tail -15 ;;
    dr)
      # the cost of randomization and where it goes: camera and physics-only rows of the base task, the DR task, and
      # the DR task without its distractor boxes (overrides first: --image_size takes a list)
      python3 benchmarks/generalization/shade_cost.py --json "$R/dr/shade_cost.json" 2>&1 | grep -E "^\[shade_cost\]|Error"
      env_rates dr "" "base:OpenArm-BoxGrasp:" "dr:OpenArm-BoxGrasp-DR:" \
        "dr_no_distractors:OpenArm-BoxGrasp-DR:env.variation.num_distractors=[0,0]" ;;
    sleep)
      S=env.sim.physics.solver_cfg.enable_sleeping
      env_rates sleep --no_physics_only "base:OpenArm-BoxGrasp:" "base_sleep:OpenArm-BoxGrasp:$S=true" \
        "dr:OpenArm-BoxGrasp-DR:" "dr_sleep:OpenArm-BoxGrasp-DR:$S=true" ;;
    sleep_expert)
      S=env.sim.physics.solver_cfg.enable_sleeping
      for sl in false true; do  # random actions rarely touch the box; the expert grasps it: success and rate both
        python3 scripts/evaluate.py --policy expert --num_envs 1024 --num_episodes 1024 --image_size 128 --device cuda:0 \
          --output "$R/sleep/expert_$sl" --no_progress "$S=$sl" 2>&1 | quiet | grep -E "^\[evaluate\] expert|Error" \
          | sed "s/^/[expert sleeping=$sl] /"
      done ;;
    warp_in|warp_out)
      cache=$(python3 -c "import warp; warp.init(); print(warp.config.kernel_cache_dir)" 2>/dev/null | tail -1)
      if [ "$part" = warp_in ]; then
        mkdir -p "$(dirname "$cache")" && cat runs/warp_cache/warp_cache.tgz.* | tar -xzf - -C "$(dirname "$cache")" \
          && du -sh "$cache"
      else
        tar -czf - -C "$(dirname "$cache")" "$(basename "$cache")" | split -b 15M -d -a 1 - "$OUT/warp_cache.tgz." && ls -la "$OUT"
      fi ;;
    collect)
      mkdir -p "$OUT"
      tar -czf "$OUT/results.tgz" -C "$R" profile/profile_grpo.json profile/profile_sft.json profile/profile_demos.json \
        mini/results.json mini/curve.png mini/sft_choice.json mini/stages.json mini/sft/metrics.jsonl mini/grpo/metrics.jsonl \
        mini/grpo_success.mp4 mini/grpo_failure.mp4 expert4096/results.json expert_cost.json forward_cost.json dr sleep resets.json solver lease.log \
        $(cd "$R" && ls grpo_ab/*/profile_grpo.json sft_ab/*/profile_sft.json sft_prompt/*/profile_sft.json forward_prompt_*.json 2>/dev/null) 2>/dev/null
      [ -d "$R/box_grasp_mini" ] && tar -cf "$OUT/box_grasp_mini.tar" -C "$R" box_grasp_mini
      [ -d "$R/box_grasp_mini_grpo" ] && tar -cf "$OUT/box_grasp_mini_grpo.tar" -C "$R" box_grasp_mini_grpo \
        && tar -czf "$OUT/mini_grpo.tgz" -C "$R" mini_grpo/metrics.jsonl mini_grpo/config.yaml 2>/dev/null
      ls -la "$OUT" ;;
    *) echo "[lease] unknown part $part" ;;
  esac
  echo "[lease] $part: done in $((SECONDS - t0)) s"
done
