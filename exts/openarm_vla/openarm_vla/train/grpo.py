"""GRPO of the VLA from the binary success reward, in B x G GPU-vectorized envs: one readable loop.

Per iteration (SimpleVLA-RL's recipe, shared/reference/grpo-anchors.md spec (a)):

1. Rollout rounds. Every group of G consecutive envs is reset to one shared initial state (fresh states each
   round) and acts by sampling the 256-way action tokens at temperature T; each env's first episode counts
   (a ``finished`` latch: Isaac Lab auto-resets inside ``step()``), the round ends when every env has
   finished, and finished envs are no longer forwarded. Only what the update needs is stored, on the device:
   the uint8 frame, proprio and prompt ids of each new chunk, its token ids and rollout log-probs, its start
   step, and each trajectory's finish step and reward.
2. Dynamic sampling: groups whose success rate lies strictly inside (keep_low, keep_high) are kept; rounds
   repeat until B groups are kept, at most ``max_rounds``; with fewer than ``min_groups`` the update is
   skipped (logged), surplus groups are dropped.
3. Advantages (r - mean_g) / (std_g + 1e-6) on every action token before the finish step.
4. Old log-probs recomputed under the rollout weights (or the rollout's reused), then one epoch of
   mini-batches of ``batch_size`` trajectories: token-level clipped objective (0.2 / 0.28), seq-mean-token-mean
   or token-mean aggregation, no KL, no critic, AdamW at a constant LR, gradient clipping.
5. Greedy validation on a fixed bank of held-out starts before training, every ``eval_every`` iterations
   and at the end; checkpoints every ``save_every``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from openarm_vla.perf import TimedPolicy, compile_env_step, compile_model_passes, device_sync
from openarm_vla.policies.vla import VLAEnvPolicy
from openarm_vla.rollout import first_episodes
from openarm_vla.tasks.box_grasp.scene_state import reset_groups
from openarm_vla.vla.batch import collate_chunks
from openarm_vla.vla.sampling import entropy, logprobs_of

from . import distributed
from .losses import action_token_mask, clipped_token_loss, group_advantages, keep_groups, token_weights
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

_CHUNK_KEYS = ("rgb", "input_ids", "attention_mask", "proprio", "token_idx", "logprobs")


class ChunkStore:
    """``first_episodes`` callback: keeps the chunks the policy drew this round (only envs still in their first
    episode draw any), with the env step their first action ran at."""

    def __init__(self, policy: VLAEnvPolicy):
        self.policy, self.parts = policy, []

    def __call__(self, step, active) -> None:
        c = self.policy.last["chunks"]
        if c["env_ids"].numel() == 0:
            return
        part = {k: c[k] for k in _CHUNK_KEYS if k in c}
        part["token_idx"] = part["token_idx"].to(torch.uint8)  # 256 bins fit a byte
        part["env"] = c["env_ids"]
        part["start"] = torch.full_like(c["env_ids"], step.t - 1)
        self.parts.append(part)

    def gather(self) -> dict:
        return collate_chunks(self.parts, self.policy.vla.tokenizer.pad_token_id) if self.parts else {}


def collect_round(env, policy: VLAEnvPolicy, group_size: int, max_steps: int | None) -> tuple[dict, object, float]:
    """One rollout round of all envs: (chunks keyed by env, the FirstEpisodes outcome, seconds in the policy).
    The policy's calls are timed GPU-synchronized: the rest of the round is the env and the loop."""
    obs = reset_groups(env, group_size)
    store = ChunkStore(policy)
    timed = TimedPolicy(policy, device_sync(env.device))
    out = first_episodes(env, timed, obs, on_step=store, max_steps=max_steps)
    return store.gather(), out, timed.seconds


def select_trajectories(chunks: dict, out, keep_env: torch.Tensor, traj_offset: int) -> tuple[dict, dict]:
    """The chunks and per-trajectory data of the kept envs, renumbered from ``traj_offset``."""
    envs = keep_env.nonzero().squeeze(1)
    new_id = torch.full((keep_env.numel(),), -1, dtype=torch.long, device=keep_env.device)
    new_id[envs] = torch.arange(envs.numel(), device=keep_env.device) + traj_offset
    rows = keep_env[chunks["env"]].nonzero().squeeze(1)
    kept = {k: v[rows] for k, v in chunks.items() if k != "env"}
    kept["traj"] = new_id[chunks["env"][rows]]
    traj = {"reward": out.success[envs].float(), "finish": out.finish_step[envs]}
    return kept, traj


def _schedule(num_traj: int, traj: torch.Tensor, num_minibatches: int, micro: int, generator) -> list[list[torch.Tensor]]:
    """This rank's trajectories shuffled into ``num_minibatches`` near-equal mini-batches (some may be empty on a
    rank with few), each a list of near-equal micro-batches of at most ``micro`` chunk indices (no small remainder:
    a compiled model's update keeps to the shapes it was compiled for, see ``agent.compile``)."""
    order = torch.randperm(num_traj, generator=generator, device="cpu").to(traj.device)
    out = []
    for part in torch.tensor_split(order, num_minibatches):
        member = torch.zeros(num_traj, dtype=torch.bool, device=traj.device)
        member[part] = True
        idx = member[traj].nonzero().squeeze(1)
        n_micro = -(-idx.numel() // micro)
        out.append(list(torch.tensor_split(idx, n_micro)) if n_micro else [])
    return out


def _forward_logprobs(vla, data: dict, idx: torch.Tensor, temperature: float, dtype: str, model=None):
    """Log-probs and entropies of the stored tokens of chunks ``idx`` under ``model`` (default: ``vla.model``)."""
    batch = {k: data[k][idx] for k in ("rgb", "input_ids", "attention_mask", "proprio") if k in data}
    logits = (model if model is not None else vla.model)(**vla.model_inputs(batch), dtype=dtype)
    tokens = data["token_idx"][idx].long()
    return logprobs_of(logits, tokens, temperature), entropy(logits, temperature)


def train_grpo(task: str, env_cfg, agent, output, device: str, resume: bool = False, num_envs: int | None = None) -> dict:
    """Run GRPO; returns the final validation metrics and paths."""
    from openarm_vla.eval.bank import EvalBank
    from openarm_vla.tasks.factory import make_env
    from openarm_vla.vla import VLAPolicy

    from .validation import validate

    run_dir = Path(output)
    G = agent.group_size
    if agent.aggregation not in ("seq-mean-token-mean", "token-mean"):
        raise TrainError(f"agent.aggregation={agent.aggregation!r}: expected seq-mean-token-mean or token-mean")
    if resume and not checkpoint_dirs(run_dir):
        raise TrainError(f"--resume: no checkpoint in {run_dir / 'checkpoints'} to continue from")
    d = distributed.init(device, agent.parallel)
    device = d.device
    # agent.num_groups counts the whole update (all ranks); --num_envs is one rank's envs
    if num_envs is not None:
        if num_envs % G:
            raise TrainError(f"--num_envs {num_envs} is not a multiple of agent.group_size {G} (groups never split)")
        B = max(1, round(num_envs // G / agent.oversample))
        agent.num_groups, rollout_groups = B * d.world, num_envs // G
    else:
        if agent.num_groups % d.world:
            raise TrainError(f"agent.num_groups {agent.num_groups} does not divide over {d.world} processes "
                             "(a group never spans ranks): make it a multiple of the world size")
        B = agent.num_groups // d.world
        rollout_groups = max(B, round(agent.oversample * B))
    min_groups = agent.min_groups if agent.min_groups is not None else max(1, agent.num_groups // 4)
    seed_everything(agent.seed)  # the same initial model on every rank
    cuda = str(device).startswith("cuda")
    dtype = agent.dtype if cuda else "float32"

    # ------------------------------------------------------------------ the policy to improve
    # without --init: a from-scratch model, for smoke tests and throughput only (GRPO needs groups that sometimes succeed)
    model, tok, norm_stats = build_model(agent, device)
    cfg = model.config
    distributed.broadcast_model(d, model)
    model, kind = distributed.wrap(d, model, agent.parallel, summed_gradients=True, dtype=dtype)
    # under FSDP every rank rolls out an unsharded copy, refreshed from the shards after each update
    rollout_model = distributed.plain_replica(model, device, dtype) if kind == "fsdp" else model
    opt = torch.optim.AdamW(decay_param_groups(model, agent.weight_decay), lr=agent.lr, betas=tuple(agent.betas), fused=cuda)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(agent.warmup_steps, 0))
    rank_seed = agent.seed + 7919 * d.rank  # each rank its own starts, samples and mini-batch order
    gen = torch.Generator(device=device).manual_seed(rank_seed + 1)  # action sampling
    shuffle = torch.Generator().manual_seed(rank_seed + 2)  # mini-batch order
    counters = {"env_steps": 0, "trajectories": 0, "updates": 0, "skipped": 0}
    start = 0
    env_cfg.scene.num_envs = rollout_groups * G
    env = make_env(task, cfg=env_cfg, device=device, group_size=G, seed=rank_seed)
    if agent.eval_episodes > env.num_envs:
        env.close()
        raise TrainError(f"agent.eval_episodes {agent.eval_episodes} > num_envs {env.num_envs}: the validation bank "
                         "runs in one pass (lower agent.eval_episodes or raise --num_envs)")
    first_step_s = compile_env_step(env)  # so that iteration 1's times show the steady state
    if d.main:
        print(f"[grpo] first env step {first_step_s:.1f} s (Warp compiles the physics kernels its cache lacks: "
              "a fresh machine or a new --num_envs)", flush=True)
    # rank 0 validates on the bank; the other ranks wait for it
    bank = EvalBank.build(env, agent.eval_episodes, agent.eval_seed) if agent.eval_episodes > 0 and d.main else None
    if resume:  # after the env is built: its construction draws from the RNGs restored here
        state = restore_training(run_dir, model, opt, device, gen, sched, rank=d.rank, world=d.world, kind=kind)
        shuffle.set_state(state["shuffle"][d.rank])
        counters, start = state["counters"], state["iteration"]
    if d.main:
        write_run_config(run_dir, task, env_cfg, agent, {"algo": "grpo", "device": str(device), "world_size": d.world,
                                                          "model": cfg.to_dict()})
    log = RunLogger(run_dir, {"agent": agent, "model": cfg.to_dict()}, agent.logger, agent.wandb_project,
                    resume_from=start if resume else None, enabled=d.main)
    if kind == "fsdp":
        distributed.sync_replica(model, rollout_model)
    vla = VLAPolicy(rollout_model, tok, env.num_envs, norm_stats=norm_stats, unnormalize_actions=bool(norm_stats), dtype=dtype)
    sampler = VLAEnvPolicy(vla, env.cfg.instruction, temperature=agent.temperature)
    sampler.generator = gen
    if agent.compile:  # after the env: its construction and first step draw from the RNGs, this draws nothing
        compile_s = compile_model_passes(vla, env.cfg.instruction, env.num_envs, agent.micro_batch_size, model)
        if d.main:
            print(f"[grpo] compiled the model's rollout and update passes in {compile_s:.1f} s (agent.compile)", flush=True)
    fps = round(1 / env.step_dt)
    last_eval: dict = {}
    try:
        def evaluate(iteration: int) -> dict:
            if agent.eval_episodes <= 0:
                return {}
            if bank is None:  # not rank 0
                distributed.barrier(d)
                return {}
            metrics, _, clips = validate(env, vla, bank, videos=agent.eval_videos)
            distributed.barrier(d)
            log.videos(iteration, clips, fps)
            print(f"\n[grpo] iteration {iteration}: held-out success {metrics['eval/success']:.3f} "
                  f"[{metrics['eval/ci_low']:.3f}, {metrics['eval/ci_high']:.3f}] over {metrics['eval/episodes']}", flush=True)
            return metrics

        with cuda_oom_as_error("--num_envs (agent.num_groups) or agent.micro_batch_size",
                               held=lambda: training_state_bytes([model, rollout_model], opt)):
            if start == 0 and agent.eval_episodes > 0:
                last_eval = evaluate(0)
                log.log(0, last_eval)
            from tqdm import tqdm

            bar = tqdm(range(start, agent.max_iterations), desc="grpo", unit="it", dynamic_ncols=True, initial=start,
                       total=agent.max_iterations, disable=not d.main)
            for it in bar:
                metrics = iteration_step(env, vla, sampler, model, opt, sched, agent, B, G, min_groups, dtype, shuffle,
                                         counters, it + 1, run_dir, d, kind)
                done = it + 1
                if agent.eval_every and done % agent.eval_every == 0 and done < agent.max_iterations:
                    last_eval = evaluate(done)
                    metrics.update(last_eval)
                log.log(done, metrics)
                bar.set_postfix(success=f"{metrics['rollout/success_rate']:.2f}", kept=metrics["rollout/kept_groups"],
                                eval=f"{last_eval.get('eval/success', float('nan')):.2f}")
                if d.main and "perf/iteration_s" in metrics:  # a skipped update printed its own line
                    bar.write(iteration_summary(done, agent.max_iterations, metrics))
                if (agent.save_every and done % agent.save_every == 0) or done == agent.max_iterations:
                    rngs = distributed.gather_objects(d, (rng_state(gen), shuffle.get_state()))  # every rank's
                    optim_sd = distributed.optimizer_state(kind, model, opt)
                    model_sd = distributed.full_model_state(kind, model)
                    if d.main:
                        save_training_checkpoint(run_dir, done, rollout_model, tok, norm_stats, {
                            "optimizer": optim_sd, "scheduler": sched.state_dict(), "rng": [r for r, _ in rngs],
                            "shuffle": [s for _, s in rngs],
                            "counters": dict(counters), "config": {"agent": agent.to_dict(), "model": cfg.to_dict()}},
                            agent.keep_last, model_sd)
                    optim_sd = model_sd = None
                    distributed.barrier(d)
            bar.close()
            last_eval = evaluate(agent.max_iterations)
            log.log(agent.max_iterations, {**last_eval, "rollout/env_steps_total": counters["env_steps"]})
            final = run_dir / "final"
            if d.main:  # last: DIR/final marks a finished run (it links the last checkpoint's gathered weights)
                export_final(run_dir, rollout_model, tok, norm_stats, agent.max_iterations)
            distributed.barrier(d)
    finally:
        records = log.records()
        log.close()
        env.close()
        distributed.close(d)
    if not d.main:
        return {"final": str(final)}
    plot_run(run_dir, records, f"GRPO {cfg.name}: {B} groups x {G} ({rollout_groups} per round)", "policy/loss",
             ["eval/success", "rollout/success_rate"])
    held_out = f"held-out success {last_eval['eval/success']:.3f}" if last_eval else "no validation (agent.eval_episodes=0)"
    print(f"[grpo] done: {agent.max_iterations} iterations, {counters['env_steps']} env-steps; final {final}; {held_out}",
          flush=True)
    return {"final": str(final), "env_steps": counters["env_steps"], **last_eval}


def iteration_summary(iteration: int, total: int, m: dict) -> str:
    """The console line of one iteration: headless logs (clusters, detached runs) keep it when the bar is gone."""
    return (f"[grpo] iteration {iteration}/{total}: {m['perf/iteration_s']:.1f} s (rollout {m['perf/rollout_s']:.1f} "
            f"[policy {m.get('perf/rollout_policy_s', 0.0):.1f}], "
            f"log-probs {m.get('perf/logprob_s', 0.0):.1f}, update {m['perf/update_s']:.1f}); sampled success "
            f"{m['rollout/success_rate']:.3f}, {int(m['rollout/kept_groups'])} groups kept in {m['rollout/rounds']:g} round(s), "
            f"{m['perf/env_steps_per_s'] / 1e3:.1f}k env-steps/s, approx_kl {m.get('policy/approx_kl', 0.0):.4f}, "
            f"peak {m.get('perf/peak_mem_gb', 0.0):.1f} GB")


def iteration_step(env, vla, sampler, model, opt, sched, agent, B: int, G: int, min_groups: int, dtype: str,
                   shuffle: torch.Generator, counters: dict, iteration: int, run_dir, d=None, kind: str = "single") -> dict:
    """One GRPO iteration (rollout rounds, filter, update) of this rank; returns the metrics over all ranks.

    ``vla`` rolls out (and recomputes the old log-probs) with the rollout weights; ``model`` is trained (the
    same module, or under FSDP the sharded one, whose weights are copied into ``vla.model`` afterwards). Ranks
    roll out and filter their own B groups; the update runs the same number of mini-batches on every rank (the
    global trajectory count / batch_size), each rank a share of its own trajectories, with loss weights from
    the global counts and gradients summed over the ranks: the gradient of the global mini-batch. Under FSDP
    every forward is collective, so ranks with fewer micro-batches pad with zero-weight ones."""
    d = d or distributed.Dist(device=str(env.device))
    sync = device_sync(env.device)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    # ------------------------------------------------------------------ 1-2. rollout rounds with dynamic sampling
    t0 = time.perf_counter()
    vla.model.eval()
    parts, trajs, kept_groups, rounds, steps, successes, seen, finish_sum = [], [], 0, 0, 0, 0, 0, 0
    policy_s = 0.0
    while kept_groups < B and rounds < agent.max_rounds:
        chunks, out, secs = collect_round(env, sampler, G, agent.max_rollout_steps)
        policy_s += secs
        rounds += 1
        steps += out.steps * env.num_envs
        successes += int(out.success.sum())
        seen += env.num_envs
        finish_sum += int(out.finish_step.sum())
        keep = keep_groups(out.success.float(), G, agent.keep_low, agent.keep_high)
        keep[keep.cumsum(0) > B - kept_groups] = False  # surplus groups are dropped
        if keep.any() and chunks:
            kept, traj = select_trajectories(chunks, out, keep.repeat_interleave(G), kept_groups * G)
            parts.append(kept)
            trajs.append(traj)
            kept_groups += int(keep.sum())
    sync()
    rollout_s = time.perf_counter() - t0
    counters["env_steps"] += steps
    counters["trajectories"] += seen
    metrics = {"rollout/success_rate": successes / max(seen, 1), "rollout/kept_groups": kept_groups,
               "rollout/rounds": rounds, "rollout/mean_finish_step": finish_sum / max(seen, 1),
               "rollout/env_steps_total": counters["env_steps"], "perf/rollout_s": rollout_s,
               "perf/rollout_policy_s": policy_s,
               "perf/env_steps_per_s": steps / max(rollout_s, 1e-9)}
    kept_all = int(distributed.all_sum(d, kept_groups))
    sums = ("rollout/kept_groups", "rollout/env_steps_total", "perf/env_steps_per_s", "policy/trajectories",
            "policy/chunks", "perf/update_env_steps_per_s")
    fewest = -distributed.max_over_ranks(d, -kept_groups)
    if kept_all < min_groups or (kind == "fsdp" and fewest == 0):
        counters["skipped"] += 1
        if d.main:
            why = f"need {min_groups}" if kept_all < min_groups else "a rank kept none, and FSDP needs data on every rank"
            print(f"[grpo] iteration {iteration}: {kept_all} of {B * d.world} groups had mixed outcomes after {rounds} "
                  f"round(s) ({why}): update skipped", flush=True)
        return distributed.mean_metrics(d, {**metrics, "policy/skipped": 1, "perf/peak_mem_gb": peak_memory_gb() or 0.0}, sums)

    # ------------------------------------------------------------------ 3. advantages and token masks
    cfg = vla.config
    if parts:
        data = collate_chunks(parts, vla.tokenizer.pad_token_id)
        reward = torch.cat([t["reward"] for t in trajs])
        finish = torch.cat([t["finish"] for t in trajs])
    else:  # this rank kept no group, the others did: it still joins every gradient sum
        data = {"traj": torch.zeros(0, dtype=torch.long, device=env.device), "start": torch.zeros(0, dtype=torch.long, device=env.device)}
        reward = finish = torch.zeros(0, device=env.device)
    adv_traj = group_advantages(reward, G) if reward.numel() else reward
    n_traj = reward.numel()
    mask = action_token_mask(data["start"], finish[data["traj"]].long(), cfg.chunk, cfg.action_dim)
    adv = adv_traj[data["traj"]]
    num_mb = max(1, -(-int(distributed.all_sum(d, n_traj)) // agent.batch_size))
    schedule = _schedule(n_traj, data["traj"], num_mb, agent.micro_batch_size, shuffle)

    # ------------------------------------------------------------------ 4. old log-probs, then one epoch of mini-batches
    t1 = time.perf_counter()
    if agent.recompute_old_logprobs and n_traj:
        old = torch.empty(mask.shape, dtype=torch.float32, device=mask.device)
        with torch.no_grad():
            for mb in schedule:
                for idx in mb:
                    old[idx] = _forward_logprobs(vla, data, idx, agent.temperature, dtype)[0]
    else:
        old = data.get("logprobs")
    sync()
    logprob_s = time.perf_counter() - t1
    t2 = time.perf_counter()
    model.train()
    loss_total, ent_sum, tok_sum, grad_norms = 0.0, 0.0, 0.0, []
    stat_sums = {"clip_frac_low": 0.0, "clip_frac_high": 0.0, "approx_kl": 0.0}
    first_ratio_dev = None
    for mb in schedule:
        idx_all = torch.cat(mb) if mb else torch.zeros(0, dtype=torch.long, device=mask.device)
        local = torch.unique(data["traj"][idx_all], return_inverse=True)[1]
        counts = distributed.all_sum(d, [float(local.max() + 1) if local.numel() else 0.0, float(mask[idx_all].sum())])
        weights_all = token_weights(mask[idx_all], local, agent.aggregation, n_traj=float(counts[0]), n_tokens=float(counts[1]))
        if kind == "fsdp":  # the same number of forwards everywhere: pad with one chunk at weight 0
            mb = mb + [idx_all[:0]] * (distributed.max_over_ranks(d, len(mb)) - len(mb))
        offset, mb_loss = 0, 0.0
        for idx in mb:
            w = weights_all[offset:offset + idx.numel()]
            offset += idx.numel()
            pad = idx.numel() == 0
            if pad:
                idx, w = torch.zeros(1, dtype=torch.long, device=mask.device), torch.zeros_like(mask[:1], dtype=torch.float32)
            logp, ent = _forward_logprobs(vla, data, idx, agent.temperature, dtype, model)
            loss, st = clipped_token_loss(logp, old[idx], adv[idx], w, agent.clip_low, agent.clip_high)
            check_finite(loss, iteration, run_dir)
            loss.backward()
            if pad:
                continue
            valid = mask[idx]
            n_valid = float(valid.sum())
            mb_loss += loss.item()
            ent_sum += float((ent.detach() * valid).sum())
            tok_sum += n_valid
            for k in stat_sums:
                stat_sums[k] += st[k] * n_valid
            if first_ratio_dev is None:
                first_ratio_dev = st["ratio_dev"]
        if kind != "fsdp":  # FSDP summed them in backward (its gradient divide factor is 1)
            distributed.sum_gradients(d, model)
        grad_norms.append(distributed.clip_grad_norm(model, agent.grad_clip))
        lr = opt.param_groups[0]["lr"]
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        loss_total += float(distributed.all_sum(d, mb_loss))
    sync()
    if kind == "fsdp":
        distributed.sync_replica(model, vla.model)
    update_s = time.perf_counter() - t2
    counters["updates"] += 1
    vla.model.eval()
    metrics.update({
        "policy/loss": loss_total / len(schedule), "policy/entropy": ent_sum / max(tok_sum, 1),
        "policy/approx_kl": stat_sums["approx_kl"] / max(tok_sum, 1),
        "policy/clip_frac_low": stat_sums["clip_frac_low"] / max(tok_sum, 1),
        "policy/clip_frac_high": stat_sums["clip_frac_high"] / max(tok_sum, 1),
        "policy/grad_norm": sum(grad_norms) / len(grad_norms), "policy/ratio_dev_first_minibatch": first_ratio_dev or 0.0,
        "policy/optimizer_steps": len(schedule), "policy/lr": lr, "policy/trajectories": n_traj,
        "policy/chunks": int(mask.shape[0]),
        "adv/mean": float(adv_traj.mean()) if n_traj else 0.0, "adv/std": float(adv_traj.std()) if n_traj > 1 else 0.0,
        "perf/logprob_s": logprob_s, "perf/update_s": update_s,
        "perf/update_env_steps_per_s": float(finish.sum()) / max(update_s, 1e-9),
        "perf/iteration_s": rollout_s + logprob_s + update_s, "perf/peak_mem_gb": peak_memory_gb() or 0.0,
    })
    return distributed.mean_metrics(d, metrics, sums)
