"""OpenArm v10 single-arm facts (the public OpenArm description, v10, and Isaac Lab's OPENARM_UNI_CFG gains) as data.

One table that the USD builder, the articulation config, the action term and the scripted
expert all read, so the robot's numbers live in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

ARM_JOINTS = tuple(f"openarm_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("openarm_finger_joint1", "openarm_finger_joint2")

GRIPPER_OPEN = 0.044
"""Finger joint position [m] when fully open (0 is closed)."""

TCP_OFFSET = (0.0, 0.0, 0.08)
"""Tool centre point in the openarm_hand frame [m]."""

JAW_CENTER_OFFSET = (0.0, 0.006, 0.08)
"""Centre between the finger pads in the openarm_hand frame [m]; 6 mm off the TCP along +y."""

HOME_JOINT_POS = {
    "openarm_joint1": 1.5816,
    "openarm_joint2": -0.3068,
    "openarm_joint3": -1.5639,
    "openarm_joint4": 1.4133,
    "openarm_joint5": 0.0005,
    "openarm_joint6": 0.0175,
    "openarm_joint7": -1.4215,
    "openarm_finger_joint.*": GRIPPER_OPEN,
}
"""The project's home pose (solved with :mod:`.kinematics`): TCP at (0.28, 0, 0.12) in the base frame,
gripper pointing down, fingers closing along world y."""


@dataclass(frozen=True)
class JointSpec:
    name: str
    parent: str
    child: str
    origin: tuple[float, float, float]
    axis: str  # "+x", "-y", ...
    lower: float
    upper: float
    effort: float
    velocity: float
    kind: str = "revolute"  # or "prismatic"


@dataclass(frozen=True)
class LinkSpec:
    name: str
    mass: float
    com: tuple[float, float, float]
    inertia: tuple[float, float, float]
    size: tuple[float, float, float]


JOINTS: tuple[JointSpec, ...] = (
    JointSpec("openarm_joint1", "openarm_link0", "openarm_link1", (0, 0, 0.0625), "+z", -1.396263, 3.490659, 40, 16.754666),
    JointSpec("openarm_joint2", "openarm_link1", "openarm_link2", (-0.0301, 0, 0.06), "-x", -1.745329, 1.745329, 40, 16.754666),
    JointSpec("openarm_joint3", "openarm_link2", "openarm_link3", (0.0301, 0, 0.06625), "+z", -1.570796, 1.570796, 27, 5.445426),
    JointSpec("openarm_joint4", "openarm_link3", "openarm_link4", (0, 0.0315, 0.15375), "+y", 0.0, 2.443461, 27, 5.445426),
    JointSpec("openarm_joint5", "openarm_link4", "openarm_link5", (0, -0.0315, 0.0955), "+z", -1.570796, 1.570796, 7, 20.943946),
    JointSpec("openarm_joint6", "openarm_link5", "openarm_link6", (0.0375, 0, 0.1205), "+x", -0.785398, 0.785398, 7, 20.943946),
    JointSpec("openarm_joint7", "openarm_link6", "openarm_link7", (-0.0375, 0, 0), "-y", -1.570796, 1.570796, 7, 20.943946),
    JointSpec("openarm_finger_joint1", "openarm_hand", "openarm_right_finger", (0, 0, 0.015), "-y", 0.0, GRIPPER_OPEN, 333, 10, "prismatic"),
    JointSpec("openarm_finger_joint2", "openarm_hand", "openarm_left_finger", (0, 0.012, 0.015), "+y", 0.0, GRIPPER_OPEN, 333, 10, "prismatic"),
)

# link7 -> link8 (0.000001, 0.0205, 0) -> hand (0, -0.025, 0.1001): link8 is massless, so the hand is
# welded to link7 directly at the composed offset.
HAND_IN_LINK7 = (0.000001, 0.0205 - 0.025, 0.1001)

LINKS: tuple[LinkSpec, ...] = (
    LinkSpec("openarm_link0", 1.1432, (-0.00095, -0.00016, 0.03077), (1.128e-3, 9.62e-4, 1.47e-3), (0.098, 0.122, 0.063)),
    LinkSpec("openarm_link1", 1.1417, (0.00115, -0.00003, 0.05395), (1.567e-3, 1.273e-3, 1.016e-3), (0.096, 0.098, 0.109)),
    LinkSpec("openarm_link2", 0.2775, (0.00840, 0, 0.03257), (3.59e-4, 3.76e-4, 2.32e-4), (0.084, 0.098, 0.116)),
    LinkSpec("openarm_link3", 1.0739, (-0.00210, -0.00055, 0.08847), (4.372e-3, 4.319e-3, 6.61e-4), (0.077, 0.065, 0.183)),
    LinkSpec("openarm_link4", 0.5599, (-0.00290, -0.03031, 0.06340), (6.23e-4, 5.11e-4, 3.34e-4), (0.075, 0.078, 0.125)),
    LinkSpec("openarm_link5", 0.5507, (-0.00305, -0.00089, 0.04308), (4.23e-4, 4.45e-4, 3.24e-4), (0.072, 0.076, 0.128)),
    LinkSpec("openarm_link6", 0.3852, (-0.03714, -0.00033, -0.0001), (1.43e-4, 1.57e-4, 1.59e-4), (0.075, 0.066, 0.057)),
    LinkSpec("openarm_link7", 0.3860, (0.00007, -0.01266, 0.06952), (6.39e-4, 4.97e-4, 3.42e-4), (0.057, 0.063, 0.112)),
    LinkSpec("openarm_hand", 0.300, (0, 0.002, 0.019), (1.0e-4, 2.5e-4, 1.7e-4), (0.057, 0.168, 0.016)),
    LinkSpec("openarm_right_finger", 0.03603, (0.00645, -0.01702, 0.02197), (2.375e-6, 2.375e-6, 7.5e-7), (0.061, 0.035, 0.095)),
    LinkSpec("openarm_left_finger", 0.03603, (0.00645, 0.01702, 0.02197), (2.375e-6, 2.375e-6, 7.5e-7), (0.061, 0.035, 0.095)),
)

JOINT_LIMITS = {j.name: (j.lower, j.upper) for j in JOINTS}
ARM_LOWER = tuple(JOINT_LIMITS[n][0] for n in ARM_JOINTS)
ARM_UPPER = tuple(JOINT_LIMITS[n][1] for n in ARM_JOINTS)

# Actuator gains of Isaac Lab's OPENARM_UNI_CFG (implicit PD).
ARM_STIFFNESS, ARM_DAMPING = 80.0, 4.0
ARM_STIFFNESS_HIGH, ARM_DAMPING_HIGH = 400.0, 80.0
ARM_VELOCITY_LIMIT = {"openarm_joint[1-4]": 2.175, "openarm_joint[5-7]": 2.61}
ARM_EFFORT_LIMIT = {"openarm_joint[1-2]": 40.0, "openarm_joint[3-4]": 27.0, "openarm_joint[5-7]": 7.0}
FINGER_STIFFNESS, FINGER_DAMPING, FINGER_EFFORT, FINGER_VELOCITY = 2000.0, 100.0, 333.33, 0.2
FINGER_ARMATURE = 0.3
"""Reflected inertia of the finger drive [kg] (a modelling choice; the published description has none). Without
it the stiff finger drive (2000 N/m on a 36 g finger) and the pad contact ring in a limit cycle at a squeeze of
~20 N or more: the pads bounce on and off the box, sink up to 10 mm into it, and the box creeps down 5-7 mm in
2 s. With 0.3 kg the grasp is steady (< 0.5 mm, < 0.1 mm; benchmarks/contact). Isaac Lab's Franka lift task
gives its hand 0.1 for the same reason."""

# Jaw geometry: jaw gap ~ 2 q - 0.0036, so each pad's inner face sits 7.8 mm inboard of its joint frame.
PAD_INSET = 0.0078
PAD_SIZE = (0.020, 0.010, 0.095)
"""Finger pad box [m]: width along the hand x axis, thickness along the closing (y) axis, length along the
finger (z, from the finger joint frame toward the tip)."""


@dataclass(frozen=True)
class PadContact:
    """MuJoCo contact parameters authored on the finger pads (``mjc:*`` attributes, read by Newton's importer).

    With a higher ``priority`` than the box, a pad-box contact takes the pad's solref, solimp, condim and
    friction alone instead of the average of both shapes.
    """

    priority: int = 1
    condim: int = 4
    """3: sliding friction; 4: plus torsional friction, which keeps a pinched box from pivoting about the
    pad normal."""
    solref: tuple[float, float] = (0.01, 1.0)
    """(time constant [s], damping ratio); the time constant must stay >= 2 physics substeps."""
    solimp: tuple[float, float, float, float, float] = (0.95, 0.99, 0.001, 0.5, 2.0)
    """(d0, dmax, width [m], midpoint, power): impedance near 1 makes the contact stiff (little sinking)."""
    friction: tuple[float, float, float] = (1.0, 0.02, 0.0001)
    """(sliding, torsional [m], rolling [m]) friction of the pad material."""


PAD_CONTACT = PadContact()
