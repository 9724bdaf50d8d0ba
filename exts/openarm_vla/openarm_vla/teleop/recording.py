"""Teleop recording: a person drives the arm through end-effector deltas; episodes go to the HDF5 layout.

A person is not a policy of :mod:`openarm_vla.rollout` (the loop waits for the keyboard, resets on request,
discards or saves by key), so this loop steps the env itself; what it records goes through the same
:class:`~openarm_vla.data.recorder.DemoRecorder` and episode decoding as the scripted expert's demos.

Inputs: the keyboard of the Newton GL viewer window (kit-less, :mod:`.keyboard`), or with Isaac Sim Isaac
Lab's own Se3Keyboard / Se3SpaceMouse (:class:`IsaacLabDeviceInput`, same interface).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from openarm_vla.data.recorder import DemoRecorder
from openarm_vla.rollout import episode_records
from openarm_vla.tasks.box_grasp.mdp.variation import instructions

from openarm_vla.robots.ee_delta import EEDeltaCfg, EEDeltaController


class Quit(Exception):
    """The person asked to stop (Esc, window closed)."""


class IsaacLabDeviceInput:
    """Isaac Lab's Se3Keyboard / Se3SpaceMouse (need Isaac Sim's Kit) behind the TeleopKeyboard interface."""

    def __init__(self, kind: str, pos_step: float, rot_step: float):
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


class TeleopRecorder:
    """The recording loop of one env: keys -> EE delta -> IK -> 8-DoF action -> env.step -> DemoRecorder."""

    def __init__(self, env, keys, recorder: DemoRecorder, keep_all: bool, ik_iters: int, rate: float = 50.0,
                 viewer=None, log=print):
        self.env, self.keys, self.rec, self.keep_all = env, keys, recorder, keep_all
        self.ctrl = EEDeltaController(1, env.device, EEDeltaCfg(ik_iters=ik_iters))
        self.period = 1.0 / rate if rate > 0 else 0.0
        self.viewer, self.log = viewer, log
        self.episode, self.steps, self.last = 0, 0, ""

    def status(self) -> list[str]:
        grip = "closed" if bool(self.ctrl.gripper_closed[0]) else "open"
        p = self.ctrl.target_pos[0].tolist()
        return [
            f"Task: {instructions(self.env)[0]}",
            f"Episode {self.episode}  step {self.steps}/{int(self.env.max_episode_length)}",
            f"Saved demos: {self.rec.written}/{self.rec.num_demos}  ({'all' if self.keep_all else 'successful only'})",
            f"Gripper: {grip}   TCP: {p[0]:+.3f} {p[1]:+.3f} {p[2]:+.3f}",
            self.last,
        ]

    def _new_episode(self, obs, restart: bool) -> None:
        self.obs = obs
        jp = obs["policy"]["joint_pos"]  # measured after the reset: 7 arm joints + gripper closure
        self.ctrl.reset(jp[:, :7], (jp[:, 7] > 0.5).float())
        self.keys.clear()
        if restart:
            self.rec.restart(0)
        self.episode += 1
        self.steps = 0

    def _finish(self, rec: dict, keep: bool, why: str) -> None:
        if keep and self.rec.write(0, rec) is not None:
            self.last = f"episode {self.episode}: {why}, saved as demo_{self.rec.written - 1}"
        else:
            reason = "empty" if not self.rec.buffered(0) else ("discarded" if why == "discarded" else "not saved (not successful; --all keeps it)")
            self.last = f"episode {self.episode}: {why}, {reason}"
        self.log(f"[record_demos] {self.last}")

    def run(self, seed: int) -> bool:
        """Record until ``num_demos`` are saved or the person quits; returns True if interrupted (Ctrl-C)."""
        obs, _ = self.env.reset(seed=seed)
        self.rec.begin(obs)
        self._new_episode(obs, restart=False)
        manual = {"success": False, "failure": "manual", "max_lift": 0.0}
        try:
            while self.rec.written < self.rec.num_demos:
                t0 = time.perf_counter()
                v = self.viewer
                if v is not None and (v.is_closed or not v.is_running() or v not in self.env.sim.visualizers):
                    raise Quit
                delta, events = self.keys.advance()
                if v is not None and v.consume_reset_request():  # the viewer's own "Reset Episode" button
                    events.append("reset")
                handled = False
                for ev in events:
                    if ev == "toggle_gripper":
                        self.ctrl.toggle_gripper()
                    elif ev == "quit":
                        raise Quit
                    elif ev in ("reset", "discard", "save"):
                        keep = {"reset": self.keep_all, "discard": False, "save": True}[ev]
                        self._finish(manual, keep, {"reset": "reset", "discard": "discarded", "save": "saved by key"}[ev])
                        obs, _ = self.env.reset()
                        self._new_episode(obs, restart=True)
                        handled = True
                        break
                if not handled:
                    action = self.ctrl.step(torch.as_tensor(delta, device=self.env.device).unsqueeze(0))
                    self.rec.add(self.obs, action)
                    self.obs, _r, _term, _trunc, extras = self.env.step(action)
                    self.steps += 1
                    self.rec.end_step([])  # the state after the step is the next step's pre-step state
                    for ep in episode_records(extras):  # the env auto-reset: save, start the next episode
                        self._finish(ep, ep["success"] or self.keep_all, "success" if ep["success"] else ep["failure"])
                        self._new_episode(self.obs, restart=True)
                if self.period:
                    time.sleep(max(0.0, self.period - (time.perf_counter() - t0)))
        except Quit:
            self.log("[record_demos] quit")
        except KeyboardInterrupt:
            self.log("[record_demos] interrupted")
            self._stop(manual)
            return True
        self._stop(manual)
        return False

    def _stop(self, manual: dict) -> None:
        # the episode in progress: kept with --all (it is what was recorded so far)
        if self.rec.buffered(0) and self.keep_all and self.rec.written < self.rec.num_demos:
            self._finish(manual, True, "stopped")


def record_teleop_demos(env, tc, task: str, output, input_name: str, num_demos: int, keep_all: bool = False,
                        store_states: bool = True, rate: float = 50.0, seed: int = 0, image_size: int | None = None,
                        kitless: bool = True) -> int:
    """Record demos by hand in ``env`` (a teleop task, its viewer open) into the HDF5 file ``output``; returns the
    exit status (0 saved, 1 none recorded, 130 interrupted after saving). ``tc``: the task's teleop settings. The
    caller closes ``env``."""
    import sys

    from openarm_vla.data.hdf5_format import DemoWriter
    from openarm_vla.data.statistics import write_dataset_statistics
    from openarm_vla.errors import TaskError

    from .keyboard import TeleopKeyboard, attach_to_newton_viewer

    viz = next((v for v in env.sim.visualizers if getattr(v, "_viewer", None) is not None), None) if kitless else None
    if kitless and viz is None:
        raise TaskError("the Newton GL viewer window did not open (see the log above); is the display usable?")
    keys = TeleopKeyboard(pos_step=tc.pos_step, rot_step=tc.rot_step) if kitless else IsaacLabDeviceInput(input_name, tc.pos_step, tc.rot_step)
    env_args = {"num_envs": 1, "seed": seed, "device": str(env.device), "image_size": image_size,
                "expert": f"teleop_{input_name}", "success_only": not keep_all, "control_dt": float(env.step_dt),
                "max_episode_steps": int(env.max_episode_length),
                "teleop": {"pos_step": tc.pos_step, "rot_step": tc.rot_step, "input": input_name}}
    writer = DemoWriter(output, env_name=task, instruction=env.cfg.instruction, env_args=env_args)
    rec = DemoRecorder(env, writer, num_demos, success_only=not keep_all, store_states=store_states,
                       seed=seed, expert=f"teleop_{input_name}")
    session = TeleopRecorder(env, keys, rec, keep_all=keep_all, ik_iters=tc.ik_iters, rate=rate, viewer=viz,
                             log=lambda m: print(m, flush=True))
    if viz is not None:
        attach_to_newton_viewer(viz._viewer, keys, session.status, title="Teleop recording")
    print("[record_demos] recording; keys: W/S A/D Q/E move, Z/X T/G C/V rotate, K gripper, R reset, "
          "Backspace discard, Enter save, Esc quit", flush=True)
    try:
        interrupted = session.run(seed)
    except BaseException:
        writer.abort()
        raise
    if rec.written == 0:
        writer.abort()
        print(f"[record_demos] no demos recorded; nothing written to {output}", file=sys.stderr, flush=True)
        return 1
    path = writer.close()
    stats = write_dataset_statistics(path)
    print(f"[record_demos] wrote {rec.written} demos ({writer.total} steps) to {path}; statistics: {stats}", flush=True)
    return 130 if interrupted else 0


