"""Scripted expert (kinematics, IK, success in the real env), scripts/generate_demos.py (file layout,
dataset statistics) and scripts/replay_demos.py (exact replay from the recorded initial states).

The scripts run in subprocesses because Isaac Lab holds one simulation per process."""

import json
import math

import numpy as np
import pytest
import torch
from helpers import hand_pose

from openarm_vla.policies.scripted_expert import ScriptedExpert, ScriptedPolicy, yaw_from_quat_xyzw
from openarm_vla.robots import openarm_spec as spec
from openarm_vla.robots.kinematics import fk_jacobian, ik_dls
from openarm_vla.robots import kinematics as K

Q_HOME = torch.tensor([[spec.HOME_JOINT_POS[f"openarm_joint{i}"] for i in range(1, 8)]], dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# kinematics (no simulator)
# --------------------------------------------------------------------------------------------------


def test_fk_jacobian_matches_kinematics():
    torch.manual_seed(0)
    lo, hi = torch.tensor(spec.ARM_LOWER, dtype=torch.float64), torch.tensor(spec.ARM_UPPER, dtype=torch.float64)
    q = lo + torch.rand(5, 7, dtype=torch.float64) * (hi - lo)
    p, R, J = fk_jacobian(q)
    p_ref, R_ref = hand_pose(q, spec.JAW_CENTER_OFFSET)
    assert torch.allclose(p, p_ref, atol=1e-12) and torch.allclose(R, R_ref, atol=1e-12)
    eps = 1e-6
    for i in range(7):  # finite differences: dp = J_v dq, dR R^T = [J_w dq]x
        dq = torch.zeros(7, dtype=torch.float64)
        dq[i] = eps
        p2, R2 = hand_pose(q + dq, spec.JAW_CENTER_OFFSET)
        assert torch.allclose((p2 - p_ref) / eps, J[:, :3, i], atol=1e-5)
        W = ((R2 - R_ref) / eps) @ R_ref.transpose(1, 2)
        w = torch.stack([W[:, 2, 1], W[:, 0, 2], W[:, 1, 0]], dim=1)
        assert torch.allclose(w, J[:, 3:, i], atol=1e-5)


def test_ik_reaches_top_down_grasps():
    # box corners of the workspace, jaw 4 cm above the table, hand yaw pi + box yaw
    targets = torch.tensor([[0.24, -0.1, 0.04], [0.34, 0.1, 0.04], [0.29, 0.0, 0.11], [0.22, 0.05, 0.16]], dtype=torch.float64)
    yaws = torch.tensor([math.pi - 0.5, math.pi + 0.5, math.pi, math.pi], dtype=torch.float64)
    q, perr, rerr = ik_dls(Q_HOME.expand(4, 7), targets, K.down_rotation(yaws), iters=150)
    assert (perr < 1e-3).all(), perr
    assert (rerr < 1e-2).all(), rerr
    lo, hi = torch.tensor(spec.ARM_LOWER, dtype=torch.float64), torch.tensor(spec.ARM_UPPER, dtype=torch.float64)
    assert ((q >= lo - 1e-9) & (q <= hi + 1e-9)).all()


def test_yaw_from_quat_and_expert_action_shape():
    half = torch.tensor([0.3, -0.7]) / 2
    quat = torch.stack([torch.zeros(2), torch.zeros(2), torch.sin(half), torch.cos(half)], dim=1)  # xyzw about z
    assert torch.allclose(yaw_from_quat_xyzw(quat), torch.tensor([0.3, -0.7]), atol=1e-6)
    # the expert's first action from the home pose holds the home joints with the gripper open
    ex = ScriptedExpert(2, "cpu", verbose=False)
    p, _, _ = fk_jacobian(Q_HOME)
    obs = {
        "joint_pos": torch.cat([Q_HOME, torch.zeros(1, 1, dtype=torch.float64)], 1).float().repeat(2, 1),
        "box_pos": torch.tensor([[0.29, 0.0, 0.03], [0.25, -0.05, 0.03]]),
        "box_quat": torch.tensor([[0.0, 0.0, 0.0, 1.0]]).repeat(2, 1),
        "tcp_pos": p.float().repeat(2, 1),
    }
    a = ex.act(obs)
    assert a.shape == (2, 8) and a.dtype == torch.float32 and (a.abs() <= 1).all()
    assert (a[:, 7] == -1.0).all()  # open
    assert ex.fk_error < 1e-6
    assert ex.phase_names == ["approach", "approach"]


def test_generate_demos_ppo_checkpoint_missing(tmp_path, script_main, capsys):
    out = tmp_path / "d.hdf5"
    assert script_main("generate_demos.py", "--expert", f"ppo:{tmp_path / 'nope.pt'}", "--output", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0], err
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# the real env (kit-less Newton on the CPU)
# --------------------------------------------------------------------------------------------------


@pytest.mark.sim
def test_expert_succeeds(env_factory):
    """>= 4 of 5 episodes succeed (4 envs in groups of 2: two box variants)."""
    from openarm_vla.rollout import run_episodes

    env = env_factory()
    policy = ScriptedPolicy(env.num_envs, env.device, verbose=False)
    expert = policy.expert
    records = run_episodes(env, policy, num_episodes=5, progress=False, max_env_steps=900)
    assert expert.fk_error is not None and expert.fk_error < 1e-3  # analytic FK == simulator jaw centre
    successes = sum(r["success"] for r in records)
    assert successes >= 4, records
    assert all(r["steps"] < 250 for r in records if r["success"])


@pytest.mark.sim
def test_generate_and_replay_demos(tmp_path, run_script):
    from openarm_vla.data import load_dataset_statistics, read_episode, validate_file

    out = tmp_path / "demos.hdf5"
    r = run_script("generate_demos.py", "--num_demos", "2", "--num_envs", "2", "--image_size", "32", "--device", "cpu",
             "--seed", "1", "--output", str(out), "--no_progress")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "expert scripted:" in r.stdout and "finished episodes succeeded" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset_statistics.json", "demos.hdf5"]  # no temp file

    info = validate_file(out)
    assert info["num_demos"] == 2
    env_args = info["env_args"]
    assert env_args["env_name"] == "OpenArm-BoxGrasp" and env_args["instruction"] == "pick up the box"
    assert env_args["num_envs"] == 2 and env_args["image_size"] == 32
    gen = env_args["generation"]  # how fast it was made (the pipeline copies it into stages.json)
    assert gen["env_steps"] % 2 == 0 and gen["env_steps_per_s"] == pytest.approx(gen["env_steps"] / gen["loop_s"], rel=0.01)
    assert "env.step" in gen["parts"] and "expert" in gen["parts"]
    for k in range(2):
        ep = read_episode(out, k)
        T = int(ep["attrs"]["num_samples"])
        assert ep["attrs"]["success"] and ep["attrs"]["instruction"] == "pick up the box"
        assert ep["actions"].shape == (T, 8) and ep["actions"].dtype == np.float32
        assert np.abs(ep["actions"]).max() <= 1.0
        assert ep["obs"]["front_rgb"].shape == (T, 32, 32, 3) and ep["obs"]["front_rgb"].dtype == np.uint8
        assert ep["obs"]["joint_pos"].shape == (T, 8)
        for term, dim in [("joint_pos", 8), ("joint_vel", 8), ("box_pos", 3), ("box_quat", 4), ("tcp_pos", 3),
                          ("tcp_to_box", 3)]:
            assert ep["obs"][f"privileged_{term}"].shape == (T, dim)
        assert ep["states"]["articulation"]["robot"]["joint_position"].shape == (T, 9)
        assert ep["states"]["rigid_object"]["box"]["root_pose"].shape == (T, 7)
        init = ep["initial_state"]
        assert init["articulation"]["robot"]["joint_position"].shape == (1, 9)
        assert init["rigid_object"]["box"]["root_pose"].shape == (1, 7)
        assert init["rigid_object"]["box"]["mass"].shape == (1, 1)
        assert 0.05 <= float(init["rigid_object"]["box"]["mass"][0, 0]) <= 0.2
        # the first recorded step is the initial state
        np.testing.assert_allclose(ep["states"]["rigid_object"]["box"]["root_pose"][0], init["rigid_object"]["box"]["root_pose"][0])
    stats = load_dataset_statistics(tmp_path)
    assert len(stats["action"]["q01"]) == 8 and len(stats["proprio"]["q99"]) == 8
    assert stats["num_trajectories"] == 2

    video, results = tmp_path / "replay.mp4", tmp_path / "replay.json"
    r = run_script("replay_demos.py", str(out), "--device", "cpu", "--video", str(video), "--results", str(results), "--strict")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads(results.read_text())["summary"]
    assert summary["replayed"] == 2 and summary["reproduced"] == 2 and summary["replay_successes"] == 2
    assert summary["same_length_successes"] == 2
    assert summary["max_box_pos_dev"] < 1e-4 and summary["max_joint_dev"] < 1e-4  # deterministic on the CPU
    assert video.is_file() and video.stat().st_size > 0


@pytest.mark.sim
def test_demos_without_states_keep_each_episodes_own_initial_state(tmp_path, run_script):
    """--no_states captures the scene only when episodes end: a second-wave episode's initial state is still the
    state it started from (its box where its first observation saw it) and replays to the same outcome."""
    from openarm_vla.data import read_episode

    out = tmp_path / "demos.hdf5"
    r = run_script("generate_demos.py", "--num_demos", "3", "--num_envs", "2", "--image_size", "32", "--device", "cpu",
                   "--seed", "2", "--no_states", "--output", str(out), "--no_progress")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for k in range(3):
        ep = read_episode(out, k)
        assert "states" not in ep or not ep["states"]
        init = ep["initial_state"]["rigid_object"]["box"]["root_pose"][0]
        np.testing.assert_allclose(init[:3], ep["obs"]["privileged_box_pos"][0], atol=1e-5)
    results = tmp_path / "replay.json"
    r = run_script("replay_demos.py", str(out), "--device", "cpu", "--results", str(results))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert json.loads(results.read_text())["summary"]["reproduced"] == 3
