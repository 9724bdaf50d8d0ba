"""Batched forward kinematics (with the analytic Jacobian) and damped least-squares IK of the OpenArm arm.

Used offline (home pose, tests) and by the scripted expert, which turns end-effector waypoints into
the absolute joint targets of the 8-DoF action interface. Frames follow :mod:`openarm_spec`: every
joint origin has rpy = 0, so a link's transform is translate(origin) @ rotate(axis, q).
"""

from __future__ import annotations

import torch

from . import openarm_spec as spec

_AXES = {"x": 0, "y": 1, "z": 2}
_ARM = [j for j in spec.JOINTS if j.kind == "revolute"]


def _axis_angle_matrix(axis: str, q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] about a signed principal axis."""
    sign = -1.0 if axis[0] == "-" else 1.0
    i = _AXES[axis[1]]
    c, s = torch.cos(sign * q), torch.sin(sign * q)
    j, k = (i + 1) % 3, (i + 2) % 3
    R = torch.zeros(q.shape[0], 3, 3, dtype=q.dtype, device=q.device)
    R[:, i, i] = 1.0
    R[:, j, j] = c
    R[:, k, k] = c
    R[:, j, k] = -s
    R[:, k, j] = s
    return R


def down_rotation(yaw: torch.Tensor) -> torch.Tensor:
    """Hand rotation [N, 3, 3] pointing the gripper straight down (hand z = -world z), turned by ``yaw``.

    At yaw 0 the fingers close along world y.
    """
    c, s = torch.cos(yaw), torch.sin(yaw)
    z = torch.zeros_like(yaw)
    # columns: hand x, hand y, hand z in the world frame
    x_axis = torch.stack([c, s, z], dim=1)
    y_axis = torch.stack([s, -c, z], dim=1)
    z_axis = torch.stack([z, z, -torch.ones_like(yaw)], dim=1)
    return torch.stack([x_axis, y_axis, z_axis], dim=2)


def fk_jacobian(q: torch.Tensor, offset=spec.JAW_CENTER_OFFSET) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pose of ``offset`` (hand frame) in the base frame and its geometric Jacobian.

    Returns position [N, 3], rotation [N, 3, 3] and J [N, 6, 7] (rows: linear velocity, angular velocity).
    The analytic Jacobian makes an IK iteration ~1 ms where autograd took ~30.
    """
    n = q.shape[0]
    R = torch.eye(3, dtype=q.dtype, device=q.device).expand(n, 3, 3)
    p = torch.zeros(n, 3, dtype=q.dtype, device=q.device)
    axes, origins = [], []
    for idx, joint in enumerate(_ARM):
        p = p + R @ torch.tensor(joint.origin, dtype=q.dtype, device=q.device)
        sign = -1.0 if joint.axis[0] == "-" else 1.0
        axes.append(sign * R[:, :, _AXES[joint.axis[1]]])
        origins.append(p)
        R = R @ _axis_angle_matrix(joint.axis, q[:, idx])
    p = p + R @ torch.tensor(spec.HAND_IN_LINK7, dtype=q.dtype, device=q.device)
    p = p + R @ torch.tensor(offset, dtype=q.dtype, device=q.device)
    A = torch.stack(axes, dim=2)  # [N, 3, 7]
    P = torch.stack(origins, dim=2)
    Jv = torch.linalg.cross(A, p.unsqueeze(2) - P, dim=1)
    return p, R, torch.cat([Jv, A], dim=1)


def rotation_error(R: torch.Tensor, R_target: torch.Tensor) -> torch.Tensor:
    """Axis-angle-like error vector [N, 3] (base frame) that rotates ``R`` toward ``R_target``."""
    return 0.5 * sum(torch.linalg.cross(R[:, :, i], R_target[:, :, i], dim=1) for i in range(3))


def ik_dls(
    q0: torch.Tensor,
    target_pos: torch.Tensor,
    target_rot: torch.Tensor,
    offset=spec.JAW_CENTER_OFFSET,
    iters: int = 10,
    damping: float = 0.02,
    rot_weight: float = 0.5,
    max_step: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Damped least-squares IK from ``q0`` [N, 7]; clamps to the joint limits.

    Returns (q [N, 7], position error [N] in m, rotation error [N] in rad) at the returned ``q``.
    """
    lo = torch.tensor(spec.ARM_LOWER, dtype=q0.dtype, device=q0.device)
    hi = torch.tensor(spec.ARM_UPPER, dtype=q0.dtype, device=q0.device)
    w = torch.tensor([1.0, 1.0, 1.0, rot_weight, rot_weight, rot_weight], dtype=q0.dtype, device=q0.device)
    eye = torch.eye(7, dtype=q0.dtype, device=q0.device)
    q = q0.clone()
    for _ in range(iters):
        p, R, J = fk_jacobian(q, offset)
        e = torch.cat([target_pos - p, rotation_error(R, target_rot)], dim=1) * w
        Jw = J * w[None, :, None]
        JT = Jw.transpose(1, 2)
        dq = torch.linalg.solve(JT @ Jw + damping**2 * eye, JT @ e.unsqueeze(-1)).squeeze(-1)
        dq = dq * (max_step / dq.abs().amax(dim=1, keepdim=True).clamp(min=max_step))  # trust region
        q = torch.minimum(torch.maximum(q + dq, lo), hi)
    p, R, _ = fk_jacobian(q, offset)
    return q, (target_pos - p).norm(dim=1), rotation_error(R, target_rot).norm(dim=1)
