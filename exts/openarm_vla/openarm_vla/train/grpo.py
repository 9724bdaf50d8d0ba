"""GRPO of the VLA from the binary success reward, in B x G GPU-vectorized envs: SimpleVLA-RL's recipe
(``docs/grpo.md``), one loop in the shape of rsl_rl's ``learn()``.

Per iteration, three steps over one small state (:class:`GRPOLearner`):

1. :func:`collect_groups`: rollout rounds. Every group of G consecutive envs is reset to one shared initial
   state (fresh states each round) and acts by sampling the 256-way action tokens at temperature T; each env's
   first episode counts (a ``finished`` latch: Isaac Lab auto-resets inside ``step()``), the round ends when
   every env has finished, and finished envs are no longer forwarded. Only what the update needs is stored, on
   the device: the uint8 frame, proprio and prompt ids of each new chunk, its token ids and rollout log-probs,
   its start step, and each trajectory's finish step and reward. Dynamic sampling keeps the groups whose
   success rate lies strictly inside (keep_low, keep_high); rounds repeat until B groups are kept, at most
   ``max_rounds``; surplus groups are dropped.
2. :func:`prepare_batch`: advantages (r - mean_g) / (std_g + 1e-6) on every action token before the finish
   step, the token mask, the mini-batch schedule, and the old log-probs (recomputed under the rollout weights,
   or the rollout's reused).
3. :func:`update`: one epoch of mini-batches of ``batch_size`` trajectories: the token-level clipped
   objective (0.2 / 0.28), seq-mean-token-mean or token-mean aggregation, no KL, no critic, AdamW, gradient
   clipping.

With fewer than ``min_groups`` kept groups the update is skipped (logged). Greedy validation on a fixed bank
of held-out starts before training, every ``eval_every`` iterations and at the end; checkpoints every
``save_every``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from openarm_vla.errors import TrainError
from openarm_vla.policies.vla import VLAEnvPolicy
from openarm_vla.rollout import first_episodes
from openarm_vla.tasks.box_grasp.scene_state import reset_groups
from openarm_vla.utils.timing import TimedPolicy, device_sync
from openarm_vla.vla.batch import collate_chunks
from openarm_vla.vla.sampling import entropy, logprobs_of

from .losses import action_token_mask, clipped_token_loss, group_advantages, keep_groups, token_weights
from .memory import peak_memory_gb
from .scaffold import TrainingRun

_CHUNK_KEYS = ("rgb", "input_ids", "attention_mask", "proprio", "token_idx", "logprobs")
_SUMMED = ("rollout/kept_groups", "rollout/env_steps_total", "perf/env_steps_per_s", "policy/trajectories",
           "policy/chunks", "perf/update_env_steps_per_s")
"""Metrics added up over the ranks (the others are averaged)."""


@dataclass
class GRPOLearner:
    """What the three steps of an iteration share."""

    run: TrainingRun
    env: object
    runner: object
    """The rollout model's :class:`~openarm_vla.vla.VLARunner` (under FSDP an unsharded replica)."""
    sampler: VLAEnvPolicy
    B: int
    """Groups this rank keeps per update."""
    G: int
    min_groups: int
    shuffle: torch.Generator
    """The mini-batch order."""
    sync: object = field(default=None)
    """``torch.cuda.synchronize`` on CUDA (for the phase timings), else a no-op."""
    bank: object = None
    """The held-out validation bank (rank 0's; None elsewhere or without validation)."""

    @property
    def agent(self):
        return self.run.agent


@dataclass
class Rollout:
    chunks: list[dict]
    """Per kept round: the chunks of its kept trajectories (``traj`` renumbered across rounds)."""
    reward: torch.Tensor
    finish: torch.Tensor
    """Per kept trajectory: 0/1 reward and finish step."""
    kept_groups: int
    metrics: dict


@dataclass
class Batch:
    data: dict
    """The kept chunks (frames, prompts, tokens, ``traj``, ``start``)."""
    adv: torch.Tensor
    mask: torch.Tensor
    """[chunks, chunk, action_dim]: each token's advantage, and whether it ran before its trajectory finished."""
    old: torch.Tensor | None
    schedule: list[list[torch.Tensor]]
    """This rank's mini-batches, each a list of micro-batches of chunk indices."""
    n_traj: int
    finish: torch.Tensor
    local: torch.Tensor
    """[trajectories] each trajectory's index within its mini-batch (this rank's)."""
    counts: list[tuple[float, float]]
    """Per mini-batch: its trajectories and valid tokens over all ranks (the loss weights' denominators)."""


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
    The policy's calls are timed by CUDA events (no sync a step): the rest of the round is the env and the loop."""
    obs = reset_groups(env, group_size)
    store = ChunkStore(policy)
    timed = TimedPolicy(policy, env.device)
    out = first_episodes(env, timed, obs, on_step=store, max_steps=max_steps)
    return store.gather(), out, timed.seconds


def select_trajectories(chunks: dict, keep_env: torch.Tensor, traj_offset: int) -> dict:
    """The chunks of the kept envs, their trajectories renumbered from ``traj_offset`` in env order."""
    new_id = torch.full((keep_env.numel(),), -1, dtype=torch.long, device=keep_env.device)
    new_id[keep_env] = torch.arange(int(keep_env.sum()), device=keep_env.device) + traj_offset
    rows = keep_env[chunks["env"]].nonzero().squeeze(1)
    kept = {k: v[rows] for k, v in chunks.items() if k != "env"}
    kept["traj"] = new_id[chunks["env"][rows]]
    return kept


def collect_groups(s: GRPOLearner) -> Rollout:
    """Rollout rounds with dynamic sampling until B mixed-outcome groups are kept (or ``max_rounds``)."""
    a, env = s.agent, s.env
    t0 = time.perf_counter()
    s.runner.model.eval()
    kept, rewards, finishes = [], [], []
    n_kept = rounds = steps = successes = finish_sum = 0
    policy_s = 0.0
    while n_kept < s.B and rounds < a.max_rounds:
        chunks, out, secs = collect_round(env, s.sampler, s.G, a.max_rollout_steps)
        policy_s += secs
        rounds += 1
        steps += out.steps * env.num_envs
        successes += int(out.success.sum())
        finish_sum += int(out.finish_step.sum())
        keep = keep_groups(out.success.float(), s.G, a.keep_low, a.keep_high)
        keep[keep.cumsum(0) > s.B - n_kept] = False  # surplus groups are dropped
        if keep.any() and chunks:
            keep_env = keep.repeat_interleave(s.G)
            kept.append(select_trajectories(chunks, keep_env, n_kept * s.G))
            rewards.append(out.success[keep_env].float())
            finishes.append(out.finish_step[keep_env])
            n_kept += int(keep.sum())
    s.sync()
    rollout_s = time.perf_counter() - t0
    seen = rounds * env.num_envs
    s.run.counters["env_steps"] += steps
    s.run.counters["trajectories"] += seen
    empty = torch.zeros(0, device=env.device)
    return Rollout(kept, torch.cat(rewards) if rewards else empty, torch.cat(finishes) if finishes else empty.long(),
                   n_kept, {"rollout/success_rate": successes / max(seen, 1), "rollout/kept_groups": n_kept,
                            "rollout/rounds": rounds, "rollout/mean_finish_step": finish_sum / max(seen, 1),
                            "rollout/env_steps_total": s.run.counters["env_steps"], "perf/rollout_s": rollout_s,
                            "perf/rollout_policy_s": policy_s, "perf/env_steps_per_s": steps / max(rollout_s, 1e-9)})


def _forward_logprobs(runner, data: dict, idx: torch.Tensor, temperature: float, model=None):
    """Log-probs and entropies of the stored tokens of chunks ``idx`` under ``model`` (default: the runner's)."""
    batch = {k: data[k][idx] for k in ("rgb", "input_ids", "attention_mask", "proprio") if k in data}
    logits = (model if model is not None else runner.model)(**runner.model_inputs(batch), dtype=runner.dtype)
    return logprobs_of(logits, data["token_idx"][idx].long(), temperature), entropy(logits, temperature)


def _schedule(num_traj: int, traj: torch.Tensor, num_minibatches: int, micro: int,
              generator) -> tuple[list[list[torch.Tensor]], torch.Tensor, list[int]]:
    """This rank's trajectories shuffled into ``num_minibatches`` near-equal mini-batches (some may be empty on a
    rank with few), each a list of near-equal micro-batches of at most ``micro`` chunk indices (no small remainder:
    a compiled model's update keeps to the shapes it was compiled for, see ``agent.compile``); with each
    trajectory's index within its mini-batch and each mini-batch's trajectory count (known here, so the update
    needs no host sync to weight its tokens)."""
    order = torch.randperm(num_traj, generator=generator, device="cpu").to(traj.device)
    out, local, sizes = [], torch.zeros(num_traj, dtype=torch.long, device=traj.device), []
    for part in torch.tensor_split(order, num_minibatches):
        member = torch.zeros(num_traj, dtype=torch.bool, device=traj.device)
        member[part] = True
        local[part] = torch.arange(part.numel(), device=traj.device)
        idx = member[traj].nonzero().squeeze(1)
        n_micro = -(-idx.numel() // micro)
        out.append(list(torch.tensor_split(idx, n_micro)) if n_micro else [])
        sizes.append(part.numel())
    return out, local, sizes


def prepare_batch(s: GRPOLearner, r: Rollout) -> tuple[Batch, dict]:
    """Advantages, token masks, the mini-batch schedule and the old log-probs of the kept trajectories."""
    a, cfg, dev = s.agent, s.runner.config, s.env.device
    if r.chunks:
        data = collate_chunks(r.chunks, s.runner.tokenizer.pad_token_id)
    else:  # this rank kept no group, the others did: it still joins every gradient sum
        data = {"traj": torch.zeros(0, dtype=torch.long, device=dev), "start": torch.zeros(0, dtype=torch.long, device=dev)}
    n_traj = r.reward.numel()
    adv_traj = group_advantages(r.reward, s.G) if n_traj else r.reward
    mask = action_token_mask(data["start"], r.finish[data["traj"]].long(), cfg.chunk, cfg.action_dim)
    num_mb = max(1, -(-int(s.run.d.all_sum(n_traj)) // a.batch_size))
    schedule, local, sizes = _schedule(n_traj, data["traj"], num_mb, a.micro_batch_size, s.shuffle)
    tokens = [mask[torch.cat(mb)].sum() if mb else mask.new_zeros((), dtype=torch.long) for mb in schedule]
    totals = s.run.d.all_sum([float(n) for n in sizes] + torch.stack(tokens).tolist())  # one read for every mini-batch
    counts = list(zip(totals[:len(sizes)].tolist(), totals[len(sizes):].tolist()))
    t0 = time.perf_counter()
    old = data.get("logprobs")
    if a.recompute_old_logprobs and n_traj:
        old = torch.empty(mask.shape, dtype=torch.float32, device=dev)
        with torch.no_grad():
            for idx in (i for mb in schedule for i in mb):
                old[idx] = _forward_logprobs(s.runner, data, idx, a.temperature)[0]
    s.sync()
    metrics = {"adv/mean": float(adv_traj.mean()) if n_traj else 0.0,
               "adv/std": float(adv_traj.std()) if n_traj > 1 else 0.0, "perf/logprob_s": time.perf_counter() - t0}
    return Batch(data, adv_traj[data["traj"]], mask, old, schedule, n_traj, r.finish, local, counts), metrics


def update(s: GRPOLearner, b: Batch, iteration: int) -> dict:
    """One epoch over the mini-batches: the clipped token objective, one optimizer step per mini-batch.

    Every rank runs the same number of mini-batches (the global trajectory count / batch_size), each a share of
    its own trajectories, with loss weights from the global counts and gradients summed over the ranks: the
    gradient of the global mini-batch. Under FSDP a rank with fewer micro-batches pads with zero-weight ones."""
    a, run, par = s.agent, s.run, s.run.par
    t0 = time.perf_counter()
    par.module.train()
    dev = b.mask.device
    # the statistics stay on the device until the end: a host read in the micro-batch loop would stall the queue
    sums = {k: torch.zeros((), device=dev) for k in ("entropy", "tokens", "clip_frac_low", "clip_frac_high", "approx_kl")}
    losses, grad_norms, first_ratio_dev, lr = [], [], None, run.opt.param_groups[0]["lr"]
    for mb, (n_traj, n_tokens) in zip(b.schedule, b.counts):
        idx_all = torch.cat(mb) if mb else torch.zeros(0, dtype=torch.long, device=dev)
        local = b.local[b.data["traj"][idx_all]]
        weights = token_weights(b.mask[idx_all], local, a.aggregation, n_traj=n_traj, n_tokens=n_tokens)
        mb = mb + [None] * (par.forwards(len(mb)) - len(mb))
        offset, mb_loss = 0, torch.zeros((), device=dev)
        lr = run.opt.param_groups[0]["lr"]
        for idx in mb:
            pad = idx is None or idx.numel() == 0
            if pad:  # a zero-weight forward: FSDP's collectives need every rank in every forward
                idx, w = torch.zeros(1, dtype=torch.long, device=dev), torch.zeros_like(b.mask[:1], dtype=torch.float32)
            else:
                w, offset = weights[offset:offset + idx.numel()], offset + idx.numel()
            logp, ent = _forward_logprobs(s.runner, b.data, idx, a.temperature, par.module)
            loss, st = clipped_token_loss(logp, b.old[idx], b.adv[idx], w, a.clip_low, a.clip_high)
            loss.backward()
            mb_loss = mb_loss + loss.detach()
            if pad:
                continue
            valid = b.mask[idx]
            n_valid = valid.sum()
            sums["entropy"] += (ent.detach() * valid).sum()
            sums["tokens"] += n_valid
            for k in ("clip_frac_low", "clip_frac_high", "approx_kl"):
                sums[k] += st[k] * n_valid
            first_ratio_dev = st["ratio_dev"] if first_ratio_dev is None else first_ratio_dev
        run.check_finite(mb_loss, iteration)  # before the step: a non-finite loss never reaches the weights
        grad_norms.append(run.optimizer_step())
        losses.append(run.d.all_sum(mb_loss))
    s.sync()
    par.sync_replica()  # the rollouts' unsharded copy takes the new weights (FSDP)
    update_s = time.perf_counter() - t0
    s.runner.model.eval()
    sums = {k: float(v) for k, v in sums.items()}
    tok = max(sums["tokens"], 1)
    return {"policy/loss": float(sum(losses)) / len(b.schedule), "policy/entropy": sums["entropy"] / tok,
            **{f"policy/{k}": sums[k] / tok for k in ("approx_kl", "clip_frac_low", "clip_frac_high")},
            "policy/grad_norm": float(sum(grad_norms)) / len(grad_norms),
            "policy/ratio_dev_first_minibatch": float(first_ratio_dev) if first_ratio_dev is not None else 0.0,
            "policy/optimizer_steps": len(b.schedule), "policy/lr": lr, "policy/trajectories": b.n_traj,
            "policy/chunks": int(b.mask.shape[0]), "perf/update_s": update_s,
            "perf/update_env_steps_per_s": float(b.finish.sum()) / max(update_s, 1e-9)}


def grpo_iteration(s: GRPOLearner, iteration: int) -> dict:
    """One iteration of this rank (collect, prepare, update); returns the metrics over all ranks."""
    d = s.run.d
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    rollout = collect_groups(s)
    metrics = rollout.metrics
    kept_all = int(d.all_sum(rollout.kept_groups))
    fewest = -d.max_over_ranks(-rollout.kept_groups)
    if kept_all < s.min_groups or (s.run.par.kind == "fsdp" and fewest == 0):
        s.run.counters["skipped"] += 1
        why = f"need {s.min_groups}" if kept_all < s.min_groups else "a rank kept none, and FSDP needs data on every rank"
        s.run.say(f"iteration {iteration}: {kept_all} of {s.B * d.world} groups had mixed outcomes after "
                  f"{metrics['rollout/rounds']} round(s) ({why}): update skipped")
        return d.mean_metrics({**metrics, "policy/skipped": 1, "perf/peak_mem_gb": peak_memory_gb()}, _SUMMED)
    batch, prep = prepare_batch(s, rollout)
    metrics.update(prep)
    metrics.update(update(s, batch, iteration))
    s.run.counters["updates"] += 1
    metrics["perf/iteration_s"] = metrics["perf/rollout_s"] + metrics["perf/logprob_s"] + metrics["perf/update_s"]
    metrics["perf/peak_mem_gb"] = peak_memory_gb()
    return d.mean_metrics(metrics, _SUMMED)


def iteration_summary(iteration: int, total: int, m: dict) -> str:
    """The console line of one iteration: headless logs (clusters, detached runs) keep it when the bar is gone."""
    return (f"[grpo] iteration {iteration}/{total}: {m['perf/iteration_s']:.1f} s (rollout {m['perf/rollout_s']:.1f} "
            f"[policy {m.get('perf/rollout_policy_s', 0.0):.1f}], "
            f"log-probs {m.get('perf/logprob_s', 0.0):.1f}, update {m['perf/update_s']:.1f}); sampled success "
            f"{m['rollout/success_rate']:.3f}, {int(m['rollout/kept_groups'])} groups kept in {m['rollout/rounds']:g} round(s), "
            f"{m['perf/env_steps_per_s'] / 1e3:.1f}k env-steps/s, approx_kl {m.get('policy/approx_kl', 0.0):.4f}, "
            f"peak {m.get('perf/peak_mem_gb', 0.0):.1f} GB")


def make_learner(task: str, env_cfg, agent, output, device: str, resume: bool = False,
                 num_envs: int | None = None) -> GRPOLearner:
    """Everything an iteration needs: the run (rank, wrapped model, optimizer, logger, restored state), the env of
    ``rollout groups x G`` envs and its validation bank, the rollout runner and its sampler. The caller closes
    ``learner.run`` and ``learner.env``."""
    from openarm_vla.eval.bank import EvalBank
    from openarm_vla.tasks.factory import compile_env_step, make_env
    from openarm_vla.vla import VLARunner

    from .model_init import build_model, compile_model_passes

    run = TrainingRun("grpo", task, env_cfg, agent, output, device, resume)
    G, d = env_cfg.group_size, run.d
    if problems := agent.run_problems(env_cfg, num_envs, d.world):  # scripts checked them already; the Python API
        raise TrainError(problems[0])
    B, rollout_groups, min_groups, agent.num_groups = agent.rollout_layout(G, num_envs, d.world)
    # without --init: a from-scratch model, for smoke tests and throughput only (GRPO needs groups that sometimes succeed)
    model, tok, norm_stats = build_model(agent, run.device)
    par = run.wrap(model, tok, norm_stats, summed_gradients=True, replica_on="all", ddp_module=False)
    rank_seed = agent.seed + 7919 * d.rank  # each rank its own starts, samples and mini-batch order
    run.counters.update(env_steps=0, trajectories=0, updates=0, skipped=0)
    run.generators = {"sample": torch.Generator(device=run.device).manual_seed(rank_seed + 1),
                      "shuffle": torch.Generator().manual_seed(rank_seed + 2)}
    env_cfg.scene.num_envs = rollout_groups * G
    env = make_env(task, cfg=env_cfg, device=run.device, seed=rank_seed)
    try:
        run.say(f"first env step {compile_env_step(env):.1f} s (Warp compiles the physics kernels its cache lacks: "
                "a fresh machine or a new --num_envs)")
        # rank 0 validates on the bank; the other ranks wait for it
        bank = EvalBank.build(env, agent.eval_episodes, agent.eval_seed) if agent.eval_episodes > 0 and d.main else None
        run.restore()  # after the env is built: its construction draws from the RNGs restored here
        run.open_log({"groups": f"{B} groups x {G} ({rollout_groups} per round)"})
        runner = VLARunner(par.plain, tok, env.num_envs, norm_stats=norm_stats, unnormalize_actions=bool(norm_stats),
                           dtype=run.dtype)
        sampler = VLAEnvPolicy.for_env(runner, env, temperature=agent.temperature)
        sampler.generator = run.generators["sample"]
        if agent.compile:  # after the env: its construction and first step draw from the RNGs, this draws nothing
            secs = compile_model_passes(runner, env.cfg.instruction, env.num_envs, agent.micro_batch_size, par.module)
            run.say(f"compiled the model's rollout and update passes in {secs:.1f} s (agent.compile)")
    except BaseException:
        run.close()
        env.close()
        raise
    return GRPOLearner(run, env, runner, sampler, B, G, min_groups, run.generators["shuffle"], device_sync(env.device), bank)


def learn(s: GRPOLearner) -> dict:
    """Validate, then iterate (collect, prepare, update), validating every ``eval_every`` and saving every
    ``save_every``; validate and export the final policy. Returns the last validation metrics."""
    from .validation import validate

    run, agent = s.run, s.agent
    fps = round(1 / s.env.step_dt)

    def validation():
        metrics, _, clips = validate(s.env, s.runner, s.bank, videos=agent.eval_videos)
        return metrics, clips, fps

    with run.oom_guard("--num_envs (agent.num_groups) or agent.micro_batch_size"):
        last_eval = run.evaluate(0, validation) if run.start == 0 else {}
        if last_eval:
            run.log.log(0, last_eval)
        for done in run.iterations():
            metrics = grpo_iteration(s, done)
            if run.due(agent.eval_every, done) and done < agent.max_iterations:
                last_eval = run.evaluate(done, validation)
                metrics.update(last_eval)
            run.log.log(done, metrics)
            run.bar.set_postfix(success=f"{metrics['rollout/success_rate']:.2f}", kept=metrics["rollout/kept_groups"],
                                eval=f"{last_eval.get('eval/success', float('nan')):.2f}")
            if run.d.main and "perf/iteration_s" in metrics:  # a skipped update printed its own line
                run.bar.write(iteration_summary(done, agent.max_iterations, metrics))
            run.save(done)
        last_eval = run.evaluate(agent.max_iterations, validation)
        run.finish(last_eval, {"rollout/env_steps_total": run.counters["env_steps"]})
    return last_eval


def train_grpo(task: str, env_cfg, agent, output, device: str, resume: bool = False, num_envs: int | None = None) -> dict:
    """Run GRPO; returns the final validation metrics and paths."""
    s = make_learner(task, env_cfg, agent, output, device, resume, num_envs)
    try:
        last_eval = learn(s)
    finally:
        s.run.close()
        s.env.close()
    run = s.run
    run.plot(f"GRPO {run.config.name}: {s.B * run.d.world} groups x {s.G} kept per update", "policy/loss",
             ["eval/success", "rollout/success_rate"])
    final = run.dir / "final"
    if not run.d.main:
        return {"final": str(final)}
    held_out = f"held-out success {last_eval['eval/success']:.3f}" if last_eval else "no validation (agent.eval_episodes=0)"
    run.say(f"done: {agent.max_iterations} iterations, {run.counters['env_steps']} env-steps; final {final}; {held_out}")
    return {"final": str(final), "env_steps": run.counters["env_steps"], **last_eval}
