"""PPO state teacher: rsl-rl-lib's OnPolicyRunner on OpenArm-BoxGrasp-State, and the teacher it yields.

    train_ppo(cfg)            build the State env (kit-less), wrap it with Isaac Lab's RslRlVecEnvWrapper,
                              build the runner from BoxGraspPPORunnerCfg + the run config's overrides, train
    PPOExpert(path)           the trained actor rebuilt from ``ppo_policy.pt`` alone (no runner, no env):
                              deterministic actions [N, 8] in [-1, 1] from State observations [N, 34]
    load_teacher(path, env)   PPOExpert adapted to an env with a ``privileged`` group (the VLA task), for
                              ``scripts/generate_demos.py --expert ppo:CKPT``

The run directory (``cfg.output``) gets what Isaac Lab's rsl-rl train script writes (TensorBoard events,
``model_<it>.pt`` every ``save_interval`` iterations and at the end, ``git/`` diffs) plus files we own:

    ppo_policy.pt       actor weights + observation normalizer + the actor/run config (atomic; refreshed
                        with every ``model_*.pt``)
    train_curve.json    one record per iteration: mean step reward, and over the episodes that finished in
                        that iteration mean return, length, success rate (from ``extras["episodes"]``) and
                        failure categories; null where no episode finished
    train_curve.png     learning curves (matplotlib, Agg)
    config.yaml         the run config; agent.yaml: the resolved rsl-rl runner config

The action interface stays absolute ([-1, 1]^8 joint targets, see ``mdp/actions.py``). A Gaussian actor
with mean 0 would command the middle of every joint range and swing the arm away from the home pose at
the first step, so by default (``train.init_action: home``) the actor's output layer starts with tiny
weights and a bias equal to the home-pose action: the untrained policy holds the arm at home and explores
around it. ``init_action: zero`` keeps rsl-rl's initialisation.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from openarm_vla.utils.config import Config, ConfigError, load_config, save_config, to_dict
from openarm_vla.utils.io import atomic_path, atomic_write_json

__all__ = [
    "POLICY_FILE",
    "PPOExpert",
    "PPOTeacher",
    "build_agent_cfg",
    "home_action",
    "load_teacher",
    "plot_train_curve",
    "train_ppo",
]

POLICY_FILE = "ppo_policy.pt"
CURVE_FILE = "train_curve.json"
CURVE_PNG = "train_curve.png"
POLICY_FORMAT = "openarm_vla.ppo_policy"
POLICY_VERSION = 1
OBS_GROUP = "policy"

# run config ``train.<key>`` -> attribute path in the rsl-rl runner config (BoxGraspPPORunnerCfg)
TRAIN_KEYS = {
    "max_iterations": "max_iterations",
    "num_steps_per_env": "num_steps_per_env",
    "save_interval": "save_interval",
    "clip_actions": "clip_actions",
    "init_at_random_ep_len": "init_at_random_ep_len",
    "logger": "logger",
    "experiment_name": "experiment_name",
    "learning_rate": "algorithm.learning_rate",
    "schedule": "algorithm.schedule",
    "desired_kl": "algorithm.desired_kl",
    "entropy_coef": "algorithm.entropy_coef",
    "num_learning_epochs": "algorithm.num_learning_epochs",
    "num_mini_batches": "algorithm.num_mini_batches",
    "gamma": "algorithm.gamma",
    "lam": "algorithm.lam",
    "clip_param": "algorithm.clip_param",
    "value_loss_coef": "algorithm.value_loss_coef",
    "max_grad_norm": "algorithm.max_grad_norm",
    "init_std": "actor.distribution_cfg.init_std",
    "actor_hidden_dims": "actor.hidden_dims",
    "critic_hidden_dims": "critic.hidden_dims",
}
OWN_TRAIN_KEYS = ("init_action", "resume", "log_git")
INIT_ACTIONS = ("home", "zero")


class PPOError(ValueError):
    """A bad PPO run config or policy file, with a one-line message."""


# --------------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------------


def _set_attr_path(obj: Any, dotted: str, value: Any, where: str) -> None:
    parts = dotted.split(".")
    node = obj
    for i, part in enumerate(parts):
        if node is None or not hasattr(node, part):
            have = ", ".join(k for k in vars(node) if not k.startswith("_")) if node is not None else "nothing"
            raise PPOError(f"{where}: the rsl-rl runner config has no '{'.'.join(parts[: i + 1])}' (has: {have})")
        if i == len(parts) - 1:
            setattr(node, part, value)
        else:
            node = getattr(node, part)


def _flatten(d: Mapping, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        if isinstance(v, Mapping) and v:
            out.extend(_flatten(v, f"{prefix}{k}."))
        else:
            out.append((f"{prefix}{k}", v))
    return out


def build_agent_cfg(cfg: Mapping, device: str):
    """BoxGraspPPORunnerCfg with the run config's ``train.*`` and free-form ``agent.*`` overrides applied.

    ``train.<key>: null`` keeps the runner config's own value. ``agent`` is a nested mapping of attribute
    paths of the runner config (``agent.algorithm.normalize_advantage_per_mini_batch=true`` from the CLI
    with a leading ``+``), applied after ``train``.
    """
    from isaaclab_rl.rsl_rl import handle_deprecated_rsl_rl_cfg

    from openarm_vla.tasks.box_grasp.config.openarm.agents.rsl_rl_ppo_cfg import BoxGraspPPORunnerCfg

    agent = BoxGraspPPORunnerCfg()
    train = cfg.get("train") or {}
    for key, value in train.items():
        if key in OWN_TRAIN_KEYS:
            continue
        if key not in TRAIN_KEYS:
            valid = ", ".join(f"train.{k}" for k in (*TRAIN_KEYS, *OWN_TRAIN_KEYS))
            raise PPOError(f"unknown config key 'train.{key}' (valid keys: {valid})")
        if value is None:
            continue
        if key.endswith("hidden_dims"):
            value = [int(v) for v in value]
        _set_attr_path(agent, TRAIN_KEYS[key], value, f"train.{key}")
    for key, value in _flatten(cfg.get("agent") or {}):
        _set_attr_path(agent, key, value, f"agent.{key}")
    agent.device = device
    if cfg.get("seed") is not None:
        agent.seed = int(cfg["seed"])
    agent = handle_deprecated_rsl_rl_cfg(agent, importlib.metadata.version("rsl-rl-lib"))
    return agent


def _check_run_cfg(cfg: Config) -> None:
    env = cfg.get("env") or {}
    train = cfg.get("train") or {}
    for key, value in (("env.num_envs", env.get("num_envs")), ("train.max_iterations", train.get("max_iterations")),
                       ("train.num_steps_per_env", train.get("num_steps_per_env"))):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise PPOError(f"{key}={value!r}: expected a positive integer")
    init = train.get("init_action", "home")
    if init not in INIT_ACTIONS:
        raise PPOError(f"train.init_action={init!r}: expected one of {', '.join(INIT_ACTIONS)}")
    resume = train.get("resume")
    if resume and not Path(resume).is_file():
        raise PPOError(f"train.resume={resume}: checkpoint file not found (expected an rsl-rl model_<it>.pt)")
    if not cfg.get("output"):
        raise PPOError("output: expected a run directory (e.g. runs/ppo)")


# --------------------------------------------------------------------------------------------------
# the actor's initial output
# --------------------------------------------------------------------------------------------------


def home_action(device="cpu") -> torch.Tensor:
    """The normalized action [8] that holds the home pose with the gripper open."""
    from openarm_vla.robots import openarm_spec as spec
    from openarm_vla.robots.openarm import HOME_JOINT_POS
    from openarm_vla.tasks.box_grasp.mdp.actions import joint_targets_to_action

    q = torch.tensor([[HOME_JOINT_POS[n] for n in spec.ARM_JOINTS]], device=device)
    lo = torch.tensor(spec.ARM_LOWER, device=device)
    hi = torch.tensor(spec.ARM_UPPER, device=device)
    return joint_targets_to_action(q, torch.zeros(1, device=device), lo, hi)[0]


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


# --------------------------------------------------------------------------------------------------
# the env wrapper: episode bookkeeping for the learning curve
# --------------------------------------------------------------------------------------------------


class EpisodeTracker:
    """Per-iteration statistics of the rollout: step rewards, and returns/lengths/success of finished episodes."""

    def __init__(self, num_envs: int, device):
        from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES

        self.categories = FAILURE_CATEGORIES
        self.ret = torch.zeros(num_envs, device=device)
        self.length = torch.zeros(num_envs, device=device)
        self._clear()

    def _clear(self) -> None:
        self.step_reward_sum = 0.0
        self.steps = 0
        self.returns: list[float] = []
        self.lengths: list[float] = []
        self.success: list[bool] = []
        self.failures = [0] * len(self.categories)

    def update(self, rewards: torch.Tensor, dones: torch.Tensor, extras: dict) -> None:
        rewards = rewards.reshape(-1).float()
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
        eps = extras.get("episodes") if isinstance(extras, dict) else None
        if eps is not None and len(eps["env_ids"]):
            self.success += eps["success"].bool().tolist()
            for code in eps["failure"].tolist():
                self.failures[int(code)] += 1

    def pop(self) -> dict:
        """Statistics since the last pop (None where no episode finished)."""

        def mean(xs):
            return float(sum(xs) / len(xs)) if xs else None

        rec = {
            "mean_step_reward": self.step_reward_sum / self.steps if self.steps else None,
            "episodes": len(self.returns),
            "mean_reward": mean(self.returns),
            "mean_episode_length": mean(self.lengths),
            "success_rate": mean([float(s) for s in self.success]),
            "failures": {c: n for c, n in zip(self.categories, self.failures) if n},
        }
        self._clear()
        return rec


def _tracking_wrapper_cls():
    from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper

    class TrackingVecEnvWrapper(RslRlVecEnvWrapper):
        """RslRlVecEnvWrapper that also feeds an :class:`EpisodeTracker`."""

        def __init__(self, env, clip_actions: float | None = None):
            super().__init__(env, clip_actions=clip_actions)
            self.tracker = EpisodeTracker(self.num_envs, self.device)

        def step(self, actions):
            obs, rew, dones, extras = super().step(actions)
            self.tracker.update(rew, dones, extras)
            return obs, rew, dones, extras

    return TrackingVecEnvWrapper


# --------------------------------------------------------------------------------------------------
# the policy file we own
# --------------------------------------------------------------------------------------------------


def _obs_layout(env) -> list[list]:
    om = env.observation_manager
    names = list(om.active_terms[OBS_GROUP])
    dims = [int(math.prod(d)) for d in om.group_obs_term_dim[OBS_GROUP]]
    return [[n, d] for n, d in zip(names, dims)]


def save_policy(path: str | Path, actor, agent_dict: dict, obs_terms: list, meta: dict) -> Path:
    """Write ``ppo_policy.pt`` atomically: everything :class:`PPOExpert` needs to rebuild the actor."""
    state = {k: v.detach().cpu().clone() for k, v in actor.state_dict().items()}
    blob = {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "obs_group": OBS_GROUP,
        "obs_terms": obs_terms,
        "obs_dim": int(sum(d for _, d in obs_terms)),
        "action_dim": int(meta["action_dim"]),
        "clip_actions": meta.get("clip_actions"),
        "actor_cfg": to_dict(agent_dict["actor"]),
        "actor_state_dict": state,
        "agent_cfg": json.loads(json.dumps(to_dict(agent_dict), default=str)),
        **{k: v for k, v in meta.items() if k not in ("action_dim", "clip_actions")},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


class PPOExpert:
    """The trained actor, rebuilt from ``ppo_policy.pt`` without the runner; deterministic (mean) actions.

    ``act(obs)`` / ``expert(obs)`` takes the State task's ``policy`` observation: a tensor [N, obs_dim], the
    env's observation dict (its ``policy`` entry is used) or a TensorDict; returns [N, 8] in [-1, 1].
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        from rsl_rl.utils import resolve_class
        from tensordict import TensorDict

        path = Path(path)
        if path.is_dir():
            path = path / POLICY_FILE
        if not path.is_file():
            raise PPOError(f"PPO policy file not found: {path} (train one with scripts/train.py --algo ppo)")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad file
            raise PPOError(f"{path}: not a readable PPO policy file ({type(e).__name__}: {e})") from None
        if not isinstance(blob, dict) or blob.get("format") != POLICY_FORMAT:
            rsl = isinstance(blob, dict) and "actor_state_dict" in blob
            hint = " (an rsl-rl model_*.pt? pass the ppo_policy.pt beside it)" if rsl else ""
            raise PPOError(f"{path}: not a {POLICY_FORMAT} file{hint}")
        self.path = path
        self.device = torch.device(device)
        self.meta = {k: v for k, v in blob.items() if k != "actor_state_dict"}
        self.obs_terms = [(str(n), int(d)) for n, d in blob["obs_terms"]]
        self.obs_dim = int(blob["obs_dim"])
        self.action_dim = int(blob["action_dim"])
        self.task = blob.get("task")
        actor_class, actor_kwargs = resolve_class(dict(blob["actor_cfg"]))
        dummy = TensorDict({OBS_GROUP: torch.zeros(1, self.obs_dim)}, batch_size=[1])
        self.actor = actor_class(dummy, {"actor": [OBS_GROUP]}, "actor", self.action_dim, **actor_kwargs)
        try:
            self.actor.load_state_dict(blob["actor_state_dict"])
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise PPOError(f"{path}: actor weights do not match the saved actor config ({first})") from None
        self.actor.to(self.device).eval()
        self._td = TensorDict

    def _obs_tensor(self, obs) -> torch.Tensor:
        if isinstance(obs, Mapping) or hasattr(obs, "keys"):
            if OBS_GROUP not in obs.keys():
                raise PPOError(f"PPOExpert: observation has no '{OBS_GROUP}' group (keys: {list(obs.keys())})")
            obs = obs[OBS_GROUP]
        if not isinstance(obs, torch.Tensor) or obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            shape = tuple(obs.shape) if isinstance(obs, torch.Tensor) else type(obs).__name__
            raise PPOError(f"PPOExpert: expected a [N, {self.obs_dim}] State observation, got {shape}")
        return obs

    @torch.no_grad()
    def act(self, obs) -> torch.Tensor:
        x = self._obs_tensor(obs)
        out_device = x.device
        x = x.to(self.device, torch.float32)
        actions = self.actor(self._td({OBS_GROUP: x}, batch_size=[x.shape[0]]))
        return actions.clamp(-1.0, 1.0).to(out_device)

    __call__ = act

    def reset(self, env_ids=None) -> None:
        """The actor is a feed-forward MLP: nothing to reset."""


class PPOTeacher:
    """A :class:`PPOExpert` for an env that exposes the privileged state group (e.g. OpenArm-BoxGrasp).

    ``act(privileged)`` rebuilds the State observation from the privileged terms by name, in the order
    the teacher was trained on; the ``actions`` term (the last action) is read from the env's action
    manager, exactly as the State task's ``last_action`` observation does. ``__call__(obs)`` takes the
    env's whole observation dict (uses ``policy`` if it already is the State vector).
    """

    def __init__(self, expert: PPOExpert, env):
        self.expert, self.env = expert, env
        self.num_envs, self.device = env.num_envs, env.device
        if expert.action_dim != env.action_manager.total_action_dim:
            raise PPOError(f"{expert.path}: the teacher outputs {expert.action_dim} actions, "
                           f"the env takes {env.action_manager.total_action_dim}")

    def state_obs(self, privileged: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for name, dim in self.expert.obs_terms:
            if name == "actions":
                x = self.env.action_manager.action
            elif name in privileged:
                x = privileged[name]
            else:
                raise PPOError(f"{self.expert.path}: the teacher needs the observation term '{name}', which the "
                               f"env's privileged group lacks (has: {', '.join(privileged)})")
            x = x.reshape(x.shape[0], -1)
            if x.shape[1] != dim:
                raise PPOError(f"{self.expert.path}: observation term '{name}' has {x.shape[1]} dims here, "
                               f"the teacher was trained with {dim}")
            parts.append(x)
        return torch.cat(parts, dim=1)

    def act(self, privileged: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.expert.act(self.state_obs(privileged))

    def __call__(self, obs) -> torch.Tensor:
        pol = obs.get(OBS_GROUP) if isinstance(obs, Mapping) else None
        if isinstance(pol, torch.Tensor) and pol.ndim == 2 and pol.shape[1] == self.expert.obs_dim:
            return self.expert.act(pol)
        return self.act(obs["privileged"])

    def reset(self, env_ids=None) -> None:
        self.expert.reset(env_ids)


def load_teacher(path: str | Path, env) -> PPOTeacher:
    """The PPO teacher for ``env`` (used by ``generate_demos.py --expert ppo:CKPT``)."""
    return PPOTeacher(PPOExpert(path, device=env.device), env)


# --------------------------------------------------------------------------------------------------
# learning curve
# --------------------------------------------------------------------------------------------------


def plot_train_curve(curve: Sequence[Mapping], path: str | Path, title: str = "PPO") -> Path:
    """Mean return, step reward, episode length and success rate per iteration as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [r["iteration"] for r in curve]

    def series(key):
        return [r.get(key) if r.get(key) is not None else float("nan") for r in curve]

    panels = (
        ("mean_reward", "mean episode return", "tab:blue", None),
        ("mean_step_reward", "mean reward per step", "tab:gray", None),
        ("mean_episode_length", "mean episode length [steps]", "tab:orange", None),
        ("success_rate", "success rate", "tab:green", (-0.02, 1.02)),
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for ax, (key, label, color, ylim) in zip(axes.flat, panels):
        ax.plot(it, series(key), ".-" if len(it) < 60 else "-", color=color)
        ax.set_ylabel(label)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if ylim:
            ax.set_ylim(*ylim)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def _finite_or_none(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def train_ppo(cfg: Mapping | str | Path, overrides: Sequence[str] | None = None) -> dict:
    """Train the PPO state teacher; returns paths and the last iteration's statistics.

    ``cfg``: a run config (configs/ppo.yaml layout) or its path, plus optional dotted overrides.
    """
    cfg = load_config(cfg, overrides)
    try:
        _check_run_cfg(cfg)
    except ConfigError as e:
        raise PPOError(str(e)) from None

    from isaaclab_rl.rsl_rl import check_rsl_rl_version
    from rsl_rl.runners import OnPolicyRunner

    from openarm_vla.tasks.factory import load_env_cfg, make_env, resolve_device

    check_rsl_rl_version()
    task = cfg.get("task", "OpenArm-BoxGrasp-State")
    device = resolve_device(str(cfg.get("device", "auto")))
    seed = int(cfg.get("seed", 0) or 0)
    train = cfg.get("train") or {}
    env_section = cfg.get("env") or {}
    agent = build_agent_cfg(cfg, device)
    agent_dict = agent.to_dict()
    out = Path(cfg.output)
    if not train.get("resume") and list(out.glob("model_*.pt")):
        print(f"[ppo] note: {out} already holds model_*.pt of an earlier run; new checkpoints and TensorBoard "
              "events will be mixed with them (use a new output= to keep runs apart)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    save_config(agent_dict, out / "agent.yaml")

    env_cfg = load_env_cfg(task)
    if env_section.get("episode_length_s") is not None:
        env_cfg.episode_length_s = float(env_section["episode_length_s"])
    if getattr(env_cfg.observations, OBS_GROUP, None) is None:
        raise PPOError(f"task {task}: no '{OBS_GROUP}' observation group for the PPO actor")
    group = env_section.get("group_size")
    env = make_env(task, cfg=env_cfg, num_envs=env_section.get("num_envs"), device=device,
                   group_size=int(group) if group is not None else None, seed=seed)
    t_start = time.time()
    curve: list[dict] = []
    final_ckpt = None
    try:
        pol = env.observation_manager.compute()[OBS_GROUP]
        if not isinstance(pol, torch.Tensor) or pol.ndim != 2:
            raise PPOError(f"task {task}: the '{OBS_GROUP}' group must be one concatenated [N, D] tensor "
                           "for the MLP actor")
        obs_terms = _obs_layout(env)
        batch = env.num_envs * agent.num_steps_per_env
        if batch < agent.algorithm.num_mini_batches:
            raise PPOError(f"env.num_envs x train.num_steps_per_env = {batch} samples per iteration, fewer than "
                           f"train.num_mini_batches={agent.algorithm.num_mini_batches}")

        wrapped = _tracking_wrapper_cls()(env, clip_actions=agent.clip_actions)
        runner = OnPolicyRunner(wrapped, agent.to_dict(), log_dir=str(out), device=agent.device)
        runner.logger.git_status_repos = [__file__] if train.get("log_git", True) else []
        actor = runner.alg.get_policy()
        if train.get("init_action", "home") == "home" and not train.get("resume"):
            if init_actor_output(actor, home_action(device)):
                print("[ppo] actor output initialised at the home-pose action (train.init_action=home)", flush=True)
            else:
                print("[ppo] train.init_action=home applies to Gaussian actors only; keeping rsl-rl's init", flush=True)
        if train.get("resume"):
            print(f"[ppo] resuming from {train['resume']}", flush=True)
            runner.load(str(train["resume"]), map_location=agent.device)
            old_curve = out / CURVE_FILE
            if old_curve.is_file():  # continue the curve of a run resumed in its own directory
                try:
                    curve += [r for r in json.loads(old_curve.read_text())
                              if r.get("iteration", 1 << 62) < runner.current_learning_iteration]
                except (json.JSONDecodeError, TypeError, AttributeError):
                    print(f"[ppo] warning: {old_curve} unreadable; starting a new curve", flush=True)

        meta = {
            "action_dim": env.action_manager.total_action_dim,
            "clip_actions": agent.clip_actions,
            "task": task,
            "seed": seed,
            "config": json.loads(json.dumps(to_dict(cfg), default=str)),
            "step_dt": float(env.step_dt),
        }
        policy_path = out / POLICY_FILE

        orig_save = runner.save

        def save(path, infos=None):
            orig_save(path, infos)
            info = {**meta, "iteration": runner.current_learning_iteration, "rsl_rl_checkpoint": Path(path).name}
            save_policy(policy_path, actor, agent_dict, obs_terms, info)
            if curve:
                plot_train_curve(curve, out / CURVE_PNG, title=f"PPO {task} ({env.num_envs} envs)")

        runner.save = save

        orig_log = runner.logger.log

        def log(it, start_it, total_it, collect_time, learn_time, loss_dict, learning_rate, action_std, **kw):
            orig_log(it=it, start_it=start_it, total_it=total_it, collect_time=collect_time, learn_time=learn_time,
                     loss_dict=loss_dict, learning_rate=learning_rate, action_std=action_std, **kw)
            rec = {"iteration": int(it), **wrapped.tracker.pop()}
            steps = env.num_envs * agent.num_steps_per_env
            rec.update({
                "env_steps": (curve[-1]["env_steps"] if curve else 0) + steps,
                "collect_time": collect_time,
                "learn_time": learn_time,
                "fps": steps / max(collect_time + learn_time, 1e-9),
                "learning_rate": float(learning_rate),
                "action_std": float(action_std.detach().mean()),
                **{f"loss_{k}": _finite_or_none(v) for k, v in loss_dict.items()},
            })
            for k in ("mean_step_reward", "mean_reward", "mean_episode_length", "success_rate"):
                rec[k] = _finite_or_none(rec[k])
            curve.append(rec)
            writer = runner.logger.writer
            if writer is not None:
                for k in ("success_rate", "mean_reward", "mean_episode_length", "mean_step_reward"):
                    if rec[k] is not None:
                        writer.add_scalar(f"Rollout/{k}", rec[k], it)
            atomic_write_json(out / CURVE_FILE, curve)
            sr = "n/a" if rec["success_rate"] is None else f"{rec['success_rate']:.2f}"
            print(f"[ppo] it {it}: step reward {rec['mean_step_reward']:.4f}, episodes {rec['episodes']}, "
                  f"success {sr}, {rec['collect_time'] + rec['learn_time']:.2f} s", flush=True)

        runner.logger.log = log

        print(f"[ppo] {task}: {env.num_envs} envs on {device}, {agent.max_iterations} iterations x "
              f"{agent.num_steps_per_env} steps; run dir {out}", flush=True)
        try:
            runner.learn(num_learning_iterations=agent.max_iterations,
                         init_at_random_ep_len=agent.init_at_random_ep_len)
        except KeyboardInterrupt:  # keep what was learned: a checkpoint and the policy file of the last iteration
            print(f"[ppo] interrupted at iteration {runner.current_learning_iteration}; saving", flush=True)
            save(str(out / f"model_{runner.current_learning_iteration}.pt"))
        if not policy_path.is_file():  # learn() always saves at the end; keep the guarantee explicit
            save(str(out / f"model_{runner.current_learning_iteration}.pt"))
        plot_train_curve(curve, out / CURVE_PNG, title=f"PPO {task} ({env.num_envs} envs)")
        final_ckpt = out / f"model_{runner.current_learning_iteration}.pt"
    finally:
        env.close()
    wall = time.time() - t_start
    last = curve[-1] if curve else {}
    result = {
        "run_dir": str(out),
        "policy": str(policy_path),
        "checkpoint": str(final_ckpt) if final_ckpt is not None and final_ckpt.is_file() else None,
        "curve": str(out / CURVE_FILE),
        "iterations": len(curve),
        "wall_s": wall,
        "last": last,
    }
    print(f"[ppo] done: {len(curve)} iterations in {wall:.1f} s; policy {policy_path}; "
          f"checkpoint {result['checkpoint']}", flush=True)
    return result
