"""OpenArm-BoxGrasp-DR (issue 24): scene variation per group, instructions that name the target, distractors,
wrong_object, the variation in the scene state, the OOD knobs; and the base task without any of it.

Sim tests build the DR env once (4 envs in groups of 2, 64 px, 2-3 distractors so that they are on the table)."""

from __future__ import annotations

import pytest
import torch

DR = "OpenArm-BoxGrasp-DR"
N, G, IMG = 4, 2, 64


def _dr_env(key: str, overrides: list[str]):
    """The DR env with ``env.variation`` overrides, kept in conftest's cache (one simulation per process)."""
    import conftest

    from openarm_vla.tasks.factory import load_env_cfg, make_env

    if key not in conftest._ENVS:
        conftest.close_envs()
        cfg = load_env_cfg(DR, overrides=overrides)
        conftest._ENVS[key] = make_env(DR, cfg=cfg, num_envs=N, device="cpu", image_size=IMG, group_size=G)
    return conftest._ENVS[key]


@pytest.fixture
def dr_env():
    return _dr_env("dr", ["env.variation.num_distractors=[2,3]", "env.variation.distractor_slots=4"])  # 4: live tests


def raw_rgb(env) -> torch.Tensor:
    """The rendered image before the policy term's light gain and noise."""
    return env.scene["front_camera"].data.output["rgb"].torch[..., :3].float()


# ------------------------------------------------------------------------------------------- configs (no simulator)

def test_shade_is_gain_then_noise_rounded_and_clamped():
    """The policy image's emulated light, by hand: 100 x (1.2, 1.0, 0.5) = (120, 100, 50); 250 x 1.2 = 300 -> 255;
    noise of std 4 has std ~4 and mean ~0 and leaves the input untouched."""
    from openarm_vla.tasks.box_grasp.mdp.variation import shade

    img = torch.tensor([[[[100, 100, 100], [250, 10, 0]]], [[[100, 100, 100], [250, 10, 0]]]], dtype=torch.uint8)
    out = shade(img, torch.tensor([[1.2, 1.0, 0.5], [1.0, 1.0, 1.0]]), 0.0)
    assert out.dtype == torch.uint8 and out[0].tolist() == [[[120, 100, 50], [255, 10, 0]]] and torch.equal(out[1], img[1])
    assert torch.equal(shade(img, None, 0.0), img)
    flat = torch.full((64, 32, 32, 3), 128, dtype=torch.uint8)
    torch.manual_seed(0)
    noisy = shade(flat, None, 4.0).float() - 128
    assert abs(noisy.mean().item()) < 0.05 and abs(noisy.std().item() - 4.0) < 0.05 and flat.eq(128).all()




def test_fused_shade_is_the_eager_one():
    """The GPU path's compiled shade (compiled here on the CPU): the same bytes without noise, noise of the same
    std with it, and the input untouched."""
    from openarm_vla.tasks.box_grasp.mdp.variation import _fused_shade, shade

    torch.manual_seed(0)
    img = torch.randint(0, 256, (16, 24, 24, 3), dtype=torch.uint8)
    gain = torch.rand(16, 3) + 0.5
    before = img.clone()
    fused = _fused_shade()
    assert torch.equal(fused(img, gain, 0.0), shade(img, gain, 0.0)) and torch.equal(fused(img, None, 0.0), img)
    flat = torch.full((16, 24, 24, 3), 128, dtype=torch.uint8)
    noise = fused(flat, None, 4.0).float() - 128
    assert abs(noise.std().item() - 4.0) < 0.1 and abs(noise.mean().item()) < 0.1 and torch.equal(img, before)


def test_base_task_draws_nothing_and_dr_task_is_registered():
    import gymnasium as gym

    from openarm_vla.tasks import TASK_IDS
    from openarm_vla.tasks.box_grasp import mdp
    from openarm_vla.tasks.box_grasp.box_grasp_env_cfg import BOX_SIZES, BOX_WORKSPACE
    from openarm_vla.tasks.factory import configure, load_env_cfg

    for task in (DR, f"{DR}-Play"):
        assert task in TASK_IDS and task in gym.registry
        assert {"sft_cfg_entry_point", "grpo_cfg_entry_point"} <= set(gym.registry[task].kwargs)
    base = configure(load_env_cfg("OpenArm-BoxGrasp"), num_envs=N, device="cpu", group_size=G)
    assert not base.variation.draws_anything()
    assert getattr(base.events, "scene_variation", None) is None and not hasattr(base.scene, "distractor_0")
    assert base.observations.policy.front_rgb.func is mdp.image_rgb
    p = base.events.reset_box.params
    assert (p["x_range"], p["y_range"], p["sizes"]) == (BOX_WORKSPACE["x"], BOX_WORKSPACE["y"], [tuple(s) for s in BOX_SIZES])
    dr = configure(load_env_cfg(DR), num_envs=N, device="cpu", group_size=G)
    assert dr.variation.draws_anything() and dr.events.scene_variation is not None
    slots = [getattr(dr.scene, f"distractor_{i}", None) is not None for i in range(mdp.MAX_DISTRACTORS)]
    assert dr.variation.num_distractors == (0, 3) and slots == [True, True, True, False]  # as many as it draws
    more = configure(load_env_cfg(DR, overrides=["env.variation.distractor_slots=4"]), num_envs=N, device="cpu")
    assert all(getattr(more.scene, f"distractor_{i}", None) is not None for i in range(mdp.MAX_DISTRACTORS))
    assert dr.observations.policy.front_rgb.func is mdp.policy_image
    # the OOD knobs reach the events
    ood = configure(load_env_cfg(DR, overrides=["env.variation.box_x_range=[0.36,0.4]", "env.variation.move_box_at_step=7",
                                                "env.variation.arm_start_offset=0.1"]), num_envs=N, device="cpu")
    assert ood.events.reset_box.params["x_range"] == (0.36, 0.4)
    assert ood.events.move_box.params["step"] == 7 and ood.events.arm_start_offset.params["max_offset"] == 0.1


@pytest.mark.parametrize("overrides, message", [
    (["env.variation.num_distractors=[0,9]"], r"env.variation.num_distractors\[1\]=9: must be in \[0, 4\]"),
    (["env.variation.num_distractors=[3,1]"], r"num_distractors\[0\] <= num_distractors\[1\]"),
    (["env.variation.distractor_slots=2"], r"a slot for every distractor drawn"),
    (["env.variation.light_direction_deg=200"], r"light_direction_deg=200: must be in \[0, 180\] \(a tilt of the renderer's one light"),
    (["env.variation.box_sizes=[[0.05,0.05,0.5]]"], r"box_sizes.*must be in \[0.02, 0.12\]"),
    (["env.variation.box_x_range=[0.4,0.3]"], r"box_x_range\[0\] <= box_x_range\[1\]"),
    (["env.variation.box_colors={}"], r"distractors need a colour name other than the target's"),
    (["env.variation.box_colors={}", "env.variation.num_distractors=[0,0]"], r"templates naming \{color\} need box_colors"),
    (["env.variation.absent_color_instruction=true", "env.variation.num_distractors=[0,4]", "env.variation.box_colors.red=null"],
     r"the absent colour must differ from the target's and every distractor's"),
    (["env.variation.box_colors.red=[1,0,5]"], r"env.variation.box_colors.red=\[1, 0, 5\]: must be 3 values in \[0, 1\]"),
    (["env.variation.camera_pos_jitter=-0.1"], r"camera_pos_jitter=-0.1: must be in \[0, 0.2\]"),
])
def test_bad_variation_values_give_one_clear_line(overrides, message):
    from openarm_vla.errors import ConfigError
    from openarm_vla.tasks.factory import configure, load_env_cfg

    with pytest.raises(ConfigError, match=message) as e:
        cfg = load_env_cfg(DR, overrides=overrides)
        cfg.variation.box_colors = {k: v for k, v in cfg.variation.box_colors.items() if v is not None}
        configure(cfg, num_envs=N, device="cpu")
    assert all("\n" not in p for p in e.value.problems) and len(e.value.problems) <= 2, e.value.problems


# ------------------------------------------------------------------------------------------- simulator



@pytest.mark.sim
def test_groups_share_visuals_and_instruction(dr_env):
    from openarm_vla.tasks.box_grasp import mdp
    from openarm_vla.tasks.box_grasp.scene_state import capture_states, reset_groups

    env = dr_env
    torch.manual_seed(0)
    obs = reset_groups(env, G)
    term = mdp.scene_variation(env)
    for k, v in capture_states(env)["variation"].items():
        assert torch.equal(v[0], v[1]) and torch.equal(v[2], v[3]), k
    instr = mdp.instructions(env)
    assert instr[0] == instr[1] and instr[2] == instr[3]
    for e in range(N):  # the instruction names the target's colour; distractors have other colours
        target = term.values["target_color"][e]
        assert term.names[target] in instr[e]
        n_d = int(term.values["num_distractors"][e])
        assert 2 <= n_d <= 3 and (term.values["distractor_color"][e, :n_d] != target).all()
    raw = raw_rgb(env)
    assert (raw[0] - raw[1]).abs().mean() < 1.0 and (raw[2] - raw[3]).abs().mean() < 1.0
    # the policy image is the rendered one with the group's light gain and pixel noise
    img = obs["policy"]["front_rgb"].float()
    gain = term.values["light"][:, :1] / mdp.variation.NOMINAL_LIGHT * term.values["light"][:, 1:]
    expect = (raw * gain[:, None, None, :]).clamp(0, 255)
    noise = img - expect
    assert noise.abs().mean() < 6 and 2.0 < noise.std() < 6.0


@pytest.mark.sim
def test_restored_state_reproduces_colours_camera_and_instruction(dr_env):
    from openarm_vla.tasks.box_grasp import mdp
    from openarm_vla.tasks.box_grasp.scene_state import capture_states, held_out_states, reset_to_states, select_states

    env = dr_env
    ids = torch.arange(N)
    torch.manual_seed(1)
    env.reset()
    st = select_states(capture_states(env), [0, 0, 0, 0])  # one scene in every env
    var = st["variation"]
    names = mdp.scene_variation(env).names
    var["table_rgb"][:2] = torch.tensor([0.80, 0.80, 0.78])
    var["table_rgb"][2:] = torch.tensor([0.10, 0.55, 0.10])
    var["target_color"][:2], var["target_color"][2:] = names.index("red"), names.index("blue")
    var["named_color"][:] = var["target_color"]
    var["camera_offset"][:] = 0.0
    reset_to_states(env, st, ids)
    raw = raw_rgb(env)
    assert (raw[0] - raw[1]).abs().mean() < 1.0 and (raw[2] - raw[3]).abs().mean() < 1.0
    corner = raw[:, -3:, :3].mean(dim=(1, 2))  # bottom-left corner: table
    assert corner[0, 0] > corner[2, 0] + 40 and corner[2, 1] > corner[2, 0] + 20, corner  # grey-white vs green
    assert (raw[0] - raw[2]).abs().amax(dim=-1).gt(30).float().mean() > 0.2  # table and box recoloured
    instr = mdp.instructions(env)
    assert "red" in instr[0] and "blue" in instr[2]
    back = capture_states(env)["variation"]
    for k in var:
        assert torch.equal(back[k], var[k].to(back[k].dtype)), k
    # the camera offset moves the view: same scene and colours, group 1's camera 2 cm / 3 deg off
    var["table_rgb"][2:], var["target_color"][2:] = var["table_rgb"][0], var["target_color"][0]
    var["named_color"][:] = var["target_color"]
    var["camera_offset"][2:] = torch.tensor([0.02, -0.02, 0.02, 0.05, 0.05, 0.05])
    reset_to_states(env, st, ids)
    raw = raw_rgb(env)
    assert (raw[0] - raw[1]).abs().mean() < 1.0 and (raw[0] - raw[2]).abs().mean() > 3.0
    # light_direction_deg tilts the renderer's one light (every env): the same scene renders differently
    from openarm_vla.tasks.box_grasp.mdp.variation import light_directions, turn_light

    before = raw.clone()
    default = turn_light(env.scene["front_camera"], 60.0)
    try:
        reset_to_states(env, st, ids)
        turned = raw_rgb(env)
    finally:
        light_directions(env.scene["front_camera"]).copy_(default)
    assert (turned - before).abs().mean() > 2.0
    reset_to_states(env, st, ids)
    assert (raw_rgb(env) - before).abs().mean() < 0.5
    # held-out banks: the same seed draws the same visuals and instructions; restoring one reproduces them
    bank = held_out_states(env, ids, seed=5)
    again = held_out_states(env, ids, seed=5)
    for k in bank["variation"]:
        assert torch.equal(bank["variation"][k], again["variation"][k]), k
    env.reset()
    reset_to_states(env, bank, ids)
    want = held_out_states(env, ids, seed=5)
    reset_to_states(env, bank, ids)
    assert mdp.instructions(env) == [mdp.scene_variation(env).v.instruction_templates[i].format(
        color=names[c]) for i, c in zip(want["variation"]["instruction"].tolist(), want["variation"]["named_color"].tolist())]


@pytest.mark.sim
def test_closing_on_a_distractor_is_wrong_object(dr_env):
    """Distractor 0 put in env 0's open jaw (turned square to it), the gripper commanded closed: the fingers stop on
    the fixed box, the geometric grasp test sees it, and the episode ends as wrong_object in env 0 only."""
    from isaaclab.utils.math import quat_apply

    from openarm_vla.action_space import joint_state_to_action
    from openarm_vla.robots import openarm_spec as spec
    from openarm_vla.tasks.box_grasp import mdp
    from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES

    env = dr_env
    env.reset()
    hand_p, hand_q = mdp.hand_pose_w(env)
    jaw = hand_p[:1] + quat_apply(hand_q[:1], torch.tensor([spec.JAW_CENTER_OFFSET]))
    d = env.scene["distractor_0"]
    d.write_root_pose_to_sim_index(root_pose=torch.cat([jaw, hand_q[:1]], dim=1), env_ids=torch.tensor([0]))
    act = joint_state_to_action(mdp.joint_state(env))
    act[:, 7] = 1.0  # close
    ends = []
    for _ in range(40):
        _, _, terminated, _, _ = env.step(act)
        if terminated.any():
            ends.append((terminated.clone(), env.extras["episodes"]))
            break
    assert ends, "closing on the distractor did not end the episode"
    terminated, ep = ends[0]
    assert bool(terminated[0]) and not terminated[1:].any()
    assert ep["env_ids"].tolist() == [0]
    assert FAILURE_CATEGORIES[int(ep["failure"][0])] == "wrong_object" and not bool(ep["success"][0])
    assert FAILURE_CATEGORIES.index("wrong_object") == 6  # appended: the old codes keep their numbers


def test_distractors_are_fixed_and_cost_the_solver_nothing(dr_env):
    """Distractors are fixed to the world (MuJoCo mocap bodies): the solver has the degrees of freedom of the base
    scene (the arm's 9, the box's 6) however many slots are spawned; a reset puts the used ones on the table and
    the rest under it, where they stay; boxes on the table add no contacts (nothing rests on them)."""
    from isaaclab_newton.physics import NewtonManager

    from openarm_vla.action_space import joint_state_to_action
    from openarm_vla.tasks.box_grasp import mdp

    env, v = dr_env, dr_env.cfg.variation
    old = tuple(v.num_distractors)
    solver = NewtonManager._solver
    assert solver.mj_model.nv == 15 and solver.mj_model.nmocap == 1 + 4  # the robot's fixed base and 4 slots

    def after_settling(k: int) -> tuple[float, torch.Tensor]:
        v.num_distractors = (k, k)
        env.reset()
        z0 = torch.stack([env.scene[f"distractor_{i}"].data.root_pos_w.torch[:, 2] for i in range(4)], dim=1)
        for _ in range(10):
            env.step(joint_state_to_action(mdp.joint_state(env)))
        z = torch.stack([env.scene[f"distractor_{i}"].data.root_pos_w.torch[:, 2] for i in range(4)], dim=1)
        assert torch.equal(z, z0)  # fixed: nothing moved them
        return float(solver.mjw_data.nefc.numpy().mean()), z - env.scene.env_origins[:, 2:3]

    try:
        none, z0 = after_settling(0)
        three, z3 = after_settling(3)
    finally:
        v.num_distractors = old
        env.reset()
    parked = torch.tensor([mdp.parked_distractor_pos(i, env.scene[f"distractor_{i}"].cfg.spawn.size)[2]
                           for i in range(4)])
    assert torch.allclose(z0, parked.expand_as(z0), atol=1e-5)
    half = torch.tensor([env.scene[f"distractor_{i}"].cfg.spawn.size[2] / 2 for i in range(3)])
    assert torch.allclose(z3[:, :3], half.expand(N, 3) + mdp.variation.TABLE_CLEARANCE, atol=1e-5)
    assert torch.allclose(z3[:, 3], parked[3].expand(N))
    assert three == pytest.approx(none, abs=1.0)  # three boxes on the table: no contact rows of their own


@pytest.mark.sim
def test_expert_grasps_the_named_box_among_distractors(dr_env):
    from openarm_vla.policies.scripted_expert import ScriptedPolicy
    from openarm_vla.rollout import run_episodes

    env = dr_env
    torch.manual_seed(3)
    records = run_episodes(env, ScriptedPolicy(env.num_envs, env.device, verbose=False), num_episodes=4,
                           progress=False, max_env_steps=900)
    assert sum(r["success"] for r in records) >= 3, records
    assert not any(r["failure"] == "wrong_object" for r in records), records


@pytest.mark.sim
def test_ood_knobs():
    from openarm_vla.robots import openarm_spec as spec
    from openarm_vla.tasks.box_grasp import mdp

    env = _dr_env("dr-ood", ["env.variation.num_distractors=[1,2]", "env.variation.absent_color_instruction=true",
                             "env.variation.box_x_range=[0.36,0.40]", "env.variation.arm_start_offset=0.2",
                             "env.variation.move_box_at_step=3", "env.variation.light_direction_deg=60"])
    torch.manual_seed(0)
    env.reset()
    term = mdp.scene_variation(env)
    v = term.values
    for e, text in enumerate(mdp.instructions(env)):  # the named colour is on no box in the scene
        n_d = int(v["num_distractors"][e])
        present = {int(v["target_color"][e]), *v["distractor_color"][e, :n_d].tolist()}
        assert int(v["named_color"][e]) not in present and term.names[int(v["named_color"][e])] in text
    light = mdp.variation.light_directions(env.scene["front_camera"])[0]
    assert light[2] < -0.99, light  # tilted from 35 deg elevation to about straight down
    box = mdp.box_pos(env)
    assert ((box[:, 0] >= 0.36) & (box[:, 0] <= 0.40)).all(), box
    robot = env.scene["robot"]
    ids = robot.find_joints(list(spec.ARM_JOINTS), preserve_order=True)[0]
    home = robot.data.default_joint_pos.torch[:, ids]
    assert (robot.data.joint_pos.torch[:, ids] - home).abs().amax() > 0.02
    from openarm_vla.action_space import joint_state_to_action

    moved = None
    for _ in range(4):
        before = mdp.box_pos(env).clone()
        env.step(joint_state_to_action(mdp.joint_state(env)))
        jump = (mdp.box_pos(env)[:, :2] - before[:, :2]).norm(dim=1)
        if (jump > 0.005).any():
            moved = env.episode_length_buf.clone()
            break
    assert moved is not None and (moved == 3).all()
    box = mdp.box_pos(env)[:, :2]
    for i in range(env.cfg.variation.slots()):  # moved clear of the distractors on the table
        on = v["num_distractors"] > i
        xy = env.scene[f"distractor_{i}"].data.root_pos_w.torch[:, :2] - env.scene.env_origins[:, :2]
        assert ((box - xy).norm(dim=1)[on] > 0.07).all()


@pytest.mark.sim
def test_vla_prompt_and_demos_carry_each_episodes_instruction(dr_env, tmp_path):
    from openarm_vla.data.generate import generate_demos
    from openarm_vla.data.hdf5_format import read_episode
    from openarm_vla.policies import make_policy
    from openarm_vla.policies.scripted_expert import ScriptedPolicy
    from openarm_vla.tasks.box_grasp import mdp
    from openarm_vla.tasks.box_grasp.scene_state import reset_groups

    env = dr_env
    torch.manual_seed(4)
    obs = reset_groups(env, G)
    policy = make_policy("preset:tiny", env)
    policy(obs)
    assert set(mdp.instructions(env)) <= set(policy.vla._prompt_cache)  # the prompts were the per-env ones
    out = tmp_path / "dr.hdf5"
    run = generate_demos(env, DR, ScriptedPolicy(env.num_envs, env.device, verbose=False), out, num_demos=2, seed=0,
                         env_args={"num_envs": N}, success_only=False, max_episodes=4, progress=False)
    assert run.written == 2
    templates = mdp.scene_variation(env).v.instruction_templates
    names = mdp.scene_variation(env).names
    for i in range(2):
        ep = read_episode(out, i)
        var = ep["initial_state"]["variation"]
        want = templates[int(var["instruction"][0])].format(color=names[int(var["named_color"][0])])
        assert ep["attrs"]["instruction"] == want


@pytest.mark.sim
def test_live_fields_change_a_built_env(dr_env):
    """The fields of __live_fields__ take effect at the next reset of a built env (the OOD suite relies on it)."""
    from openarm_vla.tasks.box_grasp import mdp
    from openarm_vla.tasks.box_grasp.box_grasp_env_cfg import BoxGraspEnvCfg

    env = dr_env
    v = env.cfg.variation
    assert {"variation.box_colors", "variation.num_distractors"} <= set(BoxGraspEnvCfg.__live_fields__)
    old = (dict(v.box_colors), tuple(v.num_distractors), list(v.instruction_templates))
    try:
        v.box_colors = {"teal": (0.0, 0.5, 0.5), "pink": (1.0, 0.5, 0.6), "lime": (0.6, 1.0, 0.1), "navy": (0.0, 0.0, 0.3),
                        "grey": (0.5, 0.5, 0.5), "brown": (0.4, 0.2, 0.1)}
        v.num_distractors = (4, 4)
        v.instruction_templates = ["fetch the {color} box"]
        env.reset()
        term = mdp.scene_variation(env)
        assert all(t.startswith("fetch the ") and t.split()[2] in v.box_colors for t in mdp.instructions(env))
        assert (term.values["num_distractors"] == 4).all()
        z = torch.stack([env.scene[f"distractor_{i}"].data.root_pos_w.torch[:, 2] for i in range(4)], dim=1)
        assert (z > 0).all()  # all four on the table, none parked
        v.instruction_templates = ["grab the {size} {color} carton"]
        env.reset()
        words = [t.split()[2] for t in mdp.instructions(env)]
        assert set(words) <= {"small", "large"}
        assert words == mdp.variation.size_words(env)
    finally:
        v.box_colors, v.num_distractors, v.instruction_templates = old
