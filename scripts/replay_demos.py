"""Replay recorded demonstrations from their initial states and check that they succeed again.

    python scripts/replay_demos.py datasets/box_grasp.hdf5 [--demo K ...] [--video OUT.mp4] [--device auto]
        [--num_envs M] [--results OUT.json] [--strict]

Each demo is reset to its ``initial_state`` (box mass and inertia included) on an env holding its box
variant and its actions are stepped (:mod:`openarm_vla.data.replay`); the env is built with the recording's
group size and (by default) its number of envs. --video writes the replayed front-camera frames to an mp4.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from openarm_vla.cli import check_args, parse, run_main


@run_main("replay_demos")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="replay_demos", description=__doc__.splitlines()[0])
    p.add_argument("file", type=Path, help="HDF5 demo file")
    p.add_argument("--demo", type=int, nargs="+", default=None, metavar="K", help="replay only demo_K (several allowed)")
    p.add_argument("--video", type=Path, default=None, help="write the replayed camera frames to this mp4")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda:0")
    p.add_argument("--num_envs", type=int, default=None, help="default: the recording's num_envs")
    p.add_argument("--task", default=None, help="default: env_args['env_name'] of the file")
    p.add_argument("--results", type=Path, default=None, help="write per-demo results as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 unless every demo reproduces its outcome")
    args, overrides = parse(p, argv)
    check_args("replay_demos", args, {"demo": ">= 0"}, files=("video", "results"))

    from openarm_vla.data.hdf5_format import DemoFileError, list_demos, read_env_args, read_episode, validate_file

    validate_file(args.file, required_obs=())
    env_args = read_env_args(args.file)
    names = list_demos(args.file)
    for k in args.demo or []:
        if f"demo_{k}" not in names:
            raise DemoFileError(f"{args.file}: no episode 'data/demo_{k}' (has {len(names)} demos)")
    episodes = [read_episode(args.file, f"demo_{k}") for k in args.demo] if args.demo else [read_episode(args.file, n) for n in names]
    for ep in episodes:
        if not ep["initial_state"]:
            raise DemoFileError(f"{args.file}: data/{ep['name']} has no initial_state group (cannot replay)")

    from openarm_vla.data.replay import replay_episodes, summarize_replay
    from openarm_vla.tasks.factory import load_env_cfg, make_env

    task = args.task or env_args.get("env_name", "OpenArm-BoxGrasp")
    env = make_env(task, cfg=load_env_cfg(task, overrides=overrides), num_envs=args.num_envs or int(env_args.get("num_envs", 1)),
                   device=args.device, image_size=env_args.get("image_size"), group_size=env_args.get("group_size"),
                   seed=int(env_args.get("seed", 0)))
    frames: dict[str, list] = {}
    t0 = time.time()
    try:
        results = replay_episodes(env, episodes, on_frame=(lambda name, img: frames.setdefault(name, []).append(img))
                                  if args.video else None)
        fps = round(1.0 / env.step_dt)
    finally:
        env.close()

    for r in results:
        if "error" in r:
            print(f"[replay_demos] {r['demo']}: {r['error']}")
        else:
            print(f"[replay_demos] {r['demo']} (env {r['env_id']}): recorded {'success' if r['recorded_success'] else 'failure'} "
                  f"in {r['recorded_steps']} steps, replay {'success' if r['replay_success'] else 'failure'} in "
                  f"{r['replay_steps']} steps; max dev box {1000 * r['max_box_pos_dev']:.2f} mm, joints {r['max_joint_dev']:.4f}")
    summary = {"file": str(args.file), **summarize_replay(results), "wall_s": round(time.time() - t0, 1)}
    print(f"[replay_demos] {summary['reproduced']}/{summary['replayed']} demos reproduced their outcome "
          f"({summary['replay_successes']}/{summary['recorded_successes']} recorded successes succeeded again, "
          f"{summary['same_length_successes']} with the same episode length; {summary['same_env']} in their recording env); "
          f"max deviation: box {1000 * (summary['max_box_pos_dev'] or 0):.2f} mm, joints {summary['max_joint_dev'] or 0:.4f} rad")
    if args.video is not None:
        from openarm_vla.eval.video import write_mp4

        if frames:
            order = [ep["name"] for ep in episodes if ep["name"] in frames]
            path = write_mp4(args.video, [f for name in order for f in frames[name]], fps=fps)
            print(f"[replay_demos] wrote {sum(len(frames[n]) for n in order)} frames to {path}")
        else:
            print("[replay_demos] no camera frames to write (task without front_rgb?)", file=sys.stderr)
    if args.results is not None:
        from openarm_vla.utils.io import atomic_write_json

        atomic_write_json(args.results, {"summary": summary, "demos": results})
    return 1 if args.strict and summary["reproduced"] != summary["num_demos"] else 0


if __name__ == "__main__":
    sys.exit(main())
