"""Contact fidelity of a grasp: how deep the finger pads sink into the box, and how far the box slides in
the hand while it is held in the air.

Soft contacts (MuJoCo's) let a squeezed box sink into the pads and creep under gravity; both make a grasp
in simulation easier or harder than the real one, and a success signal that a policy learns from should not
depend on them. The measurements are geometric, from the simulator state:

- penetration of a pad = how far the box's extreme point toward that pad lies beyond the pad's inner face,
  along the closing axis (the hand's y axis), from the finger bodies' poses and the box pose and size;
- slide = how far the box centre moved in the hand frame over a hold.

:func:`hold_in_air` builds a steady grasp by hand (arm posed by IK, box placed between the open pads, gripper
closed) and holds it for a while; :func:`measure_expert_hold` measures the scripted expert's own grasps.
"""

from __future__ import annotations

import math

import torch

from isaaclab.utils.math import quat_apply, quat_apply_inverse

from openarm_vla.action_space import joint_limits, joint_targets_to_action
from openarm_vla.robots import openarm_spec as spec
from openarm_vla.robots.kinematics import down_rotation, ik_dls
from openarm_vla.tasks.box_grasp.mdp.observations import box_size, hand_pose_w, joint_state, tcp_pos
from openarm_vla.tasks.box_grasp.mdp.success import half_extent_along

FINGERS = ("openarm_left_finger", "openarm_right_finger")


def box_in_hand(env) -> torch.Tensor:
    """[N, 3] box centre in the hand frame."""
    hp, hq = hand_pose_w(env)
    return quat_apply_inverse(hq, env.scene["box"].data.root_pos_w.torch - hp)


def pad_penetration(env) -> torch.Tensor:
    """[N, 2] how deep the box reaches past the (left, right) pad's inner face [m]; negative = a gap."""
    robot, box = env.scene["robot"], env.scene["box"]
    hp, hq = hand_pose_w(env)
    n = hp.shape[0]
    y_axis = quat_apply(hq, torch.tensor([0.0, 1.0, 0.0], device=hp.device).expand(n, 3))
    centre = box.data.root_pos_w.torch
    half = half_extent_along(y_axis, box.data.root_quat_w.torch, box_size(env))
    out = []
    for name, side in zip(FINGERS, (1.0, -1.0)):
        idx = robot.find_bodies(name)[0][0]
        fp, fq = robot.data.body_pos_w.torch[:, idx], robot.data.body_quat_w.torch[:, idx]
        # the inner face lies PAD_INSET from the finger frame toward the jaw centre (-side along hand y)
        face = fp + quat_apply(fq, torch.tensor([0.0, -side * spec.PAD_INSET, 0.0], device=hp.device).expand(n, 3))
        # box extreme point toward this pad, relative to the face, along the outward normal (side * hand y)
        reach = ((centre - face) * y_axis).sum(dim=1) * side + half
        out.append(reach)
    return torch.stack(out, dim=1)


def _no_success(env):
    """Make success unreachable while measuring (the hold must not end the episode)."""
    cfg = env.cfg.success
    saved = cfg.hold_steps
    cfg.hold_steps = 10**9
    return cfg, saved


def hold_in_air(env, closure: float = 0.6, tcp: tuple[float, float, float] = (0.25, 0.0, 0.17),
                settle_steps: int = 30, close_steps: int = 15, hold_steps: int = 100, seed: int = 0) -> dict:
    """Grasp every env's box in the air and hold it ``hold_steps`` control steps; per-env measurements.

    The arm is posed by IK with the hand pointing down (fingers closing along world y) at ``tcp`` (env frame),
    the fingers opened to the box width + 6 mm; the box (yaw 0, at rest) is placed at the jaw centre, the
    gripper commanded to ``closure`` for ``close_steps``, then held. Returns tensors [N]: ``penetration``
    (the deeper pad, mean over the hold) and ``max_penetration`` [m], ``slide`` (box centre in the hand frame,
    hold end vs hold start) and ``max_slide`` [m], ``min_lift`` [m]; ``box_size`` [N, 3] and
    ``open_penetration`` [N, 2] (both pads just before closing, when the gap is the box width + 6 mm).
    """
    dev = env.device
    n = env.num_envs
    cfg, saved = _no_success(env)
    try:
        env.reset(seed=seed)
        lo, hi = joint_limits(torch.zeros(1, device=dev))
        q0 = joint_state(env)[:, :7].double()
        target = torch.tensor([tcp], dtype=torch.float64, device=dev).expand(n, 3)
        q, _, _ = ik_dls(q0, target, down_rotation(torch.full((n,), math.pi, dtype=torch.float64, device=dev)),
                         iters=100)
        size = box_size(env)
        finger_open = ((size[:, 1] + 0.0036 + 0.006) / 2).clamp(max=spec.GRIPPER_OPEN)
        pre = joint_targets_to_action(q.float(), 1.0 - finger_open / spec.GRIPPER_OPEN, lo, hi)
        for _ in range(settle_steps):
            env.step(pre)
        box = env.scene["box"]
        ids = torch.arange(n, device=dev)
        pos = tcp_pos(env) + env.scene.env_origins
        quat = torch.tensor([[0.0, 0.0, 0.0, 1.0]], device=dev).expand(n, 4)
        box.write_root_pose_to_sim_index(root_pose=torch.cat([pos, quat], 1), env_ids=ids)
        box.write_root_velocity_to_sim_index(root_velocity=torch.zeros(n, 6, device=dev), env_ids=ids)
        open_pen = pad_penetration(env)  # the box centred between the open pads: about -3 mm each side
        grip = pre.clone()
        grip[:, 7] = 2.0 * closure - 1.0
        for _ in range(close_steps):
            env.step(grip)
        start = box_in_hand(env)
        pen_sum = torch.zeros(n, device=dev)
        pen_max = torch.full((n,), -1.0, device=dev)
        slide_max = torch.zeros(n, device=dev)
        lift_min = torch.full((n,), 1e9, device=dev)
        monitor = env.termination_manager.get_term_cfg("success").func
        for _ in range(hold_steps):
            env.step(grip)
            pen = pad_penetration(env).max(dim=1).values
            pen_sum += pen
            pen_max = torch.maximum(pen_max, pen)
            slide_max = torch.maximum(slide_max, (box_in_hand(env) - start).norm(dim=1))
            lift_min = torch.minimum(lift_min, monitor.lift)
        slide = (box_in_hand(env) - start).norm(dim=1)
        return {"penetration": pen_sum / hold_steps, "max_penetration": pen_max, "slide": slide,
                "max_slide": slide_max, "min_lift": lift_min, "box_size": size.clone(), "open_penetration": open_pen}
    finally:
        cfg.hold_steps = saved
        env.reset()


def measure_expert_hold(env, hold_steps: int = 100, max_steps: int = 390, seed: int = 0) -> dict:
    """Let the scripted expert grasp and lift every env's box, then hold it ``hold_steps`` control steps.

    The hold starts when the expert enters its HOLD phase (the lift goal reached). Returns tensors [N]:
    ``held`` (the hold was measured to its end with the box >= the success lift height all along),
    ``penetration`` (deeper pad, mean over the hold), ``max_penetration``, ``slide`` (box centre in the hand
    frame, hold end vs start), ``max_slide`` [m], ``box_size`` [N, 3] and ``steps`` (control steps taken).
    """
    from openarm_vla.policies.scripted_expert import HOLD, ScriptedPolicy

    dev, n = env.device, env.num_envs
    cfg, saved = _no_success(env)
    try:
        obs, _ = env.reset(seed=seed)
        policy = ScriptedPolicy(n, dev, verbose=False)
        monitor = env.termination_manager.get_term_cfg("success").func
        t_hold = torch.full((n,), -1, dtype=torch.long, device=dev)
        start = torch.zeros(n, 3, device=dev)
        end = torch.zeros(n, 3, device=dev)
        pen_sum = torch.zeros(n, device=dev)
        pen_max = torch.full((n,), -1.0, device=dev)
        slide_max = torch.zeros(n, device=dev)
        lifted = torch.ones(n, dtype=torch.bool, device=dev)
        alive = torch.ones(n, dtype=torch.bool, device=dev)
        step = 0
        for step in range(1, max_steps + 1):
            obs, _, term, trunc, _ = env.step(policy(obs))
            alive &= ~(term | trunc)  # an episode that ended (box knocked off, time-out) is not measured
            bih = box_in_hand(env)
            entering = (t_hold < 0) & (policy.expert.phase == HOLD)
            t_hold[entering] = step
            start[entering] = bih[entering]
            k = step - t_hold
            during = (t_hold >= 0) & (k >= 1) & (k <= hold_steps)
            if during.any():
                pen = pad_penetration(env).max(dim=1).values
                pen_sum += torch.where(during, pen, torch.zeros_like(pen))
                pen_max = torch.where(during, torch.maximum(pen_max, pen), pen_max)
                slide = (bih - start).norm(dim=1)
                slide_max = torch.where(during, torch.maximum(slide_max, slide), slide_max)
                lifted &= ~during | (monitor.lift >= cfg.lift_height)
                end[k == hold_steps] = bih[k == hold_steps]
            if bool(((t_hold >= 0) & (step - t_hold >= hold_steps) | ~alive).all()):
                break
        done = alive & (t_hold >= 0) & (step - t_hold >= hold_steps)
        return {"held": done & lifted, "measured": done, "penetration": pen_sum / hold_steps, "max_penetration": pen_max,
                "slide": (end - start).norm(dim=1), "max_slide": slide_max, "box_size": box_size(env).clone(),
                "steps": step}
    finally:
        cfg.hold_steps = saved
        env.reset()
