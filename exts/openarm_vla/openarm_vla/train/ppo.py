"""PPO state teacher: rsl-rl-lib's OnPolicyRunner on OpenArm-BoxGrasp-State, and the policy file it yields.

The runner config is the task's registered ``BoxGraspPPORunnerCfg`` (overridden as ``agent.…=v`` through
Isaac Lab's Hydra layer, exactly what ``isaaclab train --rl_library rsl_rl`` runs). :class:`TeacherRunner`
adds what we own to rsl-rl's run directory (TensorBoard events, ``model_<it>.pt``):

    ppo_policy.pt       actor weights + observation normalizer + the actor/run config (atomic; refreshed
                        with every ``model_*.pt``), read by :class:`openarm_vla.policies.ppo_teacher.PPOActor`
    train_curve.json    one record per iteration: mean step reward, and over the episodes that finished in
                        that iteration mean return, length, success rate and failure categories (null where
                        no episode finished)
    train_curve.png     learning curves
    config.yaml         the resolved env and runner configs

The State task acts with top-down end-effector deltas (:class:`~openarm_vla.tasks.box_grasp.mdp.actions.TopDownDeltaAction`),
whose zero action holds the pose; its settings are saved with the policy so the teacher can drive the 8-DoF
VLA task through the same controller. For a task with the absolute 8-DoF interface, a Gaussian actor with
mean 0 would command the middle of every joint range, so ``agent.init_action=home`` starts the actor's output
layer with tiny weights and a bias equal to the home-pose action.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import time
from pathlib import Path

import torch
from rsl_rl.runners import OnPolicyRunner
from rsl_rl.utils.logger import Logger

from openarm_vla.action_space import home_action
from openarm_vla.policies.ppo_teacher import OBS_GROUP, POLICY_FILE, PPOError, save_policy
from openarm_vla.rollout import FAILURE_CATEGORIES, episode_records
from openarm_vla.utils.io import atomic_write_json
from openarm_vla.utils.plots import plot_curves
from openarm_vla.utils.run_files import write_config

CURVE_FILE = "train_curve.json"
CURVE_PNG = "train_curve.png"
INIT_ACTIONS = ("home", "zero")


def init_actor_output(actor, action: torch.Tensor, weight_scale: float = 0.01) -> bool:
    """Make a Gaussian actor's mean start near ``action`` for every observation; False if not applicable."""
    from rsl_rl.modules.distribution import GaussianDistribution, HeteroscedasticGaussianDistribution

    dist = getattr(actor, "distribution", None)
    if not isinstance(dist, GaussianDistribution) or isinstance(dist, HeteroscedasticGaussianDistribution):
        return False
    last = [m for m in actor.mlp if isinstance(m, torch.nn.Linear)][-1]
    if last.out_features != action.numel():
        return False
    with torch.no_grad():
        last.weight.mul_(weight_scale)
        last.bias.copy_(action.to(last.bias.device))
    return True


def action_term_settings(env) -> dict | None:
    """The settings of a :class:`TopDownDeltaAction` term (saved with the policy, so the teacher can run the same
    controller on the 8-DoF task), or None for the 8-DoF action."""
    from openarm_vla.tasks.box_grasp.mdp.actions import TopDownDeltaAction

    for name in env.action_manager.active_terms:
        term = env.action_manager.get_term(name)
        if isinstance(term, TopDownDeltaAction):
            c = term.cfg
            return {"type": "top_down_delta", "pos_scale": c.pos_scale, "yaw_scale": c.yaw_scale,
                    "close_closure": c.close_closure, "ik_iters": c.ik_iters, "workspace_lo": list(c.workspace_lo),
                    "workspace_hi": list(c.workspace_hi)}
    return None


def _finite_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class CurveLogger(Logger):
    """rsl-rl's Logger plus the per-iteration learning curve of finished episodes (:data:`CURVE_FILE`)."""

    def __init__(self, *args, curve_path: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.curve_path = curve_path
        self.curve: list[dict] = []
        self.ret = torch.zeros(self.num_envs, device=self.device)
        self.length = torch.zeros(self.num_envs, device=self.device)
        self._clear()

    def _clear(self) -> None:
        self.step_reward_sum, self.steps = 0.0, 0
        self.returns, self.lengths, self.success = [], [], []
        self.failures = {c: 0 for c in FAILURE_CATEGORIES}

    def process_env_step(self, rewards, dones, extras, intrinsic_rewards=None) -> None:
        super().process_env_step(rewards, dones, extras, intrinsic_rewards)
        rewards = rewards.reshape(-1).float().to(self.device)
        self.ret += rewards
        self.length += 1
        self.step_reward_sum += float(rewards.sum())
        self.steps += rewards.numel()
        done = dones.reshape(-1).nonzero().flatten()
        if len(done):
            self.returns += self.ret[done].tolist()
            self.lengths += self.length[done].tolist()
            self.ret[done] = 0.0
            self.length[done] = 0.0
        for rec in episode_records(extras):
            self.success.append(rec["success"])
            self.failures[rec["failure"]] += 1

    def log(self, it, start_it, total_it, collect_time, learn_time, loss_dict, learning_rate, action_std, *args, **kwargs):
        super().log(it, start_it, total_it, collect_time, learn_time, loss_dict, learning_rate, action_std, *args, **kwargs)

        def mean(xs):
            return float(sum(xs) / len(xs)) if xs else None

        steps = self.num_envs * self.cfg["num_steps_per_env"]
        rec = {
            "iteration": int(it),
            "mean_step_reward": _finite_or_none(self.step_reward_sum / self.steps if self.steps else None),
            "episodes": len(self.returns),
            "mean_reward": _finite_or_none(mean(self.returns)),
            "mean_episode_length": _finite_or_none(mean(self.lengths)),
            "success_rate": _finite_or_none(mean([float(s) for s in self.success])),
            "failures": {c: n for c, n in self.failures.items() if n},
            "env_steps": (self.curve[-1]["env_steps"] if self.curve else 0) + steps,
            "collect_time": collect_time,
            "learn_time": learn_time,
            "fps": steps / max(collect_time + learn_time, 1e-9),
            "learning_rate": float(learning_rate),
            "action_std": float(action_std.detach().mean()),
            **{f"loss_{k}": _finite_or_none(v) for k, v in loss_dict.items()},
        }
        self._clear()
        self.curve.append(rec)
        if self.writer is not None:
            for k in ("success_rate", "mean_reward", "mean_episode_length", "mean_step_reward"):
                if rec[k] is not None:
                    self.writer.add_scalar(f"Rollout/{k}", rec[k], it)
        atomic_write_json(self.curve_path, self.curve)
        sr = "n/a" if rec["success_rate"] is None else f"{rec['success_rate']:.2f}"
        print(f"[ppo] it {it}: step reward {rec['mean_step_reward']:.4f}, episodes {rec['episodes']}, "
              f"success {sr}, {collect_time + learn_time:.2f} s", flush=True)


class TeacherRunner(OnPolicyRunner):
    """OnPolicyRunner that also writes ``ppo_policy.pt`` with every checkpoint and keeps the learning curve."""

    def __init__(self, env, train_cfg: dict, log_dir: str, device: str, policy_meta: dict, obs_terms: list):
        super().__init__(env, train_cfg, log_dir=log_dir, device=device)
        out = Path(log_dir)
        self.logger = CurveLogger(
            log_dir=log_dir, cfg=self.cfg, env_cfg=self.env.cfg, num_envs=self.env.num_envs,
            is_distributed=self.is_distributed, gpu_world_size=self.gpu_world_size,
            gpu_global_rank=self.gpu_global_rank, device=self.device, curve_path=out / CURVE_FILE,
        )
        if not train_cfg.get("log_git", True):
            self.logger.git_status_repos = []
        self.out, self.policy_meta, self.obs_terms = out, policy_meta, obs_terms

    def save(self, path: str, infos: dict | None = None) -> None:
        super().save(path, infos)
        info = {**self.policy_meta, "iteration": self.current_learning_iteration, "rsl_rl_checkpoint": Path(path).name}
        save_policy(self.out / POLICY_FILE, self.alg.get_policy(), self.cfg, self.obs_terms, info)
        self.plot()

    def plot(self) -> None:
        if self.logger.curve:
            plot_curves(self.logger.curve, self.out / CURVE_PNG, x="iteration", title=f"PPO {self.policy_meta['task']}",
                        panels=[("mean_reward", "mean episode return", None), ("mean_step_reward", "mean reward per step", None),
                                ("mean_episode_length", "mean episode length [steps]", None),
                                ("success_rate", "success rate", (-0.02, 1.02))])


def latest_rsl_rl_checkpoint(out: Path) -> Path | None:
    ckpts = sorted(out.glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]) if p.stem.split("_")[1].isdigit() else -1)
    return ckpts[-1] if ckpts else None


def train_ppo(task: str, env_cfg, agent_cfg, output: str | os.PathLike, resume: bool = False) -> dict:
    """Train the PPO state teacher on ``task``; returns paths and the last iteration's statistics."""
    from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper, check_rsl_rl_version, handle_deprecated_rsl_rl_cfg

    from openarm_vla.tasks.factory import make_env

    if agent_cfg.init_action not in INIT_ACTIONS:
        raise PPOError(f"agent.init_action={agent_cfg.init_action!r}: expected one of {', '.join(INIT_ACTIONS)}")
    out = Path(output)
    ckpt = latest_rsl_rl_checkpoint(out) if resume else None
    if resume and ckpt is None:
        raise PPOError(f"--resume: no model_<it>.pt in {out} to continue from")
    if not resume and latest_rsl_rl_checkpoint(out) is not None:
        print(f"[ppo] note: {out} already holds model_*.pt of an earlier run; new checkpoints and TensorBoard "
              "events will be mixed with them (use a new --output, or --resume)", flush=True)
    if getattr(env_cfg.observations, OBS_GROUP, None) is None:
        raise PPOError(f"task {task}: no '{OBS_GROUP}' observation group for the PPO actor")
    check_rsl_rl_version()
    agent_cfg = handle_deprecated_rsl_rl_cfg(agent_cfg, importlib.metadata.version("rsl-rl-lib"))
    env_cfg.seed = agent_cfg.seed
    env = make_env(task, cfg=env_cfg, device=agent_cfg.device, seed=agent_cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out / "config.yaml", {"task": task, "env": env_cfg, "agent": agent_cfg})
    t_start = time.time()
    try:
        pol = env.observation_manager.compute()[OBS_GROUP]
        if not isinstance(pol, torch.Tensor) or pol.ndim != 2:
            raise PPOError(f"task {task}: the '{OBS_GROUP}' group must be one concatenated [N, D] tensor for the MLP actor")
        om = env.observation_manager
        obs_terms = [[n, int(math.prod(d))] for n, d in zip(om.active_terms[OBS_GROUP], om.group_obs_term_dim[OBS_GROUP])]
        batch = env.num_envs * agent_cfg.num_steps_per_env
        if batch < agent_cfg.algorithm.num_mini_batches:
            raise PPOError(f"num_envs x agent.num_steps_per_env = {batch} samples per iteration, fewer than "
                           f"agent.algorithm.num_mini_batches={agent_cfg.algorithm.num_mini_batches}")
        meta = {"action_dim": env.action_manager.total_action_dim, "clip_actions": agent_cfg.clip_actions, "task": task,
                "seed": agent_cfg.seed, "step_dt": float(env.step_dt), "action_term": action_term_settings(env)}
        wrapped = RslRlVecEnvWrapper(env, clip_actions=agent_cfg.clip_actions)
        runner = TeacherRunner(wrapped, agent_cfg.to_dict(), str(out), agent_cfg.device, meta, obs_terms)
        if ckpt is not None:
            print(f"[ppo] resuming from {ckpt}", flush=True)
            runner.load(str(ckpt), map_location=agent_cfg.device)
            old = out / CURVE_FILE
            if old.is_file():  # continue the curve of the run being resumed
                import json

                runner.logger.curve = [r for r in json.loads(old.read_text()) if r["iteration"] < runner.current_learning_iteration]
        elif agent_cfg.init_action == "home":
            if init_actor_output(runner.alg.get_policy(), home_action(agent_cfg.device)):
                print("[ppo] actor output initialised at the home-pose action (agent.init_action=home)", flush=True)
            else:
                print("[ppo] note: agent.init_action=home applies to the 8-DoF absolute action only; this task's "
                      "actor keeps rsl-rl's init", flush=True)
        print(f"[ppo] {task}: {env.num_envs} envs on {agent_cfg.device}, {agent_cfg.max_iterations} iterations x "
              f"{agent_cfg.num_steps_per_env} steps; run dir {out}", flush=True)
        try:
            runner.learn(num_learning_iterations=agent_cfg.max_iterations, init_at_random_ep_len=agent_cfg.init_at_random_ep_len)
        except KeyboardInterrupt:  # keep what was learned: a checkpoint and the policy file of the last iteration
            print(f"[ppo] interrupted at iteration {runner.current_learning_iteration}; saving", flush=True)
            runner.save(str(out / f"model_{runner.current_learning_iteration}.pt"))
        runner.plot()
        final_ckpt = out / f"model_{runner.current_learning_iteration}.pt"
        curve = runner.logger.curve
    finally:
        env.close()
    wall = time.time() - t_start
    result = {"run_dir": str(out), "policy": str(out / POLICY_FILE),
              "checkpoint": str(final_ckpt) if final_ckpt.is_file() else None, "curve": str(out / CURVE_FILE),
              "iterations": len(curve), "wall_s": wall, "last": curve[-1] if curve else {}}
    print(f"[ppo] done: {len(curve)} iterations in {wall:.1f} s; policy {result['policy']}; "
          f"checkpoint {result['checkpoint']}", flush=True)
    return result
