"""Group reset for GRPO: start a set of envs from one shared initial state.

A state is Isaac Lab's ``scene.get_state(is_relative=True)`` dict (robot joints, box pose), sliced to the
envs it describes, plus the box's ``mass`` and ``inertia`` under ``rigid_object/box`` (randomized per
episode, not part of Isaac Lab's state) -- the same layout as a demo's ``initial_state``. ``reset_to_states`` puts row k of a state
on env ``env_ids[k]``; ``reset_groups`` draws one random start per group of ``group_size`` consecutive
envs (the box variant, size and colour, is already shared by such a group) and copies it to the members.
"""

from __future__ import annotations

import torch


def _map_state(state: dict, fn) -> dict:
    return {k: _map_state(v, fn) if isinstance(v, dict) else fn(v) for k, v in state.items()}


def select_states(state: dict, rows: torch.Tensor | list[int]) -> dict:
    """Rows ``rows`` of every tensor in a (nested) state dict."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    return _map_state(state, lambda t: t[rows.to(t.device)].clone())


def capture_states(env, env_ids: torch.Tensor | list[int]) -> dict:
    """The current state of ``env_ids`` (env-relative poses) including the box mass."""
    env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=env.device)
    state = select_states(env.scene.get_state(is_relative=True), env_ids)
    box = env.scene["box"]
    state["rigid_object"]["box"]["mass"] = box.data.body_mass.torch[env_ids].clone()
    state["rigid_object"]["box"]["inertia"] = box.data.body_inertia.torch[env_ids].clone().reshape(len(env_ids), -1, 9)
    return state


def reset_to_states(env, state: dict, env_ids: torch.Tensor | list[int]):
    """Reset ``env_ids`` so that env ``env_ids[k]`` starts in row k of ``state``; returns the observations."""
    env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=env.device)
    state = _map_state(state, lambda t: t)  # a shallow copy of the tree, to pop from
    box_state = state.get("rigid_object", {}).get("box", {})
    mass, inertia = box_state.pop("mass", None), box_state.pop("inertia", None)
    full = _map_state(env.scene.get_state(is_relative=True), lambda t: t.clone())
    rows = _map_state(state, lambda t: t.to(env.device))

    def put(dst: dict, src: dict):
        for k, v in src.items():
            if isinstance(v, dict):
                put(dst[k], v)
            else:
                dst[k][env_ids] = v

    put(full, rows)
    obs, _ = env.reset_to(full, env_ids, is_relative=True)
    box = env.scene["box"]
    if mass is not None:
        box.set_masses_index(masses=mass.to(env.device, torch.float32).reshape(len(env_ids), -1), env_ids=env_ids)
    if inertia is not None:
        box.set_inertias_index(inertias=inertia.to(env.device, torch.float32).reshape(len(env_ids), -1, 9), env_ids=env_ids)
    # joint targets must hold the restored pose, not the one the reset events drew
    env.action_manager.reset(env_ids)
    return env.observation_manager.compute()


def reset_groups(env, group_size: int):
    """Reset every env; envs [k*G, (k+1)*G) all start from the state env k*G drew. Returns the observations."""
    if env.num_envs % group_size:
        raise ValueError(f"num_envs {env.num_envs} is not a multiple of group_size {group_size}")
    env.reset()
    leaders = torch.arange(0, env.num_envs, group_size, device=env.device)
    state = capture_states(env, leaders)
    rows = torch.arange(env.num_envs, device=env.device) // group_size
    return reset_to_states(env, select_states(state, rows), torch.arange(env.num_envs, device=env.device))
