"""Scene states of the box-grasp task: capture, restore, group resets for GRPO, held-out evaluation banks.

A state is Isaac Lab's ``scene.get_state(is_relative=True)`` dict (robot joints, box pose), sliced to the
envs it describes, plus the box's ``mass`` and ``inertia`` under ``rigid_object/box`` (randomized per
episode, not part of Isaac Lab's state) and, in a task with scene variation (the DR task), what the episode
drew under ``variation`` (colours, camera offset, light, target colour, instruction, distractor count; see
:class:`~.mdp.variation.SceneVariation`; distractor poses are articulation roots, in Isaac Lab's state) -- the layout
of a demo's ``initial_state`` and ``states``.
:func:`capture_states` is the one place that builds it (torch, on the env's device); demo recording,
replay, group resets and evaluation banks all use it.
"""

from __future__ import annotations

import torch

from openarm_vla.utils.tree import tree_map

from .mdp.variation import scene_variation


def select_states(state: dict, rows: torch.Tensor | list[int]) -> dict:
    """Rows ``rows`` of every tensor in a (nested) state dict."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    return tree_map(lambda t: t[rows.to(t.device)].clone(), state)


def capture_states(env, env_ids: torch.Tensor | list[int] | None = None) -> dict:
    """The current state of ``env_ids`` (all if None; env-relative poses) including the box mass and inertia."""
    env_ids = torch.arange(env.num_envs, device=env.device) if env_ids is None else env_ids
    env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=env.device)
    state = select_states(env.scene.get_state(is_relative=True), env_ids)
    box = env.scene["box"]
    state["rigid_object"]["box"]["mass"] = box.data.body_mass.torch[env_ids].clone().reshape(len(env_ids), -1)
    state["rigid_object"]["box"]["inertia"] = box.data.body_inertia.torch[env_ids].clone().reshape(len(env_ids), -1, 9)
    if (variation := scene_variation(env)) is not None:
        state["variation"] = variation.state(env_ids)
    return state


def reset_to_states(env, state: dict, env_ids: torch.Tensor | list[int]):
    """Reset ``env_ids`` so that env ``env_ids[k]`` starts in row k of ``state``; returns the observations."""
    env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=env.device)
    state = tree_map(lambda t: torch.as_tensor(t, device=env.device), state)
    box_state = state.get("rigid_object", {}).get("box", {})
    mass, inertia = box_state.pop("mass", None), box_state.pop("inertia", None)
    drawn = state.pop("variation", None)
    if drawn is not None and (variation := scene_variation(env)) is not None:
        variation.restore(drawn, env_ids)  # applied by the reset below, before it renders
    full = tree_map(lambda t: t.clone(), env.scene.get_state(is_relative=True))

    def put(dst: dict, src: dict):
        for k, v in src.items():
            if isinstance(v, dict):
                put(dst[k], v)
            else:
                dst[k][env_ids] = v.to(dst[k].dtype)

    put(full, state)
    env.reset_to(select_states(full, env_ids), env_ids, is_relative=True)  # Isaac Lab takes the rows of env_ids
    box = env.scene["box"]
    if mass is not None:
        box.set_masses_index(masses=mass.to(torch.float32).reshape(len(env_ids), -1), env_ids=env_ids)
    if inertia is not None:
        box.set_inertias_index(inertias=inertia.to(torch.float32).reshape(len(env_ids), -1, 9), env_ids=env_ids)
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


def held_out_states(env, env_ids: torch.Tensor | list[int], seed: int) -> dict:
    """Initial states of ``env_ids`` drawn by the task's own reset events under a private RNG seeded with ``seed``.

    The global RNG is left as it was. The same (seed, env slots, group size, device) give the same states
    in every process, whatever its number of envs (box variants are a prefix-stable function of the slot),
    so an SFT evaluation, GRPO's validation and ``evaluate.py`` can share one bank of held-out starts.
    """
    env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=env.device)
    dev = torch.device(env.device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        env.reset(env_ids=env_ids)
    return capture_states(env, env_ids)
