"""Where the learning pipeline's time goes: torch.profiler over one stage at the recipe's sizes, by labelled part.

    python benchmarks/perf/profile_stages.py grpo  --out DIR [--num_envs 4096 --image_size 128 --max_rollout_steps 200]
    python benchmarks/perf/profile_stages.py sft   --out DIR [--batch_size 256 --image_size 128]
    python benchmarks/perf/profile_stages.py demos --out DIR [--num_envs 2080 --image_size 128]

Each runs the stage through the project's own code (GRPO: ``make_learner`` + ``grpo_iteration``; SFT: ``sft_step`` on
random frames of the recipe's shape; demos: ``generate_demos``) with the parts wrapped in
``torch.profiler.record_function`` labels: env step, physics, render, observations, resets, policy forward,
preprocessing, sampling, the rollout's bookkeeping, old log-probs, the update's forward/backward, the optimizer.
Warm-up first (iteration 1 / the first steps are not profiled), then the profiled window. Writes DIR/profile_<stage>.json
(per label: calls, CPU ms inclusive, GPU ms of the kernels it launched; host syncs; copies) and prints a table.
A random-init model stands in for a trained one (GRPO keeps every group: ``agent.keep_low=-0.01``), so each part
runs at the recipe's shapes; GRPO runs as the recipes do (compiled layers, the rollout's log-probs reused:
``agent.compile=false agent.recompute_old_logprobs=true`` for the earlier path) and times the rollout's forwards inside
the unprofiled iterations with CUDA events; ``--plain N`` times N iterations without the profiler.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from openarm_vla.vla.config import PROMPT_TEMPLATES

SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "aten::_local_scalar_dense",
               "aten::nonzero", "aten::item")
COPY_EVENTS = ("Memcpy HtoD", "Memcpy DtoH", "Memcpy DtoD", "aten::copy_", "aten::to")


def label(obj, attr: str, name: str):
    """Wrap ``obj.attr`` (a function or bound method) in a profiler range called ``name``."""
    fn = getattr(obj, attr)

    @functools.wraps(fn)
    def wrapped(*a, **k):
        with record_function(name):
            return fn(*a, **k)

    setattr(obj, attr, wrapped)


def time_calls(obj, attr: str, calls: list) -> None:
    """Wrap ``obj.attr`` to record CUDA events around each call (with the rows of its first tensor argument):
    the call's GPU time inside the loop, without the profiler's overhead. ``calls`` gets (start, end, rows)."""
    fn = getattr(obj, attr)

    @functools.wraps(fn)
    def wrapped(*a, **k):
        if not torch.cuda.is_available():
            return fn(*a, **k)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn(*a, **k)
        end.record()
        rows = next((x.shape[0] for x in (*a, *k.values()) if isinstance(x, torch.Tensor)), 0)
        calls.append((start, end, rows))
        return out

    setattr(obj, attr, wrapped)


def event_summary(calls: list) -> dict:
    """Calls, mean rows and mean / total GPU ms of the calls :func:`time_calls` recorded."""
    if not calls:
        return {"calls": 0}
    torch.cuda.synchronize()
    ms = [s.elapsed_time(e) for s, e, _ in calls]
    return {"calls": len(ms), "mean_rows": round(sum(r for *_, r in calls) / len(ms), 1),
            "mean_ms": round(sum(ms) / len(ms), 2), "total_s": round(sum(ms) / 1e3, 2)}


def label_env(env):
    label(env, "step", "env.step")
    label(env.sim, "step", "env.physics")
    label(env.scene, "update", "env.scene_update")
    label(env.observation_manager, "compute", "env.observations")
    label(env.termination_manager, "compute", "env.terminations")
    label(env, "_reset_idx", "env.reset")
    cam = env.scene.sensors.get("front_camera") if hasattr(env.scene, "sensors") else None
    if cam is not None:
        label(cam, "_update_buffers_impl", "env.render")


def label_policy():
    from openarm_vla import rollout
    from openarm_vla.policies.vla import VLAEnvPolicy
    from openarm_vla.vla import runner
    from openarm_vla.vla.preprocess import ImagePreprocessor

    label(VLAEnvPolicy, "__call__", "policy.call")
    label(runner.VLARunner, "predict_chunk", "policy.forward_and_sample")
    label(runner, "sample_actions", "policy.sampling")
    label(ImagePreprocessor, "__call__", "policy.preprocess")
    label(rollout, "episode_records", "rollout.episode_records")


def table(prof, labels_prefix=("env.", "policy.", "rollout.", "grpo.", "sft.", "demos.", "Optimizer.step")) -> dict:
    """Per label and for the sync / copy events: calls, CPU ms (inclusive) and GPU ms (kernels under it)."""
    out = {"labels": {}, "syncs": {}, "copies": {}}
    for e in prof.key_averages():
        dev = getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0.0))
        row = {"calls": e.count, "cpu_ms": round(e.cpu_time_total / 1e3, 2), "gpu_ms": round(dev / 1e3, 2)}
        if e.key.startswith(labels_prefix):
            out["labels"][e.key] = row
        elif e.key in SYNC_EVENTS:
            out["syncs"][e.key] = row
        elif e.key.startswith(COPY_EVENTS):
            out["copies"][e.key] = row
    return out


def print_table(result: dict) -> None:
    print(f"\n{result['stage']} on {result['device']}: {result['window']}")
    print("| part | calls | CPU ms | GPU ms |\n|---|---:|---:|---:|")
    for group in ("labels", "syncs", "copies"):
        for k, r in sorted(result[group].items(), key=lambda kv: -kv[1]["cpu_ms"]):
            print(f"| {k} | {r['calls']} | {r['cpu_ms']:,.1f} | {r['gpu_ms']:,.1f} |")
    for k, v in result.get("timings", {}).items():
        print(f"{k}: {v}")


def profile_grpo(args) -> dict:
    from openarm_vla.tasks.factory import load_cfgs
    from openarm_vla.train import grpo

    overrides = [f"env.scene.front_camera.width={args.image_size}", f"env.scene.front_camera.height={args.image_size}",
                 "env.group_size=8", "agent.num_groups=256", "agent.oversample=2.0", "agent.max_rounds=1",
                 f"agent.max_rollout_steps={args.max_rollout_steps}", "agent.temperature=1.0", "agent.batch_size=256",
                 "agent.micro_batch_size=1024", "agent.lr=5e-5", "agent.eval_episodes=0", "agent.keep_low=-0.01",
                 "agent.save_every=0", f"agent.max_iterations={max(2, args.plain)}", "agent.preset=small", "agent.compile=true",
                 "agent.recompute_old_logprobs=false", *args.overrides]
    env_cfg, agent = load_cfgs("OpenArm-BoxGrasp", "grpo_cfg_entry_point", overrides=overrides)
    s = grpo.make_learner("OpenArm-BoxGrasp", env_cfg, agent, args.out / "grpo_run", args.device, num_envs=args.num_envs)
    label_env(s.env)
    label_policy()
    for fn, name in (("collect_groups", "grpo.collect_groups"), ("prepare_batch", "grpo.prepare_batch"),
                     ("update", "grpo.update"), ("_forward_logprobs", "grpo.forward_logprobs"),
                     ("collate_chunks", "grpo.collate_chunks")):
        label(grpo, fn, name)
    from openarm_vla.vla import runner

    forwards: list = []
    time_calls(runner.VLARunner, "predict_chunk", forwards)  # the rollout's forwards, GPU-timed in the loop
    keys = ("perf/rollout_s", "perf/rollout_policy_s", "perf/logprob_s", "perf/update_s", "perf/iteration_s",
            "perf/env_steps_per_s", "policy/chunks", "rollout/mean_finish_step", "perf/peak_mem_gb",
            "policy/ratio_dev_first_minibatch", "policy/approx_kl")
    if args.plain:  # timings only: N iterations, no profiler (before/after runs of a change)
        iterations = []
        try:
            for i in range(1, args.plain + 1):
                forwards.clear()
                m = grpo.grpo_iteration(s, i)
                iterations.append({**{k: m.get(k) for k in keys}, "rollout forwards (CUDA events)": event_summary(forwards)})
                print(f"[profile] {grpo.iteration_summary(i, args.plain, m)}", flush=True)
        finally:
            s.run.close()
            s.env.close()
        return {"labels": {}, "syncs": {}, "copies": {}, "window": f"{args.plain} unprofiled GRPO iterations of "
                f"{args.num_envs} envs", "timings": {"iterations": iterations, "compile": agent.compile,
                                                     "recompute_old_logprobs": agent.recompute_old_logprobs}}
    try:
        warm = grpo.grpo_iteration(s, 1)  # not profiled: the first iteration's allocations and autotuning
        in_loop = event_summary(forwards)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            m = grpo.grpo_iteration(s, 2)
            wall = time.perf_counter() - t0
    finally:
        s.run.close()
        s.env.close()
    return {**table(prof), "window": f"GRPO iteration 2 of {args.num_envs} envs, profiled wall {wall:.1f} s",
            "timings": {"unprofiled iteration 1": {k: warm.get(k) for k in keys}, "profiled iteration 2": {k: m.get(k) for k in keys},
                        "rollout forwards in the loop, iteration 1 (CUDA events)": in_loop,
                        "compile": agent.compile}}


def profile_sft(args) -> dict:
    import numpy as np

    from openarm_vla.data.demo_tensors import DemoTensors
    from openarm_vla.tasks.factory import load_cfgs
    from openarm_vla.train import sft
    from openarm_vla.train.model_init import build_model
    from openarm_vla.train.scaffold import TrainingRun
    from openarm_vla.vla import VLARunner
    from openarm_vla.vla.action_tokenizer import ActionTokenizer

    env_cfg, agent = load_cfgs("OpenArm-BoxGrasp", "sft_cfg_entry_point", overrides=[
        "agent.preset=small", f"agent.batch_size={args.batch_size}", "agent.proprio=false", "agent.action_frame=delta",
        *args.overrides])
    run = TrainingRun("sft", "OpenArm-BoxGrasp", env_cfg, agent, args.out / "sft_run", args.device)
    model, tok, _ = build_model(agent, run.device, {"proprio": "use_proprio", "action_frame": "action_frame"})
    n, rng = 20_000, np.random.default_rng(0)  # the frames' content does not change the step's cost
    arrays = {"image": rng.integers(0, 255, (n, args.image_size, args.image_size, 3), dtype=np.uint8),
              "actions": rng.uniform(-1, 1, (n, 8)).astype(np.float32), "episode_end": (np.arange(n) // 100) * 100 + 99,
              "proprio": rng.uniform(-1, 1, (n, 8)).astype(np.float32), "instruction": np.zeros(n, dtype=np.int64),
              "instructions": [env_cfg.instruction]}
    data = DemoTensors(arrays, model.config.chunk, model.config.action_frame, run.device)
    stats = {**data.token_frame_stats(), "mask": [True] * 8, "frame": model.config.action_frame}
    inputs_of = VLARunner(model, tok, num_envs=1, dtype=run.dtype)
    prompts = sft.PromptTable(inputs_of, data.instructions)
    run.wrap(model, tok, {}, 1000, agent.lr_schedule, agent.min_lr)
    run.generators = {"batch": torch.Generator(device=run.device).manual_seed(0)}
    label(sft, "sft_step", "sft.step")
    label(data, "batch", "sft.gather_batch")
    label(sft, "augment_images", "sft.augment")
    label(sft, "sft_token_loss", "sft.loss")
    label_policy()
    from openarm_vla.utils.timing import device_sync

    sync = device_sync(run.device)
    action_tok, micro = ActionTokenizer(tok.vocab_size, model.config.n_bins), agent.micro_batch_size or agent.batch_size
    model.train()
    try:
        for i in range(10):
            sft.sft_step(run, data, stats, prompts, action_tok, micro, i)
        sync()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            t0 = time.perf_counter()
            for i in range(args.steps):
                sft.sft_step(run, data, stats, prompts, action_tok, micro, i)
            sync()
            wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(args.steps):
            sft.sft_step(run, data, stats, prompts, action_tok, micro, i)
        sync()
        plain = time.perf_counter() - t0
    finally:
        run.close()
    return {**table(prof), "window": f"{args.steps} SFT steps of {args.batch_size}, profiled wall {wall:.1f} s",
            "timings": {"samples_per_s (unprofiled)": round(args.steps * args.batch_size / plain, 1),
                        "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else 0.0}}


def profile_demos(args) -> dict:
    from openarm_vla.data import generate, recorder
    from openarm_vla.policies import make_policy
    from openarm_vla.policies.scripted_expert import ScriptedPolicy
    from openarm_vla.tasks.factory import make_env

    env = make_env("OpenArm-BoxGrasp", num_envs=args.num_envs, device=args.device, image_size=args.image_size, group_size=1)
    label_env(env)
    label(ScriptedPolicy, "__call__", "demos.expert")
    label(recorder.DemoRecorder, "add", "demos.buffer")
    label(recorder.DemoRecorder, "end_step", "demos.capture_and_write")
    label(recorder.DemoRecorder, "_capture", "demos.capture_states")
    label(recorder.DemoRecorder, "write", "demos.write_episode")
    steps, window = {"n": 0}, {}
    prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                   schedule=torch.profiler.schedule(wait=args.skip_steps, warmup=2, active=args.steps, repeat=1),
                   on_trace_ready=lambda p: window.update(table(p)))
    step = env.step

    def stepped(*a, **k):  # one profiler step per env step
        out = step(*a, **k)
        steps["n"] += 1
        prof.step()
        return out

    env.step = stepped
    try:
        prof.start()
        t0 = time.perf_counter()
        r = generate.generate_demos(env, "OpenArm-BoxGrasp", make_policy("expert", env), args.out / "demos.hdf5",
                                    args.num_envs, 0, {"num_envs": args.num_envs}, store_states=False,
                                    image_compression="none", progress=False)
        wall = time.perf_counter() - t0
        prof.stop()
    finally:
        env.close()
    return {**window, "window": f"env steps {args.skip_steps + 3}-{args.skip_steps + 2 + args.steps} of "
            f"{args.num_envs} envs recording (of {r.steps}); whole generation {wall:.1f} s (profiler on)",
            "timings": {"loop_s": round(r.loop_s, 1), "parts": r.parts, "first_step_s": round(r.first_step_s, 1),
                        "write_drain_s": round(r.drain_s, 1),
                        "env_steps_per_s": round(args.num_envs * r.steps / r.loop_s, 1), "written": r.written}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("stage", choices=("grpo", "sft", "demos"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--num_envs", type=int, default=None, help="grpo: 4096, demos: 2080")
    p.add_argument("--image_size", type=int, default=128)
    p.add_argument("--max_rollout_steps", type=int, default=200)
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="profiled SFT steps / env steps")
    p.add_argument("--skip_steps", type=int, default=20, help="demos: env steps before the profiled window")
    p.add_argument("--cudnn_sdp", action="store_true",
                   help="let the model's attention take torch's own SDPA order (cuDNN first on Hopper), as before")
    p.add_argument("--prompt", choices=sorted(PROMPT_TEMPLATES), default=None,
                   help="grpo/sft from scratch: this prompt template instead of the preset's (agent.prompt_template)")
    p.add_argument("--plain", type=int, default=0, help="grpo: time this many iterations without the profiler instead")
    p.add_argument("--device", default="cuda", help="cuda (what the table is for) | cpu (to try the script)")
    p.add_argument("overrides", nargs="*", help="more agent.* / env.* overrides")
    args = p.parse_intermixed_args(argv)
    args.num_envs = args.num_envs or {"grpo": 4096, "demos": 2080}.get(args.stage)
    if args.prompt:  # an override like any other (quoted for Hydra: the template has spaces and braces)
        from openarm_vla.cli import override_literal

        args.overrides.append(f"agent.prompt_template={override_literal(PROMPT_TEMPLATES[args.prompt])}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cudnn_sdp:
        from openarm_vla.vla import model as vla_model

        vla_model.ATTENTION_BACKENDS = None
    result = {"grpo": profile_grpo, "sft": profile_sft, "demos": profile_demos}[args.stage](args)
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    result.update(stage=args.stage, device=device, command=" ".join(sys.argv), cudnn_sdp=args.cudnn_sdp,
                  prompt=args.prompt)
    (args.out / f"profile_{args.stage}.json").write_text(json.dumps(result, indent=1))
    print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
