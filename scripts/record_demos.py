"""Record demonstrations by teleoperation (keyboard in the sim window) into an Isaac Lab recorder HDF5.

    python scripts/record_demos.py --task OpenArm-BoxGrasp-Teleop --output datasets/teleop.hdf5 \
        [--all] [--num_demos 10] [--device auto] [--image_size 128] [--seed 0] [--rate 50]

Kit-less (Newton physics, no Isaac Sim): a Newton GL viewer window (pyglet + ImGui) shows the scene;
the keyboard in that window drives the gripper through end-effector deltas and IK
(:mod:`openarm_vla.teleop`). The key help is drawn in the window (bottom right) and in
:mod:`openarm_vla.teleop.keyboard`: W/S A/D Q/E move, Z/X T/G C/V rotate, K gripper, R reset,
Backspace discard, Enter save now, Esc quit. Needs a display (``DISPLAY``; ``xvfb-run`` works).
With Isaac Sim (``--physics physx``) Isaac Lab's own devices are used instead: ``--input keyboard``
(Se3Keyboard, same motion keys) or ``--input spacemouse`` (Se3SpaceMouse).

What is written is the same layout as ``scripts/generate_demos.py`` (see its docstring): ``actions`` is
the VLA's 8-DoF normalized joint action the arm was commanded with (the IK output, not the EE delta),
``obs/front_rgb`` uint8, ``obs/joint_pos``, ``obs/privileged_*``, ``states/`` (pre-step),
``initial_state/``; attrs success, instruction, failure, max_lift, expert="teleop_<input>". Successful
episodes are saved (success ends the episode); with --all every finished episode is. The file is written
atomically when recording stops: after --num_demos demos, on Esc / window close, on Ctrl-C or SIGTERM
(whatever was recorded so far; with --all the episode in progress too).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("OMNI_KIT_ACCEPT_EULA", "YES")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # generate_demos' recording helpers


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="OpenArm-BoxGrasp-Teleop")
    p.add_argument("--output", type=Path, required=True, help="HDF5 file to write (atomically)")
    p.add_argument("--all", action="store_true", help="save every finished episode, not only successful ones")
    p.add_argument("--num_demos", type=int, default=10, help="stop after this many saved demos")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda:0")
    p.add_argument("--physics", default="newton", help="newton (kit-less) | physx (Isaac Sim)")
    p.add_argument("--input", default="keyboard", help="keyboard | spacemouse (spacemouse needs Isaac Sim)")
    p.add_argument("--image_size", type=int, default=128, help="front camera resolution (square)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=50.0, help="at most this many control steps per second (0: no limit)")
    p.add_argument("--window", default="1280x800", help="viewer window size WxH")
    p.add_argument("--no_states", action="store_true", help="do not store the per-step states/ group")
    return p.parse_args(argv)


def _fail(msg: str) -> None:
    print(f"[record_demos] error: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


class _Quit(Exception):
    pass


class IsaacLabDeviceInput:
    """Isaac Lab's Se3Keyboard / Se3SpaceMouse (need Isaac Sim's Kit) behind the TeleopKeyboard interface."""

    def __init__(self, kind: str, pos_step: float, rot_step: float, dt: float):
        from isaaclab.devices import Se3Keyboard, Se3KeyboardCfg, Se3SpaceMouse, Se3SpaceMouseCfg

        # Isaac Lab's sensitivities are per advance() call; ours are per control step
        if kind == "spacemouse":
            self.dev = Se3SpaceMouse(Se3SpaceMouseCfg(pos_sensitivity=pos_step, rot_sensitivity=rot_step))
        else:
            self.dev = Se3Keyboard(Se3KeyboardCfg(pos_sensitivity=pos_step, rot_sensitivity=rot_step))
        self._events: list[str] = []
        self._closed = None
        for key, ev in (("R", "reset"), ("BACKSPACE", "discard"), ("ENTER", "save"), ("ESCAPE", "quit")):
            try:
                self.dev.add_callback(key, lambda ev=ev: self._events.append(ev))
            except Exception:  # noqa: BLE001 - not every device has buttons for all events
                pass

    def request(self, event: str) -> None:
        self._events.append(event)

    def clear(self) -> None:
        self.dev.reset()

    def advance(self):
        import numpy as np
        from scipy.spatial.transform import Rotation

        cmd = self.dev.advance().detach().cpu().numpy()
        rpy = Rotation.from_rotvec(cmd[3:6]).as_euler("xyz")
        delta = np.concatenate([cmd[:3], rpy]).astype(np.float32)
        closed = bool(cmd[6] < 0) if cmd.shape[0] > 6 else False
        events, self._events = self._events, []
        if self._closed is not None and closed != self._closed:
            events.append("toggle_gripper")
        self._closed = closed
        return delta, events


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.num_demos <= 0:
        _fail("--num_demos must be positive")
    if args.output.exists() and args.output.is_dir():
        _fail(f"--output {args.output}: is a directory, expected an HDF5 file path")
    try:
        win_w, win_h = (int(v) for v in args.window.lower().split("x"))
    except ValueError:
        _fail(f"--window {args.window!r}: expected WxH, e.g. 1280x800")
    kitless = args.physics == "newton"
    if kitless and args.input != "keyboard":
        _fail(f"--input {args.input}: kit-less recording reads the keyboard of the viewer window; "
              "the spacemouse needs Isaac Sim (--physics physx)")
    if kitless and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        _fail("teleop needs a window: no DISPLAY is set (run from a desktop session, or under `xvfb-run -a`)")

    import numpy as np
    import torch

    from generate_demos import _drop_empty, _stack_tree, _tree_rows, _tree_to_numpy, capture_scene_state
    from openarm_vla.data.hdf5_format import DemoWriter
    from openarm_vla.data.statistics import write_dataset_statistics
    from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES
    from openarm_vla.tasks.factory import TaskError, load_env_cfg, make_env
    from openarm_vla.teleop import EEDeltaCfg, EEDeltaController
    from openarm_vla.teleop.keyboard import TeleopKeyboard, attach_to_newton_viewer

    torch.manual_seed(args.seed)
    try:
        cfg = load_env_cfg(args.task)
    except TaskError as e:
        _fail(str(e))
    teleop_cfg = getattr(cfg, "teleop", None)
    if teleop_cfg is None:
        _fail(f"task {args.task} is not a teleop task (no cfg.teleop); use OpenArm-BoxGrasp-Teleop")
    if kitless:
        cfg.enable_viewer(win_w, win_h)
    try:
        env = make_env(args.task, cfg=cfg, num_envs=1, device=args.device, image_size=args.image_size,
                       physics=args.physics, seed=args.seed, headless=False)
    except TaskError as e:
        _fail(str(e))

    # SIGTERM behaves like Ctrl-C: stop and write what was recorded
    def _sigterm(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _sigterm)

    viz = None
    if kitless:
        viz = next((v for v in env.sim.visualizers if getattr(v, "_viewer", None) is not None), None)
        if viz is None:
            env.close()
            _fail("the Newton GL viewer window did not open (see the log above); is the display usable?")
        keys = TeleopKeyboard(pos_step=teleop_cfg.pos_step, rot_step=teleop_cfg.rot_step)
    else:
        keys = IsaacLabDeviceInput(args.input, teleop_cfg.pos_step, teleop_cfg.rot_step, env.step_dt)

    ctrl = EEDeltaController(1, env.device, EEDeltaCfg(ik_iters=teleop_cfg.ik_iters))
    instruction = getattr(env.cfg, "instruction", None) or "pick up the box"
    expert = f"teleop_{args.input}"
    writer = DemoWriter(
        args.output,
        env_name=args.task,
        instruction=instruction,
        env_args={
            "num_envs": 1, "seed": args.seed, "device": str(env.device), "image_size": args.image_size,
            "expert": expert, "success_only": not args.all, "control_dt": float(env.step_dt),
            "max_episode_steps": int(env.max_episode_length),
            "teleop": {"pos_step": teleop_cfg.pos_step, "rot_step": teleop_cfg.rot_step, "input": args.input},
            "obs_layout": "obs/<policy term>, obs/privileged_<term>; states/ pre-step; initial_state/ "
            "env-relative scene state + rigid_object/box/mass, inertia",
        },
    )

    st = {"episode": 0, "written": 0, "last": "", "steps": 0}
    buf: dict[str, list] = {"obs": [], "states": [], "actions": []}

    def status() -> list[str]:
        grip = "closed" if bool(ctrl.gripper_closed[0]) else "open"
        p = ctrl.target_pos[0].tolist()
        return [
            f"Task: {instruction}",
            f"Episode {st['episode']}  step {st['steps']}/{int(env.max_episode_length)}",
            f"Saved demos: {st['written']}/{args.num_demos}  ({'all' if args.all else 'successful only'})",
            f"Gripper: {grip}   TCP: {p[0]:+.3f} {p[1]:+.3f} {p[2]:+.3f}",
            st["last"],
        ]

    if viz is not None:
        attach_to_newton_viewer(viz._viewer, keys, status, title="Teleop recording")

    def new_episode(obs_init=None):
        nonlocal obs, init_state, box_size
        if obs_init is None:
            obs_init, _ = env.reset()
        obs = obs_init
        jp = obs["policy"]["joint_pos"]  # measured after the reset: 7 arm joints + gripper closure
        ctrl.reset(jp[:, :7], (jp[:, 7] > 0.5).float())
        keys.clear()
        buf["obs"], buf["states"], buf["actions"] = [], [], []
        box_sizes = getattr(env, "_box_sizes", None)
        box_size = box_sizes[0].tolist() if box_sizes is not None else None
        init_state = _drop_empty(_tree_rows(capture_scene_state(env), 0, keepdim=True))
        st["episode"] += 1
        st["steps"] = 0

    def finish(success: bool, failure: str, max_lift: float, keep: bool, why: str) -> None:
        if keep and buf["actions"]:
            writer.write_episode(
                obs=_stack_tree(buf["obs"]), actions=np.stack(buf["actions"]),
                states=_stack_tree(buf["states"]) if buf["states"] else None, initial_state=init_state,
                success=success, seed=args.seed, env_id=0, failure=failure, max_lift=max_lift,
                box_size=box_size, expert=expert,
            )
            st["written"] += 1
            st["last"] = f"episode {st['episode']}: {why}, saved as demo_{st['written'] - 1}"
        else:
            reason = "empty" if not buf["actions"] else ("discarded" if why == "discarded" else "not saved (not successful; --all keeps it)")
            st["last"] = f"episode {st['episode']}: {why}, {reason}"
        print(f"[record_demos] {st['last']}", flush=True)

    obs, _ = env.reset(seed=args.seed)
    init_state = box_size = None
    new_episode(obs)
    period = 1.0 / args.rate if args.rate > 0 else 0.0
    interrupted = False
    print("[record_demos] recording; keys: W/S A/D Q/E move, Z/X T/G C/V rotate, K gripper, R reset, "
          "Backspace discard, Enter save, Esc quit", flush=True)
    try:
        while st["written"] < args.num_demos:
            t0 = time.perf_counter()
            if viz is not None and (viz.is_closed or not viz.is_running() or viz not in env.sim.visualizers):
                raise _Quit
            delta, events = keys.advance()
            if viz is not None and viz.consume_reset_request():  # the viewer's own "Reset Episode" button
                events.append("reset")
            for ev in events:
                if ev == "toggle_gripper":
                    ctrl.toggle_gripper()
                elif ev == "quit":
                    raise _Quit
                elif ev in ("reset", "discard", "save"):
                    keep = {"reset": args.all, "discard": False, "save": True}[ev]
                    finish(False, "manual", 0.0, keep, {"reset": "reset", "discard": "discarded", "save": "saved by key"}[ev])
                    new_episode()
                    break
            else:
                action = ctrl.step(torch.as_tensor(delta, device=env.device).unsqueeze(0))
                pol = obs["policy"]
                row = {k: v[0].detach().cpu().numpy() for k, v in pol.items()}
                row.update({f"privileged_{k}": v[0].detach().cpu().numpy() for k, v in obs["privileged"].items()})
                buf["obs"].append(row)
                if not args.no_states:
                    buf["states"].append(_tree_rows(_drop_empty(_tree_to_numpy(env.scene.get_state(is_relative=True))), 0))
                buf["actions"].append(action[0].detach().cpu().numpy().astype(np.float32))
                obs, _rew, term, trunc, extras = env.step(action)
                st["steps"] += 1
                if bool((term | trunc)[0]):
                    rec = {"success": False, "failure": "timeout", "max_lift": 0.0}
                    eps = extras.get("episodes") if isinstance(extras, dict) else None
                    if eps is not None and 0 in eps["env_ids"].tolist():
                        j = eps["env_ids"].tolist().index(0)
                        rec = {"success": bool(eps["success"][j]), "failure": FAILURE_CATEGORIES[int(eps["failure"][j])],
                               "max_lift": float(eps["max_lift"][j])}
                    finish(rec["success"], rec["failure"], rec["max_lift"], rec["success"] or args.all,
                           "success" if rec["success"] else rec["failure"])
                    new_episode(obs)  # the env auto-reset
            if period:
                time.sleep(max(0.0, period - (time.perf_counter() - t0)))
    except _Quit:
        print("[record_demos] quit", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("[record_demos] interrupted", flush=True)
    except BaseException:
        writer.abort()
        env.close()
        raise
    # the episode in progress: kept with --all (it is what was recorded so far)
    if buf["actions"] and args.all and st["written"] < args.num_demos:
        finish(False, "manual", 0.0, True, "stopped")
    try:
        if st["written"] == 0:
            writer.abort()
            print(f"[record_demos] no demos recorded; nothing written to {args.output}", file=sys.stderr, flush=True)
            return 1
        path = writer.close()
        stats = write_dataset_statistics(path)
        print(f"[record_demos] wrote {st['written']} demos ({writer.total} steps) to {path}; statistics: {stats}", flush=True)
        return 130 if interrupted else 0
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main())
