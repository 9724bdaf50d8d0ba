"""Generate demonstrations headless with an expert in many envs at once, into an Isaac Lab recorder HDF5.

    python scripts/generate_demos.py --task OpenArm-BoxGrasp --num_demos 100 --num_envs 16 \
        --output datasets/box_grasp.hdf5 [--success_only | --no-success_only] [--seed 0] \
        [--device auto] [--image_size 128] [--expert scripted | ppo:CKPT] [--group_size 1] \
        [--image_compression gzip | lzf | none] [env.…=v]

Every env runs the expert; each finished episode becomes ``data/demo_K`` (successful ones only with
--success_only, the default) until --num_demos are written. The layout of a demo is in
:mod:`openarm_vla.data.recorder`; ``dataset_statistics.json`` (per-dim q01/q99/mean/std of actions and
obs/joint_pos) is written beside the file. Box variants (size, colour) are chosen per env when the scene is
built; --group_size 1 (default here) gives neighbouring envs different boxes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from openarm_vla.cli import add_env_args, check_args, fail, parse


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="generate_demos", description=__doc__.splitlines()[0])
    add_env_args(p, image_size=128)
    p.add_argument("--num_demos", type=int, default=10, help="episodes to write")
    p.add_argument("--output", type=Path, required=True, help="HDF5 file to write (atomically)")
    p.add_argument("--success_only", action=argparse.BooleanOptionalAction, default=True,
                   help="write successful episodes only (default) / all finished episodes")
    p.add_argument("--expert", default="scripted", help="scripted | ppo:CKPT")
    p.add_argument("--group_size", type=int, default=1, help="consecutive envs sharing a box variant")
    p.add_argument("--max_episodes", type=int, default=None,
                   help="give up after this many finished episodes (default: 3 x num_demos + 2 x num_envs)")
    p.add_argument("--no_states", action="store_true", help="do not store the per-step states/ group")
    p.add_argument("--image_compression", default="gzip", choices=("gzip", "lzf", "none"),
                   help="filter of the image datasets: gzip (smallest), lzf or none (much faster to write and load)")
    p.add_argument("--no_progress", action="store_true")
    args, overrides = parse(p, argv)
    check_args("generate_demos", args, {"num_demos": ">= 1", "group_size": ">= 1", "max_episodes": ">= 1"},
               files=("output",))
    if args.expert != "scripted" and not args.expert.startswith("ppo:"):
        fail("generate_demos", f"--expert {args.expert!r}: expected 'scripted' or 'ppo:CKPT'")
    spec = "expert" if args.expert == "scripted" else args.expert

    from openarm_vla.policies import PolicyError, check_policy_spec, make_policy
    from openarm_vla.tasks.factory import TaskError, load_env_cfg, make_env

    try:
        check_policy_spec(spec)
        env = make_env(args.task, cfg=load_env_cfg(args.task, args.physics, overrides), num_envs=args.num_envs,
                       device=args.device, image_size=args.image_size, group_size=args.group_size, seed=args.seed)
    except (PolicyError, TaskError) as e:
        fail("generate_demos", e)

    import torch
    from tqdm import tqdm

    from openarm_vla.data.hdf5_format import DemoWriter
    from openarm_vla.data.recorder import DemoRecorder
    from openarm_vla.data.statistics import write_dataset_statistics
    from openarm_vla.perf import StageClock, compile_env_step
    from openarm_vla.rollout import step_loop
    from openarm_vla.utils.io import DiskFullError

    torch.manual_seed(args.seed)
    t0 = time.time()
    error = None
    try:
        if "privileged" not in env.observation_manager.active_terms:
            raise PolicyError(f"task {args.task} has no 'privileged' observation group (the expert reads it)")
        expert = make_policy(spec, env)
        clock = StageClock(env.device)  # where the loop's time goes, printed at the end

        def policy(obs):
            with clock.time("expert"):
                return expert(obs)

        policy.reset = expert.reset
        env_args = {"num_envs": env.num_envs, "seed": args.seed, "device": str(env.device), "image_size": args.image_size,
                    "expert": args.expert, "group_size": args.group_size, "success_only": bool(args.success_only),
                    "control_dt": float(env.step_dt), "max_episode_steps": int(env.max_episode_length)}
        with DemoWriter(args.output, env_name=args.task, instruction=env.cfg.instruction, env_args=env_args,
                        image_compression=args.image_compression) as writer:
            rec = DemoRecorder(env, writer, args.num_demos, args.success_only, store_states=not args.no_states,
                               max_episodes=args.max_episodes or 3 * args.num_demos + 2 * env.num_envs,
                               seed=args.seed, expert=args.expert)
            first_step_s = compile_env_step(env)  # kernel compilation stays out of the loop's breakdown
            obs, _ = env.reset(seed=args.seed)
            rec.begin(obs)
            bar = tqdm(total=args.num_demos, desc="demos", unit="demo", dynamic_ncols=True, disable=args.no_progress)
            steps = [0]

            def on_step(step) -> bool:
                with clock.time("buffering"):
                    rec.add(step.obs, step.actions)
                with clock.time("capture and write"):
                    rec.end_step(step.episodes)
                steps[0] = step.t
                done = rec.done
                bar.update(len([n for n in rec.last if n]))
                bar.set_postfix(expert_success=f"{rec.succeeded}/{rec.finished}")
                return done

            t_loop = time.time()
            step_loop(env, policy, obs, on_step)
            loop_s = time.time() - t_loop
            bar.close()
            print(f"[generate_demos] {env.num_envs} envs x {steps[0]} steps in {loop_s:.1f} s: "
                  f"{clock.summary(loop_s, 'env.step (physics, camera, observations)')}; before the loop, the first "
                  f"env step (kernel compilation where Warp's cache lacks it) {first_step_s:.1f} s")
            rate = 100 * rec.succeeded / rec.finished if rec.finished else float("nan")
            print(f"[generate_demos] expert {args.expert}: {rec.succeeded}/{rec.finished} finished episodes succeeded "
                  f"({rate:.1f}%); failures: {rec.failures}; {time.time() - t0:.1f} s wall")
            if rec.written == 0:
                raise PolicyError(f"no episodes to write after {rec.finished} finished episodes "
                                  f"({'no successes' if args.success_only else 'none finished'}); nothing written to {args.output}")
            if rec.written < args.num_demos:
                print(f"[generate_demos] warning: only {rec.written}/{args.num_demos} demos after {rec.finished} episodes",
                      file=sys.stderr)
        stats = write_dataset_statistics(args.output)
        print(f"[generate_demos] wrote {rec.written} demos ({writer.total} steps) to {args.output}; statistics: {stats}")
    except (PolicyError, DiskFullError) as e:
        error = str(e)
    finally:
        env.close()
    if error:
        fail("generate_demos", error)
    return 0


if __name__ == "__main__":
    sys.exit(main())
