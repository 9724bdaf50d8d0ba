"""Record demonstrations by teleoperation (keyboard in the sim window) into an Isaac Lab recorder HDF5.

    python scripts/record_demos.py --task OpenArm-BoxGrasp-Teleop --output datasets/teleop.hdf5 \
        [--all] [--num_demos 10] [--device auto] [--image_size 128] [--seed 0] [--rate 50]

Kit-less (Newton physics, no Isaac Sim): a Newton GL viewer window (pyglet + ImGui) shows the scene; the
keyboard in that window drives the gripper through end-effector deltas and IK (:mod:`openarm_vla.teleop`).
The key help is drawn in the window (bottom right): W/S A/D Q/E move, Z/X T/G C/V rotate, K gripper,
R reset, Backspace discard, Enter save now, Esc quit. Needs a display (``DISPLAY``; ``xvfb-run`` works).
With Isaac Sim (``--physics physx``) Isaac Lab's own devices are used: ``--input keyboard`` (Se3Keyboard)
or ``--input spacemouse`` (Se3SpaceMouse). The file has the layout of ``scripts/generate_demos.py``
(``actions`` is the 8-DoF joint action the arm was commanded with); successful episodes are saved, with
--all every finished one. It is written atomically when recording stops (after --num_demos demos, on Esc,
window close, Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from openarm_vla.cli import add_env_args, check_args, fail, parse


def _sigterm_as_ctrl_c(signum, frame):
    raise KeyboardInterrupt  # stop and write what was recorded


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="record_demos", description=__doc__.splitlines()[0])
    add_env_args(p, task="OpenArm-BoxGrasp-Teleop", num_envs=1, image_size=128)
    p.add_argument("--output", type=Path, required=True, help="HDF5 file to write (atomically)")
    p.add_argument("--all", action="store_true", help="save every finished episode, not only successful ones")
    p.add_argument("--num_demos", type=int, default=10, help="stop after this many saved demos")
    p.add_argument("--input", default="keyboard", help="keyboard | spacemouse (spacemouse needs Isaac Sim)")
    p.add_argument("--rate", type=float, default=50.0, help="at most this many control steps per second (0: no limit)")
    p.add_argument("--window", default="1280x800", help="viewer window size WxH")
    p.add_argument("--no_states", action="store_true", help="do not store the per-step states/ group")
    args, overrides = parse(p, argv)
    check_args("record_demos", args, {"num_demos": ">= 1", "rate": ">= 0"}, files=("output",))
    try:
        win_w, win_h = (int(v) for v in args.window.lower().split("x"))
    except ValueError:
        fail("record_demos", f"--window {args.window!r}: expected WxH, e.g. 1280x800")
    kitless = args.physics == "newton"
    if kitless and args.input != "keyboard":
        fail("record_demos", f"--input {args.input}: kit-less recording reads the keyboard of the viewer window; "
             "the spacemouse needs Isaac Sim (--physics physx)")
    if kitless and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        fail("record_demos", "teleop needs a window: no DISPLAY is set (run from a desktop session, or under `xvfb-run -a`)")

    import torch

    from openarm_vla.data.hdf5_format import DemoWriter
    from openarm_vla.data.recorder import DemoRecorder
    from openarm_vla.data.statistics import write_dataset_statistics
    from openarm_vla.tasks.factory import TaskError, load_env_cfg, make_env
    from openarm_vla.teleop.keyboard import TeleopKeyboard, attach_to_newton_viewer
    from openarm_vla.teleop.recording import IsaacLabDeviceInput, TeleopRecorder

    torch.manual_seed(args.seed)
    try:
        cfg = load_env_cfg(args.task, args.physics, overrides)
        if getattr(cfg, "teleop", None) is None:
            raise TaskError(f"task {args.task} is not a teleop task (no cfg.teleop); use OpenArm-BoxGrasp-Teleop")
        if kitless:
            cfg.enable_viewer(win_w, win_h)
        env = make_env(args.task, cfg=cfg, num_envs=1, device=args.device, image_size=args.image_size, seed=args.seed,
                       headless=False)
    except TaskError as e:
        fail("record_demos", e)
    signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    tc = cfg.teleop
    viz = next((v for v in env.sim.visualizers if getattr(v, "_viewer", None) is not None), None) if kitless else None
    if kitless and viz is None:
        env.close()
        fail("record_demos", "the Newton GL viewer window did not open (see the log above); is the display usable?")
    keys = TeleopKeyboard(pos_step=tc.pos_step, rot_step=tc.rot_step) if kitless else IsaacLabDeviceInput(args.input, tc.pos_step, tc.rot_step)
    env_args = {"num_envs": 1, "seed": args.seed, "device": str(env.device), "image_size": args.image_size,
                "expert": f"teleop_{args.input}", "success_only": not args.all, "control_dt": float(env.step_dt),
                "max_episode_steps": int(env.max_episode_length),
                "teleop": {"pos_step": tc.pos_step, "rot_step": tc.rot_step, "input": args.input}}
    writer = DemoWriter(args.output, env_name=args.task, instruction=env.cfg.instruction, env_args=env_args)
    rec = DemoRecorder(env, writer, args.num_demos, success_only=not args.all, store_states=not args.no_states,
                       seed=args.seed, expert=f"teleop_{args.input}")
    session = TeleopRecorder(env, keys, rec, keep_all=args.all, ik_iters=tc.ik_iters, rate=args.rate, viewer=viz,
                             log=lambda m: print(m, flush=True))
    if viz is not None:
        attach_to_newton_viewer(viz._viewer, keys, session.status, title="Teleop recording")
    print("[record_demos] recording; keys: W/S A/D Q/E move, Z/X T/G C/V rotate, K gripper, R reset, "
          "Backspace discard, Enter save, Esc quit", flush=True)
    try:
        interrupted = session.run(args.seed)
    except BaseException:
        writer.abort()
        env.close()
        raise
    try:
        if rec.written == 0:
            writer.abort()
            print(f"[record_demos] no demos recorded; nothing written to {args.output}", file=sys.stderr, flush=True)
            return 1
        path = writer.close()
        stats = write_dataset_statistics(path)
        print(f"[record_demos] wrote {rec.written} demos ({writer.total} steps) to {path}; statistics: {stats}", flush=True)
        return 130 if interrupted else 0
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main())
