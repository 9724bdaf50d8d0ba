"""A cuboid fixed to the world whose pose a reset can still move: the distractor boxes.

A free box costs the solver six degrees of freedom per env and its resting contacts each step; an obstacle that
only has to be seen, named and avoided needs neither. Spawned as an articulation with a fixed root (Isaac Lab's
``Articulation``: ``write_root_pose_to_sim_*`` moves it per env), Newton's MuJoCo solver makes it a mocap body: no
degrees of freedom, no contact with the table, still colliding with the gripper and the target box.

The USD is an ``ArticulationRootAPI`` Xform holding the box body (``body``: the cuboid with its collider, mass and
material), a world ``FixedJoint`` on it, and a small body (``anchor``) welded to it. The anchor is there because
USD's physics parser reports an articulation of one body fixed to the world as static (its body list comes back
empty), which Newton would bake at the template env's pose; with a second welded body the articulation keeps its
bodies and a root pose that resets can write.
"""

from __future__ import annotations

from collections.abc import Callable

import isaaclab.sim as sim_utils
from isaaclab.sim.utils import clone
from isaaclab.utils import configclass

ANCHOR_MASS = 1e-3
"""Mass of the welded anchor body [kg] (no collider, never seen)."""


@clone
def spawn_fixed_cuboid(prim_path: str, cfg: FixedCuboidCfg, translation=None, orientation=None, **kwargs):
    """Spawn ``cfg``'s cuboid at ``prim_path/body`` inside a fixed-root articulation at ``prim_path``."""
    from pxr import UsdGeom, UsdPhysics  # noqa: PLC0415 (USD only once a stage exists)

    stage = sim_utils.get_current_stage()
    root = sim_utils.create_prim(prim_path, "Xform", translation=translation, orientation=orientation, stage=stage)
    UsdPhysics.ArticulationRootAPI.Apply(root)
    body = f"{prim_path}/body"
    sim_utils.spawn_cuboid(body, cfg)
    anchor = UsdGeom.Xform.Define(stage, f"{prim_path}/anchor")
    UsdPhysics.RigidBodyAPI.Apply(anchor.GetPrim())
    UsdPhysics.MassAPI.Apply(anchor.GetPrim()).CreateMassAttr(ANCHOR_MASS)
    to_world = UsdPhysics.FixedJoint.Define(stage, f"{prim_path}/world_joint")
    to_world.CreateBody1Rel().SetTargets([body])
    weld = UsdPhysics.FixedJoint.Define(stage, f"{prim_path}/anchor_joint")
    weld.CreateBody0Rel().SetTargets([body])
    weld.CreateBody1Rel().SetTargets([anchor.GetPath()])
    return root


@configclass
class FixedCuboidCfg(sim_utils.CuboidCfg):
    """A :class:`~isaaclab.sim.CuboidCfg` (size, material, collider, mass) spawned fixed to the world as above;
    use it in an ``ArticulationCfg`` with no actuators and empty ``joint_pos`` / ``joint_vel``."""

    func: Callable = spawn_fixed_cuboid
