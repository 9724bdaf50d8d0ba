"""ArticulationCfg of the project's own OpenArm USD, and the switch to Isaac Lab's OPENARM_UNI_CFG.

Gains are those of Isaac Lab's OPENARM_UNI_CFG (the OpenArm v10 description). The home pose points the
gripper straight down 12 cm above the middle of the workspace (solved with :mod:`.kinematics`).
"""

from __future__ import annotations

from isaaclab_newton.sim.schemas import NewtonArticulationCfg
from isaaclab_physx.sim.schemas import PhysxRigidBodyCfg

import isaaclab.sim as sim_utils
from isaaclab.actuators import ImplicitActuatorCfg
from isaaclab.assets.articulation import ArticulationCfg
from isaaclab.utils import replace

from . import openarm_spec as spec
from .paths import OPENARM_USD_PATH

HOME_JOINT_POS = spec.HOME_JOINT_POS

ACTUATORS = {
    "openarm_arm": ImplicitActuatorCfg(
        joint_names_expr=["openarm_joint[1-7]"],
        joint_velocity_limit=spec.ARM_VELOCITY_LIMIT,
        joint_effort_limit=spec.ARM_EFFORT_LIMIT,
        stiffness=spec.ARM_STIFFNESS,
        damping=spec.ARM_DAMPING,
    ),
    "openarm_gripper": ImplicitActuatorCfg(
        joint_names_expr=["openarm_finger_joint.*"],
        joint_velocity_limit=spec.FINGER_VELOCITY,
        joint_effort_limit=spec.FINGER_EFFORT,
        stiffness=spec.FINGER_STIFFNESS,
        damping=spec.FINGER_DAMPING,
        armature=spec.FINGER_ARMATURE,
    ),
}

OPENARM_CFG = ArticulationCfg(
    spawn=sim_utils.UsdFileCfg(
        usd_path=str(OPENARM_USD_PATH),
        # the real arm compensates gravity in firmware; Newton's importer reads this flag too
        rigid_props=PhysxRigidBodyCfg(disable_gravity=True),
        articulation_props=NewtonArticulationCfg(self_collision_enabled=False),
        # PhysX reports contacts only for bodies with its contact report API (the pad contact sensors);
        # Newton's sensor needs nothing
        activate_contact_sensors=True,
    ),
    init_state=ArticulationCfg.InitialStateCfg(joint_pos=HOME_JOINT_POS),
    actuators=ACTUATORS,
    soft_joint_pos_limit_factor=1.0,
)
"""The project's OpenArm (built by scripts/build_assets.py, shipped in assets/)."""



def isaaclab_openarm_cfg() -> ArticulationCfg:
    """Isaac Lab's own OPENARM_UNI_CFG (Nucleus USD), with our home pose; needs Nucleus access."""
    from isaaclab_assets.robots.openarm import OPENARM_UNI_CFG

    return replace(OPENARM_UNI_CFG, init_state=replace(OPENARM_UNI_CFG.init_state, joint_pos=HOME_JOINT_POS))
