"""Replay recorded demonstrations from their initial states and check that they reproduce their outcome.

For each demo an env is reset to the demo's ``initial_state`` (box mass and inertia included,
:func:`~openarm_vla.tasks.box_grasp.scene_state.reset_to_states`) and the recorded actions are stepped. A
demo "reproduces" when the replayed episode ends with the same outcome as recorded; the result also gives
the episode-length match and the largest deviation of the box position / joint angles from the recorded
privileged observations (a determinism check of the simulator).

Box variants (size, colour) are fixed per env when the scene is built, so a demo replays on an env whose
box has the demo's ``box_size``, preferably the env it was recorded in (only that one replays bit-exactly:
env origins differ, so float rounding differs per env). Several demos replay at once, one per env.
"""

from __future__ import annotations

import numpy as np
import torch

from openarm_vla.action_space import joint_state_to_action
from openarm_vla.rollout import first_episodes
from openarm_vla.tasks.box_grasp.scene_state import reset_to_states
from openarm_vla.utils.tree import tree_cat


class ReplayPolicy:
    """Plays each env's recorded actions in order, then holds the last one; envs without a demo hold still."""

    def __init__(self, actions: dict[int, np.ndarray], hold: torch.Tensor):
        self.actions, self.hold, self.t = actions, hold, 0

    def __call__(self, obs) -> torch.Tensor:
        out = self.hold.clone()
        for e, acts in self.actions.items():
            out[e] = torch.as_tensor(acts[min(self.t, len(acts) - 1)], device=out.device)
        self.t += 1
        return out

    def reset(self, env_ids=None) -> None:
        pass


def _matching_envs(ep: dict, sizes: np.ndarray) -> list[int]:
    """The recorded env if it holds the demo's box here; else any env with that box."""
    want = ep["attrs"].get("box_size")
    match = list(range(len(sizes))) if want is None else [
        e for e in range(len(sizes)) if np.allclose(sizes[e], np.asarray(want, dtype=np.float32), atol=1e-4)]
    own = ep["attrs"].get("env_id")
    return [int(own)] if own is not None and int(own) in match else match


def replay_episodes(env, episodes: list[dict], on_frame=None, progress: bool = True) -> list[dict]:
    """Replay ``episodes`` (from :func:`~.hdf5_format.read_episode`); one result dict per demo.

    ``on_frame(demo_name, rgb)`` receives each replayed camera frame (for a video).
    """
    obs, _ = env.reset()
    sizes = obs["privileged"]["box_size"].cpu().numpy()
    results: list[dict] = []
    pending = []
    for i, ep in enumerate(episodes):
        if _matching_envs(ep, sizes):
            pending.append(i)
        else:
            results.append({"demo": ep["name"], "error": f"no env with this demo's box variant (box_size "
                            f"{ep['attrs'].get('box_size')}); try --num_envs {ep['attrs'].get('env_id', 0) + 1} or more"})
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc="replay", unit="demo", dynamic_ncols=True)
    while pending:
        assign: dict[int, int] = {}  # one round: at most one demo per env, each on an env holding its box variant
        for i in list(pending):
            e = next((e for e in _matching_envs(episodes[i], sizes) if e not in assign), None)
            if e is not None:
                assign[e] = i
                pending.remove(i)
        env_ids = sorted(assign)
        eps = {e: episodes[assign[e]] for e in env_ids}
        state = tree_cat([eps[e]["initial_state"] for e in env_ids])
        obs = reset_to_states(env, state, env_ids)
        hold = joint_state_to_action(obs["privileged"]["joint_pos"].float())
        dev = {e: {"box": 0.0, "q": 0.0, "img": []} for e in env_ids}

        def compare(step, active):
            t = step.t - 1
            for e in env_ids:
                rec_obs = eps[e]["obs"]
                if not active[e] or t >= len(eps[e]["actions"]):
                    continue
                if "privileged_box_pos" in rec_obs:
                    d = np.abs(step.obs["privileged"]["box_pos"][e].cpu().numpy() - rec_obs["privileged_box_pos"][t]).max()
                    dev[e]["box"] = max(dev[e]["box"], float(d))
                if "privileged_joint_pos" in rec_obs:
                    d = np.abs(step.obs["privileged"]["joint_pos"][e].cpu().numpy() - rec_obs["privileged_joint_pos"][t]).max()
                    dev[e]["q"] = max(dev[e]["q"], float(d))
                if isinstance(step.obs["policy"], dict) and "front_rgb" in step.obs["policy"]:
                    img = step.obs["policy"]["front_rgb"][e].cpu().numpy()
                    if "front_rgb" in rec_obs and img.shape == rec_obs["front_rgb"][t].shape:
                        dev[e]["img"].append(float(np.abs(img.astype(np.int16) - rec_obs["front_rgb"][t]).mean()))
                    if on_frame is not None:
                        on_frame(eps[e]["name"], img)

        T = max(len(ep["actions"]) for ep in eps.values())
        policy = ReplayPolicy({e: eps[e]["actions"] for e in env_ids}, hold)
        out = first_episodes(env, policy, obs, env_ids=torch.tensor(env_ids), on_step=compare,
                             max_steps=T + int(env.max_episode_length))
        for e in env_ids:
            ep, rec = eps[e], out.records[e]
            rec_success = bool(ep["attrs"].get("success", False))
            replay_success = bool(rec["success"]) if rec is not None else False
            results.append({
                "demo": ep["name"],
                "env_id": e,
                "same_env": ep["attrs"].get("env_id") is not None and int(ep["attrs"]["env_id"]) == e,
                "recorded_success": rec_success,
                "replay_success": replay_success,
                "reproduced": replay_success == rec_success,
                "recorded_steps": int(len(ep["actions"])),
                "replay_steps": rec["steps"] if rec is not None else None,
                "max_box_pos_dev": dev[e]["box"],
                "max_joint_dev": dev[e]["q"],
                "mean_image_diff": float(np.mean(dev[e]["img"])) if dev[e]["img"] else None,
            })
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    order = {ep["name"]: i for i, ep in enumerate(episodes)}
    return sorted(results, key=lambda r: order[r["demo"]])


def summarize_replay(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    return {
        "num_demos": len(results),
        "replayed": len(ok),
        "recorded_successes": sum(r["recorded_success"] for r in ok),
        "replay_successes": sum(r["replay_success"] for r in ok),
        "reproduced": sum(r["reproduced"] for r in ok),
        "same_length_successes": sum(r["replay_steps"] == r["recorded_steps"] for r in ok if r["recorded_success"]),
        "same_env": sum(r["same_env"] for r in ok),
        "max_box_pos_dev": max((r["max_box_pos_dev"] for r in ok), default=None),
        "max_joint_dev": max((r["max_joint_dev"] for r in ok), default=None),
    }
