"""SFT of the VLA on demonstrations: cross-entropy on the action tokens, one readable loop (nanoGPT style).

Every step of every demo is an item: the front image (and, with proprio, the joint state) at step t, the
instruction, and the next ``chunk`` actions (padded past the episode end with its last action), expressed
in the model's action frame (absolute, or offsets from the joint state at t: ``action_frame="delta"``),
normalized with their q01/q99 over the demos (OpenVLA bounds_q99, so the 256 bins span what the demos use)
and binned into the 256-way slice. OFT parallel decoding predicts all chunk x 8 tokens in one forward. AdamW (decay on
matrices), linear warm-up then cosine or constant LR, gradient accumulation, bf16 autocast on CUDA, gradient
clipping, GPU image augmentation, gradient checkpointing. Greedy evaluation in the env on a bank
of held-out initial states every ``eval_every`` steps and at the end. The checkpoint carries the statistics,
so ``scripts/evaluate.py --policy DIR/final`` un-normalizes the actions it predicts.
"""

from __future__ import annotations

import time
from contextlib import nullcontext as _nullcontext
from pathlib import Path

import torch

from openarm_vla.action_space import DEFAULT_STATS_KEY, joint_state_to_action, normalize, to_token_frame
from openarm_vla.vla.action_tokenizer import ActionTokenizer

from . import distributed
from .augment import augment_images
from .losses import sft_token_loss
from .runtime import (
    RunLogger,
    TrainError,
    build_model,
    check_finite,
    checkpoint_dirs,
    cuda_oom_as_error,
    decay_param_groups,
    export_final,
    lr_factor,
    peak_memory_gb,
    plot_run,
    restore_training,
    rng_state,
    save_training_checkpoint,
    seed_everything,
    training_state_bytes,
    write_run_config,
)


class DemoTensors:
    """All demo steps on one device; :meth:`batch` gathers a training batch by index (no loader processes):
    the frame, the joint state in action units, and the chunk in the model's action frame (not normalized)."""

    def __init__(self, arrays: dict, chunk: int, frame: str, device):
        self.device, self.chunk, self.frame = torch.device(device), chunk, frame
        self.image = torch.from_numpy(arrays["image"]).to(self.device)
        self.actions = torch.from_numpy(arrays["actions"]).to(self.device)
        self.end = torch.from_numpy(arrays["episode_end"]).to(self.device)
        self.proprio = torch.from_numpy(arrays["proprio"]).to(self.device) if "proprio" in arrays else None
        self.instruction = arrays["instruction"]
        self.instructions = arrays["instructions"]

    def __len__(self) -> int:
        return self.image.shape[0]

    def batch(self, idx: torch.Tensor) -> dict:
        rows = idx[:, None] + torch.arange(self.chunk, device=self.device)[None]  # [B, chunk]
        rows = torch.minimum(rows, self.end[idx][:, None])  # past the episode end: its last action
        out = {"rgb": self.image[idx], "idx": idx}
        joint = joint_state_to_action(self.proprio[idx]) if self.proprio is not None else None
        out["actions"] = to_token_frame(self.actions[rows], joint, self.frame)
        if joint is not None:
            out["proprio"] = joint
        return out

    def token_frame_stats(self) -> dict:
        """q01/q99 (and mean/std/min/max) of every chunk entry in the token frame: the normalization bounds."""
        from openarm_vla.data.statistics import compute_action_stats

        values = torch.cat([self.batch(torch.arange(s, min(s + 4096, len(self)), device=self.device))["actions"].flatten(0, 1)
                            for s in range(0, len(self), 4096)])
        stats = compute_action_stats([values.cpu()])
        return {k: v for k, v in stats.items() if k not in ("num_transitions", "num_trajectories")}


def train_sft(task: str, env_cfg, agent, output, device: str, resume: bool = False, num_envs: int | None = None) -> dict:
    """Run SFT; returns the final evaluation metrics and paths."""
    from openarm_vla.data.dataset import DemoDataset
    from openarm_vla.data.hdf5_format import DemoFileError, validate_file
    from openarm_vla.data.statistics import compute_dataset_statistics
    from openarm_vla.vla import VLAPolicy

    run_dir = Path(output)
    if not agent.datasets:
        raise TrainError("--algo sft needs demonstrations: --dataset FILE.hdf5 [...] (scripts/generate_demos.py writes them)")
    if resume and not checkpoint_dirs(run_dir):
        raise TrainError(f"--resume: no checkpoint in {run_dir / 'checkpoints'} to continue from")
    d = distributed.init(device, agent.parallel)
    device = d.device
    seed_everything(agent.seed)  # the same initial model on every rank
    cuda = str(device).startswith("cuda")
    dtype = agent.dtype if cuda else "float32"

    # ------------------------------------------------------------------ data
    try:
        for path in agent.datasets:  # metadata only: a bad file is named before anything is built
            validate_file(path, required_obs=("front_rgb",), action_dim=8, allow_empty=False)
        model, tok, _ = build_model(agent, device, {"proprio": "use_proprio", "action_frame": "action_frame"})
        cfg = model.config
        needs_joint = cfg.use_proprio or cfg.action_frame == "delta"
        stats = compute_dataset_statistics(agent.datasets, proprio_key="joint_pos" if needs_joint else None,
                                           success_only=agent.success_only)
        ds = DemoDataset(agent.datasets, chunk_size=cfg.chunk, success_only=agent.success_only,
                         proprio_key="joint_pos" if needs_joint else None, action_dim=cfg.action_dim)
        t0 = time.time()
        arrays = ds.load_arrays()
    except DemoFileError as e:
        raise TrainError(str(e)) from None
    data = DemoTensors(arrays, cfg.chunk, cfg.action_frame, device)
    stats["action"] = {**data.token_frame_stats(), "mask": [True] * cfg.action_dim, "frame": cfg.action_frame}
    if d.main:
        print(f"[sft] {ds.num_demos} demos, {len(data)} steps from {len(agent.datasets)} file(s) in memory "
              f"({data.image.numel() / 2**20:.0f} MiB of images, {time.time() - t0:.1f} s); action frame {cfg.action_frame}"
              f"{f'; {d.world} processes' if d.on else ''}", flush=True)
    norm_stats = {DEFAULT_STATS_KEY: stats}
    action_tok = ActionTokenizer(tok.vocab_size, cfg.n_bins)
    vla = VLAPolicy(model, tok, num_envs=1, dtype=dtype)  # training inputs (prompts, preprocessing) only

    # ------------------------------------------------------------------ optimizer, schedule, resume
    distributed.broadcast_model(d, model)
    model, kind = distributed.wrap(d, model, agent.parallel, dtype=dtype)
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if cuda else None) if kind == "ddp" else model
    # under FSDP rank 0 evaluates an unsharded copy, refreshed from the shards when needed
    replica = distributed.plain_replica(model, device, dtype) if kind == "fsdp" and d.main else None
    plain = replica if replica is not None else model
    opt = torch.optim.AdamW(decay_param_groups(model, agent.weight_decay), lr=agent.lr, betas=tuple(agent.betas),
                            fused=cuda)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(agent.warmup_iterations, agent.max_iterations,
                                                             agent.lr_schedule, agent.min_lr / agent.lr))
    gen = torch.Generator(device=device).manual_seed(agent.seed + 7919 * d.rank)  # each rank its own batches
    start = 0
    if resume:
        start = restore_training(run_dir, model, opt, device, gen, sched, d.rank, d.world, kind)["iteration"]
    if d.main:
        write_run_config(run_dir, task, env_cfg, agent, {"algo": "sft", "device": str(device), "world_size": d.world,
                                                          "model": cfg.to_dict()})
    log = RunLogger(run_dir, {"agent": agent, "model": cfg.to_dict()}, agent.logger, agent.wandb_project,
                    resume_from=start if resume else None, enabled=d.main)

    micro = agent.micro_batch_size or agent.batch_size
    if agent.batch_size % micro:
        raise TrainError(f"agent.batch_size {agent.batch_size} is not a multiple of agent.micro_batch_size {micro}")
    accum = agent.batch_size // micro
    env, bank, eval_vla, fps = None, None, None, 50

    def evaluate(step: int) -> dict:
        """Rank 0 evaluates; the other ranks wait for it."""
        nonlocal env, bank, eval_vla, fps
        if agent.eval_episodes <= 0:
            return {}
        if kind == "fsdp":
            distributed.sync_replica(model, replica)
        if not d.main:
            distributed.barrier(d)
            return {}
        from openarm_vla.eval.bank import EvalBank
        from openarm_vla.tasks.factory import make_env

        from .validation import validate

        if env is None:  # the evaluation env is built at the first evaluation and kept (one simulation per process)
            env = make_env(task, cfg=env_cfg, num_envs=num_envs or agent.eval_num_envs, device=device, seed=agent.eval_seed)
            bank, fps = EvalBank.build(env, agent.eval_episodes, agent.eval_seed), round(1 / env.step_dt)
            eval_vla = VLAPolicy(plain, tok, env.num_envs, norm_stats=norm_stats, unnormalize_actions=True, dtype=dtype)
        metrics, _, clips = validate(env, eval_vla, bank, videos=agent.eval_videos)
        log.videos(step, clips, fps)
        print(f"\n[sft] step {step}: held-out success {metrics['eval/success']:.3f} "
              f"[{metrics['eval/ci_low']:.3f}, {metrics['eval/ci_high']:.3f}] over {metrics['eval/episodes']}", flush=True)
        distributed.barrier(d)
        return metrics

    # ------------------------------------------------------------------ the loop
    from tqdm import tqdm

    model.train()
    bar = tqdm(range(start, agent.max_iterations), desc="sft", unit="step", dynamic_ncols=True, initial=start,
               total=agent.max_iterations, disable=not d.main)
    t_last, last_eval = time.time(), {}
    try:
        with cuda_oom_as_error("agent.micro_batch_size (gradient accumulation keeps agent.batch_size) or agent.eval_num_envs",
                               held=lambda: training_state_bytes([model] + ([replica] if replica is not None else []), opt)):
            for step in bar:
                idx = torch.randint(0, len(data), (agent.batch_size,), device=device, generator=gen)
                batch = data.batch(idx)
                if agent.augment.enabled:
                    a = agent.augment
                    batch["rgb"] = augment_images(batch["rgb"], tuple(a.crop_scale), a.brightness, a.contrast, a.saturation, gen)
                targets = action_tok.actions_to_slice(normalize(batch["actions"], stats["action"]))
                ids, mask = vla.prompt_ids([data.instructions[i] for i in data.instruction[idx.cpu().numpy()]])
                loss_sum, acc_sum = 0.0, 0.0
                for k in range(accum):
                    sl = slice(k * micro, (k + 1) * micro)
                    inputs = vla.model_inputs({k: v[sl] for k, v in (("rgb", batch["rgb"]), ("input_ids", ids),
                                               ("attention_mask", mask), ("proprio", batch.get("proprio"))) if v is not None})
                    # DDP all-reduces on the last micro-batch only (FSDP reduce-scatters each: its gradients stay sharded)
                    with (net.no_sync() if kind == "ddp" and k < accum - 1 else _nullcontext()):
                        logits = net(**inputs, dtype=dtype)
                        loss, acc = sft_token_loss(logits, targets[sl])
                        check_finite(loss, step, run_dir)
                        (loss / accum).backward()
                    loss_sum += loss.item() / accum
                    acc_sum += acc.item() / accum
                grad_norm = distributed.clip_grad_norm(model, agent.grad_clip)
                opt.step()
                opt.zero_grad(set_to_none=True)
                sched.step()
                done = step + 1
                bar.set_postfix(loss=f"{loss_sum:.3f}", acc=f"{acc_sum:.2f}",
                                success=f"{last_eval.get('eval/success', float('nan')):.2f}")
                metrics = {}
                if done % agent.log_every == 0 or done == agent.max_iterations:
                    dt = time.time() - t_last
                    t_last = time.time()
                    metrics = distributed.mean_metrics(d, {
                        "sft/loss": loss_sum, "sft/token_acc": acc_sum, "sft/lr": sched.get_last_lr()[0],
                        "sft/grad_norm": grad_norm, "perf/samples_per_s": agent.batch_size * agent.log_every / dt,
                        "perf/peak_mem_gb": peak_memory_gb() or 0.0}, sums=("perf/samples_per_s",))
                if agent.eval_every and done % agent.eval_every == 0 and done < agent.max_iterations:
                    last_eval = evaluate(done)
                    metrics.update(last_eval)
                if metrics:
                    log.log(done, metrics)
                if (agent.save_every and done % agent.save_every == 0) or done == agent.max_iterations:
                    rngs = distributed.gather_objects(d, rng_state(gen))  # every rank's, in rank order
                    optim_sd = distributed.optimizer_state(kind, model, opt)
                    model_sd = distributed.full_model_state(kind, model)
                    if d.main:
                        save_training_checkpoint(run_dir, done, plain, tok, norm_stats, {
                            "optimizer": optim_sd, "scheduler": sched.state_dict(), "rng": rngs,
                            "config": {"agent": agent.to_dict(), "model": cfg.to_dict()}}, agent.keep_last, model_sd)
                    optim_sd = model_sd = None
                    distributed.barrier(d)
            bar.close()
            last_eval = evaluate(agent.max_iterations)
            if last_eval:
                log.log(agent.max_iterations, last_eval)
            final = run_dir / "final"
            if d.main:  # last: DIR/final marks a finished run (it links the last checkpoint's gathered weights)
                export_final(run_dir, plain, tok, norm_stats, agent.max_iterations)
            distributed.barrier(d)
    finally:
        bar.close()
        records = log.records()
        log.close()
        if env is not None:
            env.close()
        distributed.close(d)
    if not d.main:
        return {"final": str(final)}
    plot_run(run_dir, records, f"SFT {cfg.name} on {ds.num_demos} demos", "sft/loss", ["eval/success"])
    held_out = f"held-out success {last_eval['eval/success']:.3f}" if last_eval else "no evaluation (agent.eval_episodes=0)"
    print(f"[sft] done: {agent.max_iterations} steps; final {final}; {held_out}", flush=True)
    return {"final": str(final), **last_eval}
