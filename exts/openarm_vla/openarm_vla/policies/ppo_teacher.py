"""The PPO state teacher as a policy: its actor rebuilt from ``ppo_policy.pt`` alone (no runner, no env).

    PPOActor(path)                  deterministic actions in [-1, 1] from State observations (the State task's
                                    top-down deltas [N, 5], or an 8-DoF actor's [N, 8])
    PPOTeacherPolicy(actor, env)    the actor on an env with a ``privileged`` group (the VLA task): the State
                                    vector is rebuilt from the privileged terms by name, and top-down deltas
                                    go through the State task's controller to the 8-DoF action (``ppo:PATH``)
    save_policy(...)                the file format, written by the trainer (:mod:`openarm_vla.train.ppo`)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from openarm_vla.errors import PPOError
from openarm_vla.utils.io import atomic_path

POLICY_FILE = "ppo_policy.pt"
POLICY_FORMAT = "openarm_vla.ppo_policy"
POLICY_VERSION = 1
OBS_GROUP = "policy"




def _plain(obj):
    """JSON-safe copy (tuples, classes and other non-JSON values become lists and strings)."""
    return json.loads(json.dumps(obj, default=str))


def save_policy(path: str | Path, actor, agent_cfg: dict, obs_terms: list, meta: dict) -> Path:
    """Write ``ppo_policy.pt`` atomically: everything :class:`PPOActor` needs to rebuild the actor."""
    state = {k: v.detach().cpu().clone() for k, v in actor.state_dict().items()}
    blob = {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "obs_group": OBS_GROUP,
        "obs_terms": obs_terms,
        "obs_dim": int(sum(d for _, d in obs_terms)),
        "action_dim": int(meta["action_dim"]),
        "clip_actions": meta.get("clip_actions"),
        "actor_cfg": _plain(agent_cfg["actor"]),
        "actor_state_dict": state,
        "agent_cfg": _plain(agent_cfg),
        **{k: _plain(v) for k, v in meta.items() if k not in ("action_dim", "clip_actions")},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return Path(path)


class PPOActor:
    """The trained actor, rebuilt from ``ppo_policy.pt`` without the runner; deterministic (mean) actions.

    ``act(obs)`` / ``actor(obs)`` takes the State task's ``policy`` observation: a tensor [N, obs_dim], the
    env's observation dict (its ``policy`` entry is used) or a TensorDict; returns [N, action_dim] in [-1, 1].
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
                raise PPOError(f"PPOActor: observation has no '{OBS_GROUP}' group (keys: {list(obs.keys())})")
            obs = obs[OBS_GROUP]
        if not isinstance(obs, torch.Tensor) or obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            shape = tuple(obs.shape) if isinstance(obs, torch.Tensor) else type(obs).__name__
            raise PPOError(f"PPOActor: expected a [N, {self.obs_dim}] State observation, got {shape}")
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


class PPOTeacherPolicy:
    """A :class:`PPOActor` for an env that exposes the privileged state group (e.g. OpenArm-BoxGrasp).

    ``act(privileged)`` rebuilds the State observation from the privileged terms by name, in the order
    the teacher was trained on. A teacher trained on the State task's top-down deltas runs its own copy of
    that task's controller (:class:`~openarm_vla.robots.ee_delta.TopDownDeltaController`, with the
    settings saved in the policy file): the ``actions`` term is its last delta action, ``tcp_target_error``
    its target minus the jaw centre, and it returns the controller's 8-DoF action. An 8-DoF teacher reads
    ``actions`` from the env's action manager. ``__call__(obs)`` takes the env's whole observation dict (uses
    ``policy`` if it already is the State vector).
    """

    def __init__(self, actor: PPOActor, env):
        from openarm_vla.action_space import ACTION_DIM
        from openarm_vla.robots.ee_delta import TopDownDeltaController

        self.actor, self.env = actor, env
        self.num_envs, self.device = env.num_envs, env.device
        settings = actor.meta.get("action_term") or {}
        env_dim = env.action_manager.total_action_dim
        self.controller = None
        if settings.get("type") == "top_down_delta" and env_dim == ACTION_DIM:
            kw = {k: v for k, v in settings.items() if k != "type"}
            self.controller = TopDownDeltaController(self.num_envs, self.device, **kw)
            self.last = torch.zeros(self.num_envs, TopDownDeltaController.ACTION_DIM, device=self.device)
            self.needs_sync = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        elif actor.action_dim != env_dim:
            raise PPOError(f"{actor.path}: the teacher outputs {actor.action_dim} actions, "
                           f"the env takes {env_dim}")

    def state_obs(self, privileged: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for name, dim in self.actor.obs_terms:
            if name == "actions":
                x = self.last if self.controller is not None else self.env.action_manager.action
            elif name == "tcp_target_error" and self.controller is not None and "tcp_pos" in privileged:
                x = self.controller.pos - privileged["tcp_pos"]
            elif name in privileged:
                x = privileged[name]
            else:
                raise PPOError(f"{self.actor.path}: the teacher needs the observation term '{name}', which the "
                               f"env's privileged group lacks (has: {', '.join(privileged)})")
            x = x.reshape(x.shape[0], -1)
            if x.shape[1] != dim:
                raise PPOError(f"{self.actor.path}: observation term '{name}' has {x.shape[1]} dims here, "
                               f"the teacher was trained with {dim}")
            parts.append(x)
        return torch.cat(parts, dim=1)

    def act(self, privileged: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.controller is None:
            return self.actor.act(self.state_obs(privileged))
        ids = self.needs_sync.nonzero().flatten()
        if len(ids):  # a new episode: the controller holds the pose the arm is in
            js = privileged["joint_pos"][ids]
            self.controller.reset(js[:, :7], js[:, 7], ids)
            self.last[ids] = 0.0
            self.needs_sync[ids] = False
        a = self.actor.act(self.state_obs(privileged))
        self.controller.step(a)
        self.last = a.to(self.last)
        return self.controller.normalized_action()

    def __call__(self, obs) -> torch.Tensor:
        pol = obs.get(OBS_GROUP) if isinstance(obs, Mapping) else None
        if self.controller is None and isinstance(pol, torch.Tensor) and pol.ndim == 2 and pol.shape[1] == self.actor.obs_dim:
            return self.actor.act(pol)
        return self.act(obs["privileged"])

    def reset(self, env_ids=None) -> None:
        self.actor.reset(env_ids)
        if self.controller is not None:
            ids = slice(None) if env_ids is None else torch.as_tensor(env_ids, device=self.device, dtype=torch.long)
            self.needs_sync[ids] = True


def load_teacher(path: str | Path, env) -> PPOTeacherPolicy:
    """The PPO teacher for ``env`` (``--policy ppo:PATH``, ``generate_demos.py --expert ppo:PATH``)."""
    return PPOTeacherPolicy(PPOActor(path, device=env.device), env)
