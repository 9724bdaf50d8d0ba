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


class _Chain:
    """The arm's constant tensors on one device and dtype, built once: each joint's transform as
    ``base + cos(q) * cos_part + sin(q) * sin_part`` (4x4, translation = the joint origin), the columns that pick each
    joint's signed world axis from its frame, and the end point in the last link's frame (hand + ``offset``)."""

    _cache: dict = {}

    @classmethod
    def on(cls, dtype: torch.dtype, device: torch.device, offset) -> "_Chain":
        key = (dtype, str(device), tuple(float(x) for x in offset))
        if key not in cls._cache:
            cls._cache[key] = cls(dtype, device, key[2])
        return cls._cache[key]

    def __init__(self, dtype: torch.dtype, device: torch.device, offset: tuple[float, ...]):
        n = len(_ARM)
        base, cos_part, sin_part = torch.zeros(3, n, 4, 4, dtype=torch.float64)
        pick = torch.zeros(n, 3, dtype=torch.float64)
        for m, joint in enumerate(_ARM):
            sign = -1.0 if joint.axis[0] == "-" else 1.0
            i = _AXES[joint.axis[1]]
            j, k = (i + 1) % 3, (i + 2) % 3
            base[m, i, i] = base[m, 3, 3] = 1.0
            base[m, :3, 3] = torch.tensor(joint.origin, dtype=torch.float64)
            cos_part[m, j, j] = cos_part[m, k, k] = 1.0
            sin_part[m, j, k], sin_part[m, k, j] = -sign, sign  # sin(sign * q) = sign * sin(q)
            pick[m, i] = sign
        end = torch.tensor([*(h + o for h, o in zip(spec.HAND_IN_LINK7, offset)), 1.0], dtype=torch.float64)
        as_dev = dict(dtype=dtype, device=device)
        self.base, self.cos_part, self.sin_part = base.to(**as_dev), cos_part.to(**as_dev), sin_part.to(**as_dev)
        self.pick, self.end = pick.to(**as_dev), end.to(**as_dev)
        self.lower = torch.tensor(spec.ARM_LOWER, **as_dev)
        self.upper = torch.tensor(spec.ARM_UPPER, **as_dev)
        self.eye = torch.eye(n, **as_dev)


def fk_jacobian(q: torch.Tensor, offset=spec.JAW_CENTER_OFFSET) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pose of ``offset`` (hand frame) in the base frame and its geometric Jacobian.

    Returns position [N, 3], rotation [N, 3, 3] and J [N, 6, 7] (rows: linear velocity, angular velocity).
    Every joint's transform is built in one batched expression and chained by 4x4 products: about twenty
    tensor operations per call whatever the joint count (the scripted expert runs ten calls a control step on
    thousands of envs, where each GPU kernel launch costs more than its arithmetic).
    """
    c = _Chain.on(q.dtype, q.device, offset)
    cos, sin = torch.cos(q)[:, :, None, None], torch.sin(q)[:, :, None, None]
    local = c.base + cos * c.cos_part + sin * c.sin_part  # [N, 7, 4, 4]
    frames = [local[:, 0]]
    for m in range(1, local.shape[1]):
        frames.append(frames[-1] @ local[:, m])
    world = torch.stack(frames, dim=1)  # [N, 7, 4, 4]: each joint's frame after its rotation
    axes = world[:, :, :3, :3] @ c.pick[:, :, None]  # [N, 7, 3, 1]: the joint axis does not move with its rotation
    axes = axes.squeeze(-1)
    p = world[:, -1, :3] @ c.end  # [N, 3]
    Jv = torch.linalg.cross(axes, p[:, None, :] - world[:, :, :3, 3], dim=-1)
    return p, world[:, -1, :3, :3], torch.cat([Jv, axes], dim=-1).transpose(1, 2)


def rotation_error(R: torch.Tensor, R_target: torch.Tensor) -> torch.Tensor:
    """Axis-angle-like error vector [N, 3] (base frame) that rotates ``R`` toward ``R_target``."""
    return 0.5 * torch.linalg.cross(R, R_target, dim=1).sum(dim=2)


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
    c = _Chain.on(q0.dtype, q0.device, offset)
    w = torch.ones(1, 6, 1, dtype=q0.dtype, device=q0.device)
    w[:, 3:] = rot_weight
    damp = (damping**2) * c.eye
    q = q0.clone()
    for _ in range(iters):
        p, R, J = fk_jacobian(q, offset)
        e = torch.cat([target_pos - p, rotation_error(R, target_rot)], dim=1)[:, :, None] * w
        Jw = J * w
        JT = Jw.transpose(1, 2)
        # J^T W^2 J + d^2 I is symmetric positive definite: Cholesky, and no host sync on a check of the factorization
        L, _ = torch.linalg.cholesky_ex(JT @ Jw + damp)
        dq = torch.cholesky_solve(JT @ e, L).squeeze(-1)
        dq = dq * (max_step / dq.abs().amax(dim=1, keepdim=True).clamp(min=max_step))  # trust region
        q = torch.clamp(q + dq, c.lower, c.upper)
    p, R, _ = fk_jacobian(q, offset)
    return q, (target_pos - p).norm(dim=1), rotation_error(R, target_rot).norm(dim=1)
