"""PPO state teacher: scripts/train.py --algo ppo end to end on the CPU (2 envs, 2 iterations of 8 steps),
the policy file it writes, PPOActor / PPOTeacherPolicy on real State-task observations, and Isaac Lab's own
``isaaclab train --rl_library rsl_rl`` on our task."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

N, ITERS, STEPS = 2, 2, 8


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    from conftest import ROOT

    out = tmp_path_factory.mktemp("ppo") / "run"
    # 0.1 s episodes (5 steps): episodes finish inside 2 x 8 steps, so the curve's episode stats are exercised
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMNI_KIT_ACCEPT_EULA": "YES"}
    proc = subprocess.run([sys.executable, "scripts/train.py", "--algo", "ppo", "--device", "cpu", "--num_envs", str(N),
                           "--max_iterations", str(ITERS), f"agent.num_steps_per_env={STEPS}", "env.episode_length_s=0.1",
                           "agent.log_git=false", "--output", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out


def test_bad_override_is_one_clear_line(script_main, capsys, tmp_path):
    assert script_main("train.py", "--algo", "ppo", "agent.init_action=sideways", "--output", str(tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["[train] error: agent.init_action='sideways': must be one of home, zero"]
    assert script_main("train.py", "--algo", "ppo", "agent.learning_rat=1", "--output", str(tmp_path)) == 2
    assert "agent has no 'learning_rat'" in capsys.readouterr().err


def test_home_action_holds_the_home_pose():
    from openarm_vla.action_space import action_to_joint_targets, home_action
    from openarm_vla.robots import openarm_spec as spec

    a = home_action()
    q = action_to_joint_targets(a[None], torch.tensor(spec.ARM_LOWER), torch.tensor(spec.ARM_UPPER))[0]
    assert torch.allclose(q[:7], torch.tensor([spec.HOME_JOINT_POS[n] for n in spec.ARM_JOINTS]), atol=1e-5)
    assert torch.allclose(q[7:], torch.full((2,), spec.GRIPPER_OPEN))  # gripper open


@pytest.mark.sim
def test_train_writes_checkpoints_curve_and_policy(ppo_run):
    out = ppo_run
    assert (out / f"model_{ITERS - 1}.pt").is_file()  # rsl-rl's final checkpoint
    assert (out / "ppo_policy.pt").is_file()
    assert list(out.glob("events.out.tfevents.*")), "no TensorBoard events"
    assert (out / "train_curve.png").stat().st_size > 1000
    assert (out / "config.yaml").is_file()
    assert not list(out.glob(".*tmp*"))

    curve = json.loads((out / "train_curve.json").read_text())
    assert [r["iteration"] for r in curve] == list(range(ITERS))
    finished = 0
    for rec in curve:
        for key in ("mean_step_reward", "collect_time", "learn_time", "fps", "learning_rate", "action_std"):
            assert isinstance(rec[key], float) and math.isfinite(rec[key]), (key, rec)
        finished += rec["episodes"]
        if rec["episodes"]:
            assert math.isfinite(rec["mean_reward"]) and 1 <= rec["mean_episode_length"] <= 5
            assert 0.0 <= rec["success_rate"] <= 1.0
            assert sum(rec["failures"].values()) == rec["episodes"]
    assert finished > 0
    assert curve[-1]["env_steps"] == ITERS * N * STEPS


STATE_TERMS = ["joint_pos", "joint_vel", "tcp_pos", "box_pos", "box_quat", "tcp_to_box", "grasp_yaw_error", "pad_contact",
               "tcp_target_error", "actions"]
OBS_DIM, ACT_DIM = 40, 5


@pytest.mark.sim
def test_ppo_expert_rebuilds_the_actor_without_the_runner(ppo_run):
    from openarm_vla.policies.ppo_teacher import PPOActor as PPOExpert
    from openarm_vla.policies.ppo_teacher import PPOError

    expert = PPOExpert(ppo_run / "ppo_policy.pt")
    assert (expert.obs_dim, expert.action_dim, expert.task) == (OBS_DIM, ACT_DIM, "OpenArm-BoxGrasp-State")
    assert [n for n, _ in expert.obs_terms] == STATE_TERMS
    assert expert.meta["action_term"]["type"] == "top_down_delta" and expert.meta["action_term"]["pos_scale"] == 0.01
    # same weights as rsl-rl's final checkpoint
    ck = torch.load(ppo_run / f"model_{ITERS - 1}.pt", map_location="cpu", weights_only=False)
    for k, v in ck["actor_state_dict"].items():
        assert torch.equal(expert.actor.state_dict()[k], v), k
    obs = torch.randn(5, OBS_DIM) * 3
    a = expert.act(obs)
    assert a.shape == (5, ACT_DIM) and a.abs().max() <= 1.0
    assert torch.equal(a, expert.act({"policy": obs}))  # deterministic, dict or tensor
    assert PPOExpert(ppo_run).obs_dim == OBS_DIM  # the run directory works too
    with pytest.raises(PPOError, match=f"expected a \\[N, {OBS_DIM}\\] State observation"):
        expert.act(torch.zeros(5, OBS_DIM - 1))
    with pytest.raises(PPOError, match="rsl-rl model_.*pass the ppo_policy.pt"):
        PPOExpert(ppo_run / f"model_{ITERS - 1}.pt")
    with pytest.raises(PPOError, match="not found"):
        PPOExpert(ppo_run / "nope.pt")


@pytest.mark.sim
def test_ppo_expert_acts_on_the_state_env(ppo_run, env_factory):
    from openarm_vla.policies.ppo_teacher import PPOActor as PPOExpert
    from openarm_vla.policies.ppo_teacher import PPOTeacherPolicy as PPOTeacher
    from openarm_vla.tasks.box_grasp import mdp

    env = env_factory("OpenArm-BoxGrasp-State", num_envs=N, group_size=1)
    obs, _ = env.reset(seed=1)
    expert = PPOExpert(ppo_run / "ppo_policy.pt")
    for _ in range(3):
        a = expert.act(obs)
        assert a.shape == (N, ACT_DIM) and a.dtype == torch.float32 and a.abs().max() <= 1.0
        obs, *_ = env.step(a)

    # the teacher rebuilds the State vector from the terms by name (+ the env's last action)
    priv = {n: getattr(mdp, n)(env) for n in STATE_TERMS if n not in ("joint_pos", "actions")}
    priv["joint_pos"] = mdp.joint_state(env)
    teacher = PPOTeacher(expert, env)
    assert teacher.controller is None  # the env takes the teacher's own actions
    assert torch.allclose(teacher.state_obs(priv), obs["policy"], atol=1e-6)
    assert torch.allclose(teacher.act(priv), expert.act(obs), atol=1e-6)


@pytest.mark.sim
def test_teacher_drives_the_vla_task_through_the_top_down_controller(ppo_run, env_factory):
    """On the 8-DoF VLA task the teacher runs the State task's controller: its 8-DoF actions command exactly the
    joint targets the controller computed from the actor's top-down deltas."""
    from openarm_vla.action_space import action_to_joint_targets, joint_limits
    from openarm_vla.policies.ppo_teacher import load_teacher

    env = env_factory("OpenArm-BoxGrasp", num_envs=4, image_size=32, group_size=2)
    obs, _ = env.reset(seed=2)
    teacher = load_teacher(ppo_run / "ppo_policy.pt", env)
    assert teacher.controller is not None
    lo, hi = joint_limits(torch.zeros(1))
    home = obs["privileged"]["joint_pos"][:, :7].clone()
    for _ in range(3):
        assert teacher.state_obs(obs["privileged"]).shape == (4, OBS_DIM)
        a = teacher(obs)
        assert a.shape == (4, 8) and a.abs().max() <= 1.0
        assert torch.allclose(action_to_joint_targets(a, lo, hi), teacher.controller.joint_targets(), atol=1e-5)
        obs, *_ = env.step(a)
    assert not torch.allclose(teacher.controller.q, home, atol=1e-4)  # it moved the arm
    teacher.reset([0])
    assert teacher.needs_sync.tolist() == [True, False, False, False]
    env.reset()


ISAACLAB_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMNI_KIT_ACCEPT_EULA": "YES"}


@pytest.fixture(scope="module")
def isaaclab_run(tmp_path_factory) -> Path:
    """``isaaclab train --rl_library rsl_rl`` (Isaac Lab's unified entrypoint) on our task: 2 envs, 2 iterations."""
    cwd = tmp_path_factory.mktemp("isaaclab")
    exe = Path(sys.executable).with_name("isaaclab")
    proc = subprocess.run([str(exe), "train", "--rl_library", "rsl_rl", "--task", "OpenArm-BoxGrasp-State", "--num_envs", "2",
                           "--max_iterations", "2", "--device", "cpu", "env.episode_length_s=0.1"], cwd=cwd,
                          env=ISAACLAB_ENV, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cwd


@pytest.mark.sim
def test_isaaclab_own_trainer_runs_our_task(isaaclab_run):
    """Isaac Lab's trainer serializes our configs and trains; the success rate reaches rsl-rl's log."""
    runs = list(isaaclab_run.glob("logs/rsl_rl/openarm_box_grasp_ppo/*"))
    assert len(runs) == 1
    assert sorted(p.name for p in runs[0].glob("model_*.pt")) == ["model_0.pt", "model_1.pt"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    assert any("success_rate" in tag for tag in acc.Tags()["scalars"]), acc.Tags()["scalars"]


@pytest.mark.sim
def test_isaaclab_play_records_video_kit_less(isaaclab_run, tmp_path):
    """``isaaclab play --video`` on the -Play task writes an mp4 without Isaac Sim (the video camera's frames)."""
    from helpers import read_mp4_frames

    run = next(isaaclab_run.glob("logs/rsl_rl/openarm_box_grasp_ppo/*"))
    exe = Path(sys.executable).with_name("isaaclab")
    proc = subprocess.run([str(exe), "play", "--rl_library", "rsl_rl", "--task", "OpenArm-BoxGrasp-State-Play",
                           "--checkpoint", str(run / "model_1.pt"), "--video", "--video_length", "10", "--device", "cpu"],
                          cwd=isaaclab_run, env=ISAACLAB_ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    clips = list(run.glob("videos/play/*.mp4"))
    assert [c.name for c in clips] == ["openarm_model_1_0000.mp4"]
    assert read_mp4_frames(clips[0]) == 10


def test_the_bar_curve_joins_sittings_on_one_clock(tmp_path):
    """benchmarks/ppo/curve.py: a run continued in a second sitting from iteration 3's checkpoint joins the first
    on one clock: minutes since the first process started, the second sitting placed after the first's whole wall
    clock (its start-up counted), the first sitting's rows at and past iteration 3 (redone) dropped."""
    import importlib.util

    from conftest import ROOT
    from torch.utils.tensorboard import SummaryWriter

    spec = importlib.util.spec_from_file_location("ppo_curve", ROOT / "benchmarks" / "ppo" / "curve.py")
    curve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(curve)
    t0 = 1_800_000_000.0
    sittings = {"a": (t0, 300, range(0, 5)), "b": (t0 + 1000, 240, range(3, 8))}  # start, wall_s, iterations
    for name, (start, wall, its) in sittings.items():
        run = tmp_path / name
        with SummaryWriter(str(run)) as w:
            for i in its:  # the first iteration 60 s after the process started, then one every 30 s
                w.add_scalar("Metrics/success_rate", i / 10, i, walltime=start + 60 + 30 * (i - its[0]))
                w.add_scalar("Train/mean_reward", float(i), i, walltime=start + 60 + 30 * (i - its[0]))
        (run / "sitting.json").write_text(json.dumps({"start_epoch": start, "wall_s": wall, "checkpoint_in": "m.pt"}))
    curve.main([str(tmp_path / "a"), "--out", str(tmp_path / "out_a"), "--bar", "0.5"])
    curve.main([str(tmp_path / "b"), "--out", str(tmp_path / "out_b"), "--bar", "0.5",
                "--after", str(tmp_path / "out_a" / "curve.json")])
    got = json.loads((tmp_path / "out_b" / "curve.json").read_text())
    rows = [(r["iteration"], r["minutes"]) for r in got["curve"]]
    assert rows == [(0, 1.0), (1, 1.5), (2, 2.0),  # sitting a: 60 s of start-up, then 30 s an iteration
                    (3, 6.0), (4, 6.5), (5, 7.0), (6, 7.5), (7, 8.0)]  # b: after a's 5 minutes, its own 60 s
    s = got["summary"]
    assert s["wall_minutes"] == 9.0 and [x["first_iteration"] for x in s["sittings"]] == [0, 3]
    assert s["first_iteration_at_bar"] == {"iteration": 5, "minutes": 7.0}
    assert (tmp_path / "out_b" / "curve.png").stat().st_size > 1000
