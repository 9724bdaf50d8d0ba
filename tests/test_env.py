"""The OpenArm box-grasp task on kit-less Newton (CPU, 4 envs, 32 px camera)."""

from __future__ import annotations

import importlib.metadata
import math

import pytest
import torch

from helpers import hand_pose

from openarm_vla.robots import kinematics
from openarm_vla.robots import openarm_spec as spec

pytestmark = pytest.mark.sim

N, IMG, G = 4, 32, 2


@pytest.fixture
def env(env_factory):
    e = env_factory("OpenArm-BoxGrasp", num_envs=N, image_size=IMG, group_size=G)
    e.reset()
    return e


def hold_action(env) -> torch.Tensor:
    """The action that keeps every arm where it is (gripper open)."""
    from openarm_vla.action_space import joint_targets_to_action
    from openarm_vla.tasks.box_grasp.mdp.observations import joint_state

    js = joint_state(env)
    lo, hi = torch.tensor(spec.ARM_LOWER), torch.tensor(spec.ARM_UPPER)
    return joint_targets_to_action(js[:, :7], torch.zeros(env.num_envs), lo, hi)


def test_tasks_registered_and_listed_by_isaaclab():
    import gymnasium as gym

    import openarm_vla.tasks as tasks

    for task in ("OpenArm-BoxGrasp", "OpenArm-BoxGrasp-State", "OpenArm-BoxGrasp-Play", "OpenArm-BoxGrasp-State-Play"):
        assert task in tasks.TASK_IDS and task in gym.registry
    # trainer configs registered with the tasks, as Isaac Lab's own tasks do
    assert {"sft_cfg_entry_point", "grpo_cfg_entry_point"} <= set(gym.registry["OpenArm-BoxGrasp"].kwargs)
    assert "rsl_rl_cfg_entry_point" in gym.registry["OpenArm-BoxGrasp-State"].kwargs
    eps = [ep.value for ep in importlib.metadata.entry_points(group="isaaclab.tasks")]
    assert "openarm_vla.tasks" in eps


def test_bad_requests_give_one_clear_line():
    from openarm_vla.tasks.factory import TaskError, configure, load_cfgs, load_env_cfg, physics_preset

    with pytest.raises(TaskError, match=r"unknown task 'OpenArm-Nope'; openarm_vla tasks: OpenArm-BoxGrasp"):
        load_env_cfg("OpenArm-Nope")
    with pytest.raises(TaskError, match=r"physx.*needs Isaac Sim.*pip install"):
        physics_preset("physx")
    with pytest.raises(TaskError, match=r"override 'agent.lrr=1': agent has no 'lrr' \(has: .*lr,"):
        load_cfgs("OpenArm-BoxGrasp", "grpo_cfg_entry_point", overrides=["agent.lrr=1"])
    with pytest.raises(TaskError, match=r"override 'env.scene.nope=1': env.scene has no 'nope'"):
        load_env_cfg("OpenArm-BoxGrasp", overrides=["env.scene.nope=1"])
    cfg = load_env_cfg("OpenArm-BoxGrasp")
    cfg.scene.robot.spawn.usd_path = "/nonexistent/openarm.usda"
    with pytest.raises(TaskError, match=r"robot asset not found: /nonexistent/openarm.usda; rebuild it with `python scripts/build_assets.py`"):
        configure(cfg, device="cpu")


def test_success_settings_are_env_config_fields():
    from openarm_vla.tasks.factory import TaskError, load_env_cfg

    cfg = load_env_cfg("OpenArm-BoxGrasp", overrides=["env.success.hold_steps=20", "env.success.lift_height=0.12"])
    assert (cfg.success.hold_steps, cfg.success.lift_height, cfg.success.terminate) == (20, 0.12, True)
    assert not load_env_cfg("OpenArm-BoxGrasp-State").success.terminate
    with pytest.raises(TaskError, match=r"env.success has no 'hold'"):
        load_env_cfg("OpenArm-BoxGrasp", overrides=["env.success.hold=3"])


def test_physics_preset_fields_are_overridden_as_isaac_lab_does():
    """``env.sim.physics.<field>`` reaches the chosen physics preset (Isaac Lab resolves it first); a misspelt
    field is named with the preset's fields."""
    from openarm_vla.tasks.factory import TaskError, load_env_cfg

    cfg = load_env_cfg("OpenArm-BoxGrasp", overrides=["env.sim.physics.solver_cfg.iterations=30",
                                                      "env.sim.physics.solver_cfg.ls_parallel=true"])
    assert (cfg.sim.physics.solver_cfg.iterations, cfg.sim.physics.solver_cfg.ls_parallel) == (30, True)
    with pytest.raises(TaskError, match=r"env.sim.physics.solver_cfg has no 'iteratons' \(has: .*iterations,"):
        load_env_cfg("OpenArm-BoxGrasp", overrides=["env.sim.physics.solver_cfg.iteratons=30"])


def test_observation_shapes_and_dtypes(env):
    obs = env.observation_manager.compute()
    rgb, js = obs["policy"]["front_rgb"], obs["policy"]["joint_pos"]
    assert rgb.shape == (N, IMG, IMG, 3) and rgb.dtype == torch.uint8
    assert js.shape == (N, 8) and js.dtype == torch.float32
    assert env.action_manager.total_action_dim == 8
    # home pose: the arm at HOME_JOINT_POS, gripper open (closure 0), TCP 12 cm over the workspace
    assert torch.allclose(js[:, 7], torch.zeros(N), atol=1e-3)
    tcp = obs["privileged"]["tcp_pos"]
    assert torch.allclose(tcp, torch.tensor([[0.28, 0.006, 0.12]]).expand(N, 3), atol=2e-3)


def test_sim_tcp_matches_analytic_kinematics(env):
    """The USD we built and the FK of kinematics.md agree (the expert relies on it)."""
    from openarm_vla.tasks.box_grasp.mdp.observations import tcp_pos

    q = torch.tensor([[1.2, -0.5, -1.0, 1.1, 0.3, -0.2, -1.0]] * N)
    robot = env.scene["robot"]
    ids, _ = robot.find_joints(list(spec.ARM_JOINTS), preserve_order=True)
    robot.write_joint_position_to_sim_index(position=q, joint_ids=list(ids))
    env.sim.forward()
    env.scene.update(0.0)
    p, _ = hand_pose(q.double(), spec.JAW_CENTER_OFFSET)
    assert torch.allclose(tcp_pos(env).double(), p, atol=1e-3)


def test_camera_sees_robot_and_box(env):
    """The image is not uniform, and moving the box away changes box-coloured pixels."""
    from openarm_vla.tasks.box_grasp.box_grasp_env_cfg import BOX_COLORS
    from openarm_vla.tasks.box_grasp.mdp.events import grouped_variants

    a = hold_action(env)
    env.step(a)
    before = env.observation_manager.compute()["policy"]["front_rgb"][0].float()
    assert before.std() > 10.0
    box = env.scene["box"]
    pose = box.data.root_pose_w.torch.clone()
    pose[0, 2] += 5.0  # far above the camera's view
    box.write_root_pose_to_sim_index(root_pose=pose[:1], env_ids=torch.tensor([0]))
    env.sim.forward()
    env.scene.update(0.0)
    env.sim.render()
    env.scene["front_camera"].update(0.0, force_recompute=True)
    after = env.scene["front_camera"].data.output["rgb"].torch[0, ..., :3].float()
    changed = (before - after).abs().sum(-1) > 30
    assert changed.float().mean() > 0.005, "the box covers no pixels"
    color = torch.tensor(BOX_COLORS[grouped_variants(len(BOX_COLORS), N, G)[0]])
    seen = before[changed].mean(0)
    # same dominant colour channel as the box material (shading scales, it does not reorder)
    assert seen.argmax() == color.argmax() and seen.argmin() == color.argmin()
    env.reset()


def test_resting_and_unheld_lift_are_not_success(env):
    a = hold_action(env)
    for _ in range(5):
        env.step(a)
    assert not env.extras["success"].any()
    # lift a box 12 cm with the gripper far away (25 cm aside, clear of the open fingers): lifted but not held
    box = env.scene["box"]
    pose = box.data.root_pose_w.torch.clone()
    pose[:, 1] += 0.25
    pose[:, 2] += 0.12
    box.write_root_pose_to_sim_index(root_pose=pose, env_ids=torch.arange(N))
    env.step(a)
    monitor = env.termination_manager.get_term_cfg("success").func
    assert (monitor.lift > 0.10).all()
    assert not env.extras["success"].any()
    env.reset()


def pre_grasp_in_air(env, gap_margin: float = 0.006) -> torch.Tensor:
    """Pose every arm 17 cm up, pointing down, fingers open to the box width + ``gap_margin``; put each box
    (at rest) at its jaw centre. Returns the action that holds this pose with the gripper open."""
    from openarm_vla.action_space import joint_targets_to_action
    from openarm_vla.tasks.box_grasp.mdp.observations import box_size, tcp_pos

    lo, hi = torch.tensor(spec.ARM_LOWER), torch.tensor(spec.ARM_UPPER)
    q0 = env.observation_manager.compute()["privileged"]["joint_pos"][:, :7].double()
    up = torch.tensor([[0.28, 0.0, 0.17]] * N, dtype=torch.float64)
    down = kinematics.down_rotation(torch.full((N,), math.pi, dtype=torch.float64))
    q, _, _ = kinematics.ik_dls(q0, up, down, offset=spec.TCP_OFFSET, iters=100)
    width = box_size(env)[:, 1]  # the box spans y along the jaw (box yaw 0 = hand yaw pi)
    finger = (width + 0.0036 + gap_margin) / 2
    pre = joint_targets_to_action(q.float(), 1 - finger / spec.GRIPPER_OPEN, lo, hi)
    for _ in range(40):
        env.step(pre)
    box = env.scene["box"]
    pos = tcp_pos(env) + env.scene.env_origins
    quat = torch.tensor([[0.0, 0.0, 0.0, 1.0]] * N)
    box.write_root_pose_to_sim_index(root_pose=torch.cat([pos, quat], 1), env_ids=torch.arange(N))
    box.write_root_velocity_to_sim_index(root_velocity=torch.zeros(N, 6), env_ids=torch.arange(N))
    return pre


def monitor_of(env):
    return env.termination_manager.get_term_cfg("success").func


def test_box_held_between_closed_fingers_and_lifted_is_success(env):
    """A steady grasp 17 cm up: success once both pads' contact sensors have held the box for 10 steps."""
    monitor = monitor_of(env)
    assert monitor.uses_contact_sensors and env.cfg.success.hold_steps == 10
    close = pre_grasp_in_air(env).clone()
    close[:, 7] = 1.0
    succeeded = torch.zeros(N, dtype=torch.bool)
    held = torch.zeros(N, dtype=torch.long)
    for _ in range(30):
        env.step(close)
        assert (monitor.pad_forces()[monitor.grasped] >= env.cfg.success.min_pad_force).all()
        ep = env.extras.get("episodes")
        if ep is not None:
            succeeded[ep["env_ids"].cpu()] |= ep["success"].cpu()
            held[ep["env_ids"].cpu()] = ep["max_held_steps"].cpu()
    assert succeeded.all(), f"success per env: {succeeded.tolist()}"
    assert (held == 10).all(), held.tolist()  # the episode ends the step the hold completes
    env.reset()


def test_box_flung_up_through_the_jaw_is_not_success(env):
    """The box shoots up (12 m/s) from between the open pads while the gripper closes: the pads brush it
    (it leaves at ~5 m/s), it flies far above 10 cm, it is never held. (Up to ~5 m/s the pads catch it, and
    what follows is a grasp like any other.)"""
    monitor = monitor_of(env)
    close = pre_grasp_in_air(env, gap_margin=0.03).clone()
    box = env.scene["box"]
    box.write_root_velocity_to_sim_index(root_velocity=torch.tensor([[0.0, 0.0, 12.0, 0.0, 0.0, 0.0]] * N),
                                         env_ids=torch.arange(N))
    close[:, 7] = 1.0
    top = torch.zeros(N)
    for _ in range(12):
        env.step(close)
        assert env.extras["episodes"] is None
        top = torch.maximum(top, monitor.lift)
    assert (top > 0.5).all(), top  # far above the success height, with the gripper closing all along
    assert (monitor.tracker.max_held_steps == 0).all() and not monitor.success.any()
    env.reset()


def test_hold_that_slips_out_after_7_steps_is_dropped(env):
    """Held and lifted for 7 steps, then the gripper opens: no success, and the episode counts as dropped."""
    from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES

    monitor = monitor_of(env)
    pre = pre_grasp_in_air(env)
    close = pre.clone()
    close[:, 7] = 1.0
    for _ in range(15):
        env.step(close)
        if (monitor.held_steps >= 7).all():
            break
    assert (monitor.held_steps == 7).all(), monitor.held_steps.tolist()  # all envs in step (same poses)
    for _ in range(15):  # open: the box falls out
        env.step(pre)
        assert env.extras["episodes"] is None
    assert (monitor.held_steps == 0).all() and (monitor.lift < 0.05).all()
    env.episode_length_buf[:] = env.max_episode_length - 1  # end the episodes now (time-out)
    _, _, _, truncated, extras = env.step(pre)
    ep = extras["episodes"]
    assert truncated.all() and not ep["success"].any()
    assert {FAILURE_CATEGORIES[i] for i in ep["failure"].tolist()} == {"dropped"}
    assert (ep["max_held_steps"] == 7).all()


def test_timeout_at_400_steps_with_record(env):
    assert env.max_episode_length == 400
    a = hold_action(env)
    env.episode_length_buf[:] = 398
    _, _, terminated, truncated, extras = env.step(a)
    assert not truncated.any()
    _, _, terminated, truncated, extras = env.step(a)
    assert truncated.all() and not terminated.any()
    ep = extras["episodes"]
    assert (ep["steps"] == 400).all() and not ep["success"].any()
    from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES

    assert {FAILURE_CATEGORIES[i] for i in ep["failure"].tolist()} == {"timeout"}


def test_group_reset_identical_within_groups_different_across(env):
    from openarm_vla.tasks.box_grasp.scene_state import reset_groups

    obs = reset_groups(env, group_size=G)
    box = obs["privileged"]["box_pos"]
    quat = obs["privileged"]["box_quat"]
    mass = env.scene["box"].data.body_mass.torch[:, 0]
    inertia = env.scene["box"].data.body_inertia.torch.reshape(N, -1)
    js = obs["policy"]["joint_pos"]
    for k in range(0, N, G):
        for j in range(k + 1, k + G):
            assert torch.allclose(box[j], box[k], atol=1e-5) and torch.allclose(quat[j], quat[k], atol=1e-5)
            assert torch.allclose(js[j], js[k], atol=1e-5) and torch.isclose(mass[j], mass[k])
            assert torch.allclose(inertia[j], inertia[k])
    assert not torch.allclose(box[0], box[G], atol=1e-3)
    # the first step from identical states renders identical images within a group
    o, *_ = env.step(hold_action(env))
    rgb = o["policy"]["front_rgb"].float()
    assert (rgb[1] - rgb[0]).abs().max() < 2.0
    assert (rgb[G] - rgb[0]).abs().max() > 10.0
    env.reset()


def test_state_task_has_privileged_obs_and_dense_reward(env_factory):
    e = env_factory("OpenArm-BoxGrasp-State", num_envs=2, image_size=None, group_size=1)
    obs, _ = e.reset()
    assert "front_camera" not in e.scene.sensors
    # 8 joint state + 8 joint vel + 3 tcp + 3 box pos + 4 box quat + 3 tcp-to-box + 1 yaw error + 2 pad contact
    # + 3 tcp target error + 5 last action
    assert obs["policy"].shape == (2, 40)
    assert e.action_manager.total_action_dim == 5 and not e.cfg.success.terminate
    _, reward, *_ = e.step(torch.zeros(2, 5))  # the top-down deltas hold the pose at 0
    assert (reward > 0).all(), "the reach shaping term rewards every step"
    assert set(e.reward_manager.active_terms) >= {"reach", "grasp", "lift", "hold", "success"}
    with pytest.raises(ValueError, match="expected: 5, received: 8"):  # an 8-DoF action is refused
        e.step(torch.zeros(2, 8))


def test_compile_env_step_takes_one_step_and_draws_no_random_numbers(env):
    """GRPO and generate_demos take this step before their timed loops: it must not shift their random streams."""
    from openarm_vla.tasks.factory import compile_env_step

    rng, steps, counter = torch.get_rng_state(), env.episode_length_buf.clone(), env.common_step_counter
    assert compile_env_step(env) > 0
    assert env.common_step_counter == counter + 1 and torch.equal(env.episode_length_buf, steps + 1)
    assert torch.equal(torch.get_rng_state(), rng)
    env.reset()
