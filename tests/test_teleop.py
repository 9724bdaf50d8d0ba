"""Teleop: EE-delta -> 8-DoF action mapping (pure), the key map, and the GUI recorder driven by xdotool."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import hand_pose

from openarm_vla.action_space import action_to_joint_targets
from openarm_vla.robots import openarm_spec as spec
from openarm_vla.robots.ee_delta import EEDeltaController, ee_delta_to_action, rpy_to_matrix
from openarm_vla.teleop.keyboard import TeleopKeyboard

ROOT = Path(__file__).resolve().parents[1]
HOME = torch.tensor([[spec.HOME_JOINT_POS[j] for j in spec.ARM_JOINTS]])
LO, HI = torch.tensor(spec.ARM_LOWER), torch.tensor(spec.ARM_UPPER)


def _tcp_of_action(action: torch.Tensor):
    q = action_to_joint_targets(action, LO, HI)[:, :7]
    return hand_pose(q)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_translation_delta_moves_fk_tcp(axis):
    delta = torch.zeros(1, 6)
    delta[0, axis] = 0.02
    res = ee_delta_to_action(HOME, delta, closure=0.0)
    assert res.action.shape == (1, 8) and bool((res.action.abs() <= 1).all())
    p0, R0 = hand_pose(HOME)
    p1, R1 = _tcp_of_action(res.action)  # through the action encoding, as the env decodes it
    expected = p0.clone()
    expected[0, axis] += 0.02
    assert torch.allclose(p1, expected, atol=1e-3), (p1 - p0)
    assert (R1 - R0).abs().max() < 1e-2  # orientation held
    assert float(res.action[0, 7]) == pytest.approx(-1.0)  # gripper open


def test_rotation_delta_and_gripper():
    res = ee_delta_to_action(HOME, torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 0.2]]), closure=1.0)
    p0, R0 = hand_pose(HOME)
    p1, R1 = _tcp_of_action(res.action)
    assert torch.allclose(p1, p0, atol=1e-3)
    assert torch.allclose(R1, rpy_to_matrix(torch.tensor([[0.0, 0.0, 0.2]])) @ R0, atol=1e-2)
    assert float(res.action[0, 7]) == pytest.approx(1.0)  # closed


def test_controller_accumulates_and_clamps():
    ctrl = EEDeltaController(2)
    ctrl.reset(HOME.expand(2, 7))
    p0, _ = hand_pose(HOME)
    for _ in range(10):
        a = ctrl.step(torch.tensor([[0.004, 0, 0, 0, 0, 0], [0, 0, -0.004, 0, 0, 0]]))
    p, _ = _tcp_of_action(a)
    assert torch.allclose(p[0], p0[0] + torch.tensor([0.04, 0, 0]), atol=2e-3)
    assert torch.allclose(p[1], p0[0] + torch.tensor([0, 0, -0.04]), atol=2e-3)
    ctrl.toggle_gripper(env_ids=[1])
    assert ctrl.gripper_closed.tolist() == [False, True]
    for _ in range(100):  # push down into the table: the target stops at the workspace floor
        ctrl.step(torch.tensor([[0, 0, -0.01, 0, 0, 0]] * 2))
    assert float(ctrl.target_pos[:, 2].min()) >= ctrl.cfg.workspace_lo[2] - 1e-6


def test_keyboard_map_taps_and_events():
    kb = TeleopKeyboard(pos_step=0.004, rot_step=0.03)
    kb.press("w")
    kb.release("w")  # a tap shorter than a control step still moves one step
    kb.press("q")
    kb.press("K")
    kb.press("RETURN")
    delta, events = kb.advance()
    np.testing.assert_allclose(delta, [0.004, 0, 0.004, 0, 0, 0])
    assert events == ["toggle_gripper", "save"]
    delta, events = kb.advance()  # q still held, w was only tapped
    np.testing.assert_allclose(delta, [0, 0, 0.004, 0, 0, 0])
    assert events == []
    kb.press("c")
    kb.press("escape")
    delta, events = kb.advance()
    assert delta[5] == pytest.approx(0.03) and events == ["quit"]


def test_teleop_task_registered():
    import gymnasium as gym

    from openarm_vla import tasks
    from openarm_vla.tasks.factory import load_env_cfg

    assert "OpenArm-BoxGrasp-Teleop" in tasks.TASK_IDS and "OpenArm-BoxGrasp-Teleop" in gym.registry
    cfg = load_env_cfg("OpenArm-BoxGrasp-Teleop")
    assert cfg.scene.num_envs == 1 and cfg.teleop.pos_step > 0
    cfg.enable_viewer()
    assert cfg.sim.visualizer_cfgs[0].visualizer_type == "newton_gl"


# --------------------------------------------------------------------------------------------------
# GUI: the recorder in a real window under Xvfb, driven by xdotool as a person would
# --------------------------------------------------------------------------------------------------


def _xdo(display, *args, check=False):
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, capture_output=True,
                          text=True, timeout=30, check=check)


@pytest.mark.sim
def test_record_demos_gui_xvfb(tmp_path):
    missing = [t for t in ("Xvfb", "xdotool") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (apt-get install -y xvfb xdotool imagemagick)")
    display = f":{90 + os.getpid() % 9}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = tmp_path / "teleop.hdf5"
    log = open(tmp_path / "record.log", "w")
    proc = None
    try:
        time.sleep(1.0)
        assert xvfb.poll() is None, "Xvfb did not start"
        env = {**os.environ, "DISPLAY": display, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts/record_demos.py"), "--task", "OpenArm-BoxGrasp-Teleop",
             "--output", str(out), "--all", "--device", "cpu", "--image_size", "64", "--window", "1024x700",
             "--no_states", "--rate", "25"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        # wait for the window and the recording loop
        deadline, win = time.time() + 420, None
        while time.time() < deadline and proc.poll() is None:
            if "[record_demos] recording" in (tmp_path / "record.log").read_text():
                r = _xdo(display, "search", "--name", "Newton")
                if r.returncode == 0 and r.stdout.split():
                    win = r.stdout.split()[0]
                    break
            time.sleep(2.0)
        assert win, f"no viewer window; log:\n{(tmp_path / 'record.log').read_text()[-3000:]}"
        _xdo(display, "windowfocus", "--sync", win)
        time.sleep(2.0)  # the loop's first steps are slow (first render, first IK): taps in them would merge
        # Taps, not held keys: a tap moves exactly one control step (a tap inside a step still moves it), so the
        # motion is 1..N steps whatever the machine's speed. Holding a key for wall seconds moves up to 75 steps
        # (30 cm) at 50 Hz (CI saw the box knocked off the table) and moved one step on a loaded machine.
        # --rate 25 keeps the ~15 s of keys inside one 1000-step episode on any machine.
        for key, taps in (("e", 6), ("w", 4)):  # move down, then forward
            for _ in range(taps):
                _xdo(display, "key", key)
                time.sleep(0.4)
        _xdo(display, "key", "k")  # close the gripper
        time.sleep(1.5)
        shot = tmp_path / "teleop.png"
        if shutil.which("import"):
            subprocess.run(["import", "-window", "root", str(shot)], env=env, timeout=30)
            assert shot.is_file() and shot.stat().st_size > 1000
        _xdo(display, "key", "r")  # reset: ends episode 1 (saved with --all)
        time.sleep(3.0)
        _xdo(display, "key", "w")  # a little of episode 2
        time.sleep(2.0)
        _xdo(display, "key", "Escape")  # quit: episode 2 saved with --all, file written
        rc = proc.wait(timeout=180)
        text = (tmp_path / "record.log").read_text()
        assert rc == 0, text[-3000:]
        assert "wrote 2 demos" in text, text[-3000:]
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
        xvfb.terminate()
        xvfb.wait(timeout=10)

    import h5py

    from openarm_vla.data.hdf5_format import validate_file

    info = validate_file(out)
    assert info["num_demos"] == 2
    with h5py.File(out) as f:
        d0 = f["data/demo_0"]
        a = d0["actions"][:]
        assert a.shape[1] == 8 and np.abs(a).max() <= 1.0
        assert d0["obs/front_rgb"].dtype == np.uint8 and d0["obs/front_rgb"].shape[1:] == (64, 64, 3)
        assert d0["obs/joint_pos"].shape == (a.shape[0], 8)
        assert "initial_state" in d0 and d0.attrs["instruction"] == "pick up the box"
        assert not bool(d0.attrs["success"])
        assert a[-1, 7] == pytest.approx(1.0)  # K closed the gripper
        # the recorded joint targets moved the TCP down (E) and forward (W) from the start
        tcp = hand_pose(action_to_joint_targets(torch.from_numpy(a), LO, HI)[:, :7])[0]
        dz, dx = float(tcp[-1, 2] - tcp[0, 2]), float(tcp[-1, 0] - tcp[0, 0])
        assert -0.03 < dz < -0.005 and 0.003 < dx < 0.02, (dx, dz)  # 2..6 steps of 4 mm down, 1..4 forward
