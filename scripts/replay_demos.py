"""Replay recorded demonstrations from their initial states and check that they succeed again.

    python scripts/replay_demos.py datasets/box_grasp.hdf5 [--demo K] [--video OUT.mp4] [--device auto]
        [--num_envs M] [--results OUT.json] [--strict]

For each demo: an env is reset to the demo's ``initial_state`` with
``env.reset_to(state, env_ids, is_relative=True)``, the box's mass and inertia (randomized at reset,
not part of Isaac Lab's scene state) are restored from ``initial_state/rigid_object/box/{mass,inertia}``,
and the recorded actions are stepped. A demo "reproduces" when the replayed episode ends with the same
outcome (success or not) as recorded; the report also gives the episode-length match and the largest
deviation of the box position / joint angles from the recorded privileged observations (a determinism
check of the simulator).

Box variants (size, colour) are fixed per env when the scene is built, so the replay env is built with
the recording's group size and (by default) its number of envs, and every demo is replayed in an env
whose box has the demo's ``box_size`` attribute. Several demos replay at once, one per env.
--video writes the front-camera frames of the replayed demos, one after another, to an mp4.
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
    p.add_argument("file", type=Path, help="HDF5 demo file")
    p.add_argument("--demo", type=int, nargs="+", default=None, metavar="K", help="replay only demo_K (several allowed)")
    p.add_argument("--video", type=Path, default=None, help="write the replayed camera frames to this mp4")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda:0")
    p.add_argument("--num_envs", type=int, default=None, help="default: the recording's num_envs")
    p.add_argument("--task", default=None, help="default: env_args['env_name'] of the file")
    p.add_argument("--results", type=Path, default=None, help="write per-demo results as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 unless every demo reproduces its outcome")
    return p.parse_args(argv)


def _fail(msg: str) -> None:
    print(f"[replay_demos] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def _to_tensor_tree(tree, device):
    import torch

    if isinstance(tree, dict):
        return {k: _to_tensor_tree(v, device) for k, v in tree.items()}
    return torch.as_tensor(tree, device=device)


def _cat_trees(trees):
    import torch

    first = trees[0]
    if isinstance(first, dict):
        return {k: _cat_trees([t[k] for t in trees]) for k in first}
    return torch.cat(trees, dim=0)


def restore_episode_state(env, initial_states: list[dict], env_ids):
    """reset_to the given initial states (one per env id), box mass and inertia included; returns obs."""
    import torch

    from openarm_vla.tasks.box_grasp.group_reset import reset_to_states

    dev = env.device
    ids = torch.as_tensor(env_ids, device=dev, dtype=torch.long)
    state = _cat_trees([_to_tensor_tree(s, dev) for s in initial_states])
    return reset_to_states(env, state, ids)


def main(argv=None) -> int:
    args = parse_args(argv)
    import numpy as np

    from openarm_vla.data.hdf5_format import DemoFileError, list_demos, read_env_args, read_episode, validate_file

    try:
        validate_file(args.file, required_obs=())
        env_args = read_env_args(args.file)
        names = list_demos(args.file)
        if args.demo is not None:
            for k in args.demo:
                if f"demo_{k}" not in names:
                    raise DemoFileError(f"{args.file}: no episode 'data/demo_{k}' (has {len(names)} demos)")
            names = [f"demo_{k}" for k in args.demo]
        episodes = [read_episode(args.file, nm) for nm in names]
    except DemoFileError as e:
        _fail(str(e))
    for ep in episodes:
        if not ep["initial_state"]:
            _fail(f"{args.file}: data/{ep['name']} has no initial_state group (cannot replay)")

    import torch

    from openarm_vla.tasks.box_grasp.mdp.actions import joint_targets_to_action
    from openarm_vla.tasks.factory import TaskError, load_env_cfg, make_env

    task = args.task or env_args.get("env_name", "OpenArm-BoxGrasp")
    num_envs = args.num_envs or int(env_args.get("num_envs", 1))
    image_size = env_args.get("image_size")
    group_size = env_args.get("group_size")
    try:
        cfg = load_env_cfg(task)
        env = make_env(task, cfg=cfg, num_envs=num_envs, device=args.device, image_size=image_size,
                       group_size=group_size if hasattr(cfg, "set_group_size") else None,
                       seed=int(env_args.get("seed", 0)))
    except TaskError as e:
        _fail(str(e))

    results: list[dict] = []
    frames: dict[str, list] = {}
    t0 = time.time()
    try:
        n = env.num_envs
        env.reset()
        sizes = getattr(env, "_box_sizes", None)
        lower = env.action_manager.get_term("joints").lower.detach().cpu()
        upper = env.action_manager.get_term("joints").upper.detach().cpu()

        def candidates(ep):
            """The recorded env if it exists here with the same box; else any env with that box. Only the
            recorded env replays bit-exactly: env origins differ, so float rounding differs per env."""
            want = ep["attrs"].get("box_size")
            match = list(range(n)) if want is None or sizes is None else [
                e for e in range(n) if np.allclose(sizes[e].cpu().numpy(), np.asarray(want, dtype=np.float32), atol=1e-4)]
            own = ep["attrs"].get("env_id")
            return [int(own)] if own is not None and int(own) in match else match

        pending = list(range(len(episodes)))
        for i in list(pending):
            if not candidates(episodes[i]):
                results.append({"demo": episodes[i]["name"], "error": "no env with this demo's box variant "
                                f"(box_size {episodes[i]['attrs'].get('box_size')}); try --num_envs "
                                f"{env_args.get('num_envs', '')}"})
                pending.remove(i)

        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc="replay", unit="demo", dynamic_ncols=True)
        while pending:
            # one round: at most one demo per env, each on an env holding its box variant
            assign: dict[int, int] = {}
            for i in list(pending):
                for e in candidates(episodes[i]):
                    if e not in assign:
                        assign[e] = i
                        pending.remove(i)
                        break
            env_ids = sorted(assign)
            eps = [episodes[assign[e]] for e in env_ids]
            obs = restore_episode_state(env, [ep["initial_state"] for ep in eps], env_ids)
            T = max(len(ep["actions"]) for ep in eps)
            live = {e: True for e in env_ids}
            outcome: dict[int, dict] = {}
            dev_box = {e: 0.0 for e in env_ids}
            dev_q = {e: 0.0 for e in env_ids}
            img_diff = {e: [] for e in env_ids}
            hold = joint_targets_to_action(obs["privileged"]["joint_pos"][:, :7].cpu(),
                                           obs["privileged"]["joint_pos"][:, 7].cpu(), lower, upper)
            for t in range(T):
                actions = hold.clone()
                for e, ep in zip(env_ids, eps):
                    if not live[e]:
                        continue
                    if t < len(ep["actions"]):
                        # compare what the replay sees with what the recording saw at this step
                        rec_obs = ep["obs"]
                        if "privileged_box_pos" in rec_obs:
                            d = np.abs(obs["privileged"]["box_pos"][e].cpu().numpy() - rec_obs["privileged_box_pos"][t]).max()
                            dev_box[e] = max(dev_box[e], float(d))
                        if "privileged_joint_pos" in rec_obs:
                            d = np.abs(obs["privileged"]["joint_pos"][e].cpu().numpy() - rec_obs["privileged_joint_pos"][t]).max()
                            dev_q[e] = max(dev_q[e], float(d))
                        if isinstance(obs["policy"], dict) and "front_rgb" in obs["policy"]:
                            img = obs["policy"]["front_rgb"][e].cpu().numpy()
                            if "front_rgb" in rec_obs and img.shape == rec_obs["front_rgb"][t].shape:
                                img_diff[e].append(float(np.abs(img.astype(np.int16) - rec_obs["front_rgb"][t]).mean()))
                            if args.video is not None:
                                frames.setdefault(ep["name"], []).append(img)
                        actions[e] = torch.as_tensor(ep["actions"][t])
                    else:
                        actions[e] = torch.as_tensor(ep["actions"][-1])
                obs, _r, term, trunc, extras = env.step(actions.to(env.device))
                rec = extras.get("episodes") if isinstance(extras, dict) else None
                done = (term | trunc).cpu()
                for e in env_ids:
                    if live[e] and bool(done[e]):
                        live[e] = False
                        success = False
                        if rec is not None:
                            ids = rec["env_ids"].tolist()
                            if e in ids:
                                success = bool(rec["success"][ids.index(e)])
                        outcome[e] = {"success": success, "steps": t + 1}
                if not any(live.values()):
                    break
            for e, ep in zip(env_ids, eps):
                out = outcome.get(e, {"success": False, "steps": None})
                rec_success = bool(ep["attrs"].get("success", False))
                results.append({
                    "demo": ep["name"],
                    "env_id": e,
                    "same_env": ep["attrs"].get("env_id") is not None and int(ep["attrs"]["env_id"]) == e,
                    "recorded_success": rec_success,
                    "replay_success": out["success"],
                    "reproduced": out["success"] == rec_success,
                    "recorded_steps": int(len(ep["actions"])),
                    "replay_steps": out["steps"],
                    "max_box_pos_dev": dev_box[e],
                    "max_joint_dev": dev_q[e],
                    "mean_image_diff": float(np.mean(img_diff[e])) if img_diff[e] else None,
                })
                bar.update(1)
        bar.close()
    finally:
        env.close()

    ok = [r for r in results if "error" not in r]
    reproduced = sum(r["reproduced"] for r in ok)
    rec_succ = sum(r["recorded_success"] for r in ok)
    rep_succ = sum(r["replay_success"] for r in ok)
    same_len = sum(r["replay_steps"] == r["recorded_steps"] for r in ok if r["recorded_success"])
    same_env = sum(r["same_env"] for r in ok)
    for r in results:
        if "error" in r:
            print(f"[replay_demos] {r['demo']}: {r['error']}")
        else:
            print(f"[replay_demos] {r['demo']} (env {r['env_id']}): recorded {'success' if r['recorded_success'] else 'failure'} "
                  f"in {r['recorded_steps']} steps, replay {'success' if r['replay_success'] else 'failure'} in "
                  f"{r['replay_steps']} steps; max dev box {1000 * r['max_box_pos_dev']:.2f} mm, joints "
                  f"{r['max_joint_dev']:.4f}")
    summary = {
        "file": str(args.file),
        "num_demos": len(results),
        "replayed": len(ok),
        "recorded_successes": rec_succ,
        "replay_successes": rep_succ,
        "reproduced": reproduced,
        "same_length_successes": same_len,
        "same_env": same_env,
        "max_box_pos_dev": max((r["max_box_pos_dev"] for r in ok), default=None),
        "max_joint_dev": max((r["max_joint_dev"] for r in ok), default=None),
        "wall_s": round(time.time() - t0, 1),
    }
    print(f"[replay_demos] {reproduced}/{len(ok)} demos reproduced their outcome ({rep_succ}/{rec_succ} recorded "
          f"successes succeeded again, {same_len} with the same episode length; {same_env} in their recording env); "
          f"max deviation: box "
          f"{1000 * (summary['max_box_pos_dev'] or 0):.2f} mm, joints {summary['max_joint_dev'] or 0:.4f} rad")
    if args.video is not None:
        if frames:
            from openarm_vla.eval.video import write_mp4

            all_frames = [f for nm in sorted(frames, key=lambda s: int(s.split("_")[-1])) for f in frames[nm]]
            path = write_mp4(args.video, all_frames, fps=int(round(1.0 / float(env_args.get("control_dt", 0.02)))))
            print(f"[replay_demos] wrote {len(all_frames)} frames to {path}")
        else:
            print("[replay_demos] no camera frames to write (task without front_rgb?)", file=sys.stderr)
    if args.results is not None:
        from openarm_vla.utils.io import atomic_write_json

        atomic_write_json(args.results, {"summary": summary, "demos": results})
    if args.strict and (reproduced != len(results)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
