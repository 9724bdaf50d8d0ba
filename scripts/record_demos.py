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

from openarm_vla.cli import add_env_args, check_args, fail, parse, run_main


def _sigterm_as_ctrl_c(signum, frame):
    raise KeyboardInterrupt  # stop and write what was recorded


@run_main("record_demos")
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

    from openarm_vla.errors import TaskError
    from openarm_vla.tasks.factory import load_env_cfg, make_env
    from openarm_vla.teleop.recording import record_teleop_demos

    torch.manual_seed(args.seed)
    cfg = load_env_cfg(args.task, args.physics, overrides)
    if getattr(cfg, "teleop", None) is None:
        raise TaskError(f"task {args.task} is not a teleop task (no cfg.teleop); use OpenArm-BoxGrasp-Teleop")
    if kitless:
        cfg.enable_viewer(win_w, win_h)
    env = make_env(args.task, cfg=cfg, num_envs=1, device=args.device, image_size=args.image_size, seed=args.seed,
                   headless=False)
    signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    try:
        return record_teleop_demos(env, cfg.teleop, args.task, args.output, args.input, args.num_demos,
                                   keep_all=args.all, store_states=not args.no_states, rate=args.rate, seed=args.seed,
                                   image_size=args.image_size, kitless=kitless)
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main())
