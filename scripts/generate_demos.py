"""Generate demonstrations headless with an expert in many envs at once, into an Isaac Lab recorder HDF5.

    python scripts/generate_demos.py --task OpenArm-BoxGrasp --num_demos 100 --num_envs 16 \
        --output datasets/box_grasp.hdf5 [--success_only | --no-success_only] [--seed 0] \
        [--device auto] [--image_size 128] [--expert scripted | ppo:CKPT] [--group_size 1]

Every env runs the expert; each finished episode becomes ``data/demo_K`` (successful ones only with
--success_only, the default) until --num_demos are written. Per demo (T = num_samples, one row per
env step, ``obs[t]`` is what the expert saw when it chose ``actions[t]``)::

    actions                         float32 [T, 8]   the 8-DoF normalized action sent to env.step
    obs/front_rgb                   uint8   [T, H, W, 3]   (policy group: what the VLA sees)
    obs/joint_pos                   float32 [T, 8]   7 arm joints + gripper closure (policy group)
    obs/privileged_<term>           float32 [T, ...] the privileged group (joint_pos, joint_vel, box_pos,
                                                     box_quat (xyzw), tcp_pos, tcp_to_box; env frame)
    states/<scene state>            float32 [T, ...] scene.get_state(is_relative=True) BEFORE step t
                                                     (articulation/robot/..., rigid_object/box/...)
    initial_state/<scene state>     [1, ...] the state at the episode start (env-relative), for
                                    env.reset_to(state, env_ids, is_relative=True); plus
                                    rigid_object/box/mass [1, 1] and rigid_object/box/inertia [1, 1, 9]
                                    (randomized at reset, not part of Isaac Lab's scene state: restore them
                                    after reset_to, see scripts/replay_demos.py)
    attrs: num_samples, success, seed, instruction, env_id, failure, max_lift, box_size, expert

Note Isaac Lab's own recorder stores ``states`` post-step; ours are pre-step, aligned with obs/actions.
``dataset_statistics.json`` (per-dim q01/q99/mean/std of actions and obs/joint_pos) is written beside
the file. Box variants (size, colour) are chosen per env when the scene is built; --group_size 1
(default here) gives neighbouring envs different boxes, the task's GRPO default (8) would give a small
run one box only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMNI_KIT_ACCEPT_EULA", "YES")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="OpenArm-BoxGrasp")
    p.add_argument("--num_demos", type=int, default=10, help="episodes to write")
    p.add_argument("--num_envs", type=int, default=2)
    p.add_argument("--output", type=Path, required=True, help="HDF5 file to write (atomically)")
    p.add_argument("--success_only", action=argparse.BooleanOptionalAction, default=True,
                   help="write successful episodes only (default) / all finished episodes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda:0")
    p.add_argument("--physics", default="newton", choices=("newton", "physx"), help="newton (kit-less, default) | physx (needs Isaac Sim)")
    p.add_argument("--image_size", type=int, default=128, help="front camera resolution (square)")
    p.add_argument("--expert", default="scripted", help="scripted | ppo:CKPT")
    p.add_argument("--group_size", type=int, default=1, help="consecutive envs sharing a box variant")
    p.add_argument("--max_episodes", type=int, default=None,
                   help="give up after this many finished episodes (default: 3 x num_demos + 2 x num_envs)")
    p.add_argument("--no_states", action="store_true", help="do not store the per-step states/ group")
    p.add_argument("--no_progress", action="store_true")
    return p.parse_args(argv)


def _fail(msg: str) -> None:
    print(f"[generate_demos] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


# --------------------------------------------------------------------------------------------------
# experts
# --------------------------------------------------------------------------------------------------


class ExpertUnavailable(ValueError):
    """The requested expert cannot be built (one-line message)."""


class NoDemos(RuntimeError):
    """Nothing to write (e.g. no successful episode with --success_only)."""


def make_expert(spec: str, env):
    """An object with ``act(privileged_obs) -> actions`` and ``reset(env_ids)``."""
    if spec == "scripted":
        from openarm_vla.data.scripted_expert import ScriptedExpert

        return ScriptedExpert(env.num_envs, env.device)
    if spec.startswith("ppo:"):
        ckpt = spec.split(":", 1)[1]
        try:
            from openarm_vla.train import ppo
        except ImportError:
            raise ExpertUnavailable(
                f"--expert {spec}: the PPO state teacher is not available yet (no openarm_vla.train.ppo); "
                "use --expert scripted"
            ) from None
        if not hasattr(ppo, "load_teacher"):
            raise ExpertUnavailable(f"--expert {spec}: openarm_vla.train.ppo has no load_teacher(ckpt, env)")
        try:
            return ppo.load_teacher(ckpt, env)
        except ValueError as e:  # ppo.PPOError: missing/bad policy file, obs/action mismatch
            raise ExpertUnavailable(f"--expert {spec}: {e}") from None
    raise ExpertUnavailable(f"--expert {spec!r}: expected 'scripted' or 'ppo:CKPT'")


# --------------------------------------------------------------------------------------------------
# per-env state capture
# --------------------------------------------------------------------------------------------------


def _numpy_copy(t):
    """A numpy copy of a tensor. On the CPU ``.numpy()`` shares memory with simulator buffers that the
    next step or reset overwrites in place (e.g. the box mass after an auto-reset), hence the copy."""
    return t.detach().cpu().numpy().copy()


def _tree_to_numpy(tree):
    if isinstance(tree, dict):
        return {k: _tree_to_numpy(v) for k, v in tree.items()}
    return _numpy_copy(tree)


def _tree_rows(tree, e: int, keepdim: bool = False):
    if isinstance(tree, dict):
        return {k: _tree_rows(v, e, keepdim) for k, v in tree.items()}
    return tree[e : e + 1] if keepdim else tree[e]


def _stack_tree(rows: list):
    import numpy as np

    first = rows[0]
    if isinstance(first, dict):
        return {k: _stack_tree([r[k] for r in rows]) for k in first}
    return np.stack(rows, axis=0)


def capture_scene_state(env):
    """scene.get_state(is_relative=True) for all envs as numpy, plus the box's mass and inertia."""
    state = _tree_to_numpy(env.scene.get_state(is_relative=True))
    box = env.scene["box"]
    state.setdefault("rigid_object", {}).setdefault("box", {})
    state["rigid_object"]["box"]["mass"] = _numpy_copy(box.data.body_mass.torch).reshape(env.num_envs, -1)
    state["rigid_object"]["box"]["inertia"] = _numpy_copy(box.data.body_inertia.torch).reshape(env.num_envs, -1, 9)
    return state


def _drop_empty(tree):
    """Remove empty groups (e.g. the 'cable_object': {} entries of get_state)."""
    if not isinstance(tree, dict):
        return tree
    out = {k: _drop_empty(v) for k, v in tree.items()}
    return {k: v for k, v in out.items() if not (isinstance(v, dict) and not v)}


# --------------------------------------------------------------------------------------------------
# main loop
# --------------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.num_demos <= 0 or args.num_envs <= 0:
        _fail("--num_demos and --num_envs must be positive")
    if args.image_size <= 0:
        _fail("--image_size must be positive")
    if args.expert != "scripted" and not args.expert.startswith("ppo:"):
        _fail(f"--expert {args.expert!r}: expected 'scripted' or 'ppo:CKPT'")
    if args.expert.startswith("ppo:"):  # fail before paying for the simulator
        try:
            import openarm_vla.train.ppo  # noqa: F401
        except ImportError:
            _fail(f"--expert {args.expert}: the PPO state teacher is not available yet (no openarm_vla.train.ppo); "
                  "use --expert scripted")
        if not Path(args.expert.split(":", 1)[1]).exists():
            _fail(f"--expert {args.expert}: checkpoint {args.expert.split(':', 1)[1]} not found")
    if args.output.exists() and args.output.is_dir():
        _fail(f"--output {args.output}: is a directory, expected an HDF5 file path")
    max_episodes = args.max_episodes or (3 * args.num_demos + 2 * args.num_envs)

    import numpy as np
    import torch
    from tqdm import tqdm

    from openarm_vla.data.hdf5_format import DemoWriter
    from openarm_vla.data.statistics import write_dataset_statistics
    from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES
    from openarm_vla.tasks.factory import TaskError, load_env_cfg, make_env

    torch.manual_seed(args.seed)
    try:
        cfg = load_env_cfg(args.task)
        group = args.group_size if hasattr(cfg, "set_group_size") else None
        env = make_env(args.task, cfg=cfg, num_envs=args.num_envs, device=args.device,
                       image_size=args.image_size, group_size=group, seed=args.seed, physics=args.physics)
    except TaskError as e:
        _fail(str(e))

    n = env.num_envs
    writer = None
    t_start = time.time()
    written = finished = succeeded = 0
    failures: dict[str, int] = {}
    try:
        if "privileged" not in env.observation_manager.active_terms:
            raise ExpertUnavailable(f"task {args.task} has no 'privileged' observation group (the expert reads it)")
        expert = make_expert(args.expert, env)
        instruction = getattr(env.cfg, "instruction", None) or "pick up the box"
        writer = DemoWriter(
            args.output,
            env_name=args.task,
            instruction=instruction,
            env_args={
                "num_envs": n,
                "seed": args.seed,
                "device": str(env.device),
                "image_size": args.image_size,
                "expert": args.expert,
                "group_size": args.group_size,
                "success_only": bool(args.success_only),
                "control_dt": float(env.step_dt),
                "max_episode_steps": int(env.max_episode_length),
                "obs_layout": "obs/<policy term>, obs/privileged_<term>; states/ pre-step; initial_state/ "
                "env-relative scene state + rigid_object/box/mass, inertia",
            },
        )

        obs, _ = env.reset(seed=args.seed)
        expert.reset(None)
        box_sizes = getattr(env, "_box_sizes", None)  # set by the box reset event
        init_state = capture_scene_state(env)
        episode_init = [_drop_empty(_tree_rows(init_state, e, keepdim=True)) for e in range(n)]
        bufs: list[dict[str, list]] = [{"obs": [], "states": [], "actions": []} for _ in range(n)]
        bar = None if args.no_progress else tqdm(total=args.num_demos, desc="demos", unit="demo", dynamic_ncols=True)

        while written < args.num_demos and finished < max_episodes:
            pol = obs["policy"]
            pol_np = {k: _numpy_copy(v) for k, v in pol.items()} if isinstance(pol, dict) else {"policy": _numpy_copy(pol)}
            priv_np = {f"privileged_{k}": _numpy_copy(v) for k, v in obs["privileged"].items()}
            states_np = None if args.no_states else _drop_empty(_tree_to_numpy(env.scene.get_state(is_relative=True)))
            with torch.no_grad():
                actions = expert.act(obs["privileged"])
            act_np = _numpy_copy(actions).astype(np.float32)
            for e in range(n):
                b = bufs[e]
                b["obs"].append({**{k: v[e] for k, v in pol_np.items()}, **{k: v[e] for k, v in priv_np.items()}})
                if states_np is not None:
                    b["states"].append(_tree_rows(states_np, e))
                b["actions"].append(act_np[e])

            obs, _rew, term, trunc, extras = env.step(actions)
            done = (term | trunc).nonzero().flatten().tolist()
            if not done:
                continue
            eps = extras.get("episodes") if isinstance(extras, dict) else None
            records = {}
            if eps is not None:
                for j, e in enumerate(eps["env_ids"].tolist()):
                    records[e] = {
                        "success": bool(eps["success"][j]),
                        "failure": FAILURE_CATEGORIES[int(eps["failure"][j])],
                        "max_lift": float(eps["max_lift"][j]),
                    }
            new_state = capture_scene_state(env)  # the auto-reset envs' new initial states
            for e in done:
                rec = records.get(e, {"success": False, "failure": "timeout", "max_lift": 0.0})
                finished += 1
                succeeded += rec["success"]
                failures[rec["failure"]] = failures.get(rec["failure"], 0) + 1
                b = bufs[e]
                keep = (rec["success"] or not args.success_only) and written < args.num_demos
                if keep and b["actions"]:
                    writer.write_episode(
                        obs=_stack_tree(b["obs"]),
                        actions=np.stack(b["actions"]),
                        states=_stack_tree(b["states"]) if b["states"] else None,
                        initial_state=episode_init[e],
                        success=rec["success"],
                        seed=args.seed,
                        env_id=e,
                        failure=rec["failure"],
                        max_lift=rec["max_lift"],
                        box_size=box_sizes[e].tolist() if box_sizes is not None else None,
                        expert=args.expert,
                    )
                    written += 1
                    if bar is not None:
                        bar.update(1)
                bufs[e] = {"obs": [], "states": [], "actions": []}
                episode_init[e] = _drop_empty(_tree_rows(new_state, e, keepdim=True))
            expert.reset(torch.tensor(done, device=env.device))
            if bar is not None:
                bar.set_postfix(expert_success=f"{succeeded}/{finished}")
        if bar is not None:
            bar.close()

        rate = succeeded / finished if finished else float("nan")
        wall = time.time() - t_start
        print(f"[generate_demos] expert {args.expert}: {succeeded}/{finished} finished episodes succeeded "
              f"({100 * rate:.1f}%); failures: {failures}; {wall:.1f} s wall")
        if written == 0:
            raise NoDemos(
                f"no episodes to write after {finished} finished episodes "
                f"({'no successes' if args.success_only else 'none finished'}); nothing written to {args.output}"
            )
        if written < args.num_demos:
            print(f"[generate_demos] warning: only {written}/{args.num_demos} demos after {finished} episodes "
                  f"(--max_episodes {max_episodes})", file=sys.stderr)
        path = writer.close()
        stats = write_dataset_statistics(path)
        print(f"[generate_demos] wrote {written} demos ({writer.total} steps) to {path}; statistics: {stats}")
    except (ExpertUnavailable, NoDemos) as e:
        if writer is not None:
            writer.abort()
        error = str(e)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    else:
        error = None
    finally:
        env.close()
    if error:
        _fail(error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
