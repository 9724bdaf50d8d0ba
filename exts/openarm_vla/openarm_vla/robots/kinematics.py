"""Batched forward kinematics and damped least-squares IK of the OpenArm arm, in torch.

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


def hand_pose(q: torch.Tensor, offset: tuple[float, float, float] = spec.TCP_OFFSET) -> tuple[torch.Tensor, torch.Tensor]:
    """Position [N, 3] and rotation [N, 3, 3] of ``offset`` in the hand frame, in the base frame.

    ``q`` holds the 7 arm joint angles [N, 7].
    """
    n = q.shape[0]
    R = torch.eye(3, dtype=q.dtype, device=q.device).expand(n, 3, 3)
    p = torch.zeros(n, 3, dtype=q.dtype, device=q.device)
    for idx, joint in enumerate(_ARM):
        p = p + R @ torch.tensor(joint.origin, dtype=q.dtype, device=q.device)
        R = R @ _axis_angle_matrix(joint.axis, q[:, idx])
    p = p + R @ torch.tensor(spec.HAND_IN_LINK7, dtype=q.dtype, device=q.device)
    p = p + R @ torch.tensor(offset, dtype=q.dtype, device=q.device)
    return p, R


def solve_ik(
    q0: torch.Tensor,
    target_pos: torch.Tensor,
    target_rot: torch.Tensor | None = None,
    offset: tuple[float, float, float] = spec.TCP_OFFSET,
    iters: int = 100,
    damping: float = 0.05,
    rot_weight: float = 0.3,
    max_step: float = 0.1,
) -> torch.Tensor:
    """Damped least-squares IK from ``q0`` [N, 7] to a target position (and rotation); clamps to limits."""
    lo = torch.tensor(spec.ARM_LOWER, dtype=q0.dtype, device=q0.device)
    hi = torch.tensor(spec.ARM_UPPER, dtype=q0.dtype, device=q0.device)
    q = q0.clone()
    eye = torch.eye(7, dtype=q.dtype, device=q.device)
    for _ in range(iters):
        q_req = q.detach().requires_grad_(True)

        def residual(qq: torch.Tensor) -> torch.Tensor:
            p, R = hand_pose(qq, offset)
            err = [target_pos - p]
            if target_rot is not None:
                err.append(rot_weight * (target_rot - R).reshape(-1, 9))  # no spurious zero at 180 deg
            return torch.cat(err, dim=1)

        r = residual(q_req)
        J = torch.autograd.functional.jacobian(lambda qq: residual(qq).sum(0), q_req, vectorize=True)
        J = -J.permute(1, 0, 2)  # [N, m, 7], d(residual)/dq = -d(pose)/dq
        JT = J.transpose(1, 2)
        dq = torch.linalg.solve(JT @ J + damping**2 * eye, JT @ r.detach().unsqueeze(-1)).squeeze(-1)
        dq = dq * (max_step / dq.abs().amax(dim=1, keepdim=True).clamp(min=max_step))  # trust region
        q = torch.minimum(torch.maximum(q + dq, lo), hi).detach()
    return q


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
