"""The physics solver's work per world, by task: constraint rows, contacts and solver iterations per step.

    python benchmarks/generalization/solver_load.py [--task OpenArm-BoxGrasp-DR] [--num_envs 16] [--steps 40]
        [--device cpu] [--json OUT] [env.… overrides]

MuJoCo-Warp solves every world's constraints each substep; its cost grows with the degrees of freedom (``nv``: the
mass matrix is factorized densely), the constraint rows (``nefc``: three per frictional contact point, plus joint
limits) and the iterations the slowest world needs. These counts do not
depend on the hardware, so a CPU run says what a scene change does to the solver's load before a GPU times it.
Random actions, the camera off; the counts of the last substep of each step after the first ``--skip`` steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="OpenArm-BoxGrasp-DR")
    p.add_argument("--num_envs", type=int, default=16)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=5, help="steps before counting (boxes settle)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=None)
    args, overrides = p.parse_known_args()

    from isaaclab_newton.physics import NewtonManager

    from openarm_vla.policies import make_policy
    from openarm_vla.rollout import step_loop
    from openarm_vla.tasks.factory import load_env_cfg, make_env

    cfg = load_env_cfg(args.task, overrides=tuple(overrides))
    cfg.remove_camera()
    env = make_env(args.task, cfg=cfg, num_envs=args.num_envs, device=args.device, image_size=None)
    rows = []
    model = NewtonManager._solver.mj_model
    dofs, mocap = int(model.nv), int(model.nmocap)

    def count(step) -> None:
        if step.t > args.skip:
            d = NewtonManager._solver.mjw_data
            rows.append((d.nefc.numpy().copy(), d.solver_niter.numpy().copy()))

    try:
        obs, _ = env.reset()
        step_loop(env, make_policy("random", env), obs, count, max_steps=args.steps)
    finally:
        env.close()
    nefc = np.stack([r[0] for r in rows])  # [steps, worlds]
    niter = np.stack([r[1] for r in rows])
    out = {"task": args.task, "overrides": overrides, "num_envs": args.num_envs, "steps_counted": len(rows),
           "device": args.device, "degrees_of_freedom": dofs, "mocap_bodies": mocap,
           "constraint_rows_per_world": {"mean": round(float(nefc.mean()), 1),
                                                              "max": int(nefc.max())},
           "solver_iterations": {"mean": round(float(niter.mean()), 2), "max_over_worlds_mean": round(float(niter.max(1).mean()), 2)}}
    print(f"[solver_load] {args.task} {' '.join(overrides)}: {dofs} degrees of freedom, {mocap} mocap bodies, "
          f"constraint rows per world mean "
          f"{out['constraint_rows_per_world']['mean']} (max {out['constraint_rows_per_world']['max']}), solver "
          f"iterations mean {out['solver_iterations']['mean']} (slowest world {out['solver_iterations']['max_over_worlds_mean']})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
