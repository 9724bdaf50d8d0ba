"""OpenArm box grasp: scene, MDP and the two task variants (VLA vision, privileged state).

Scene (env frame): the OpenArm base sits on the table top at the origin, at the table's -x edge, and
reaches along +x. A carton box of 5-7 cm rests on the table in reach; a front camera (``front_camera``)
looks back at the robot over the workspace. Control at 50 Hz (sim 100 Hz, decimation 2); at most 400
steps (8 s) per episode. Physics is an Isaac Lab preset (:class:`PhysicsCfg`): Newton with the MuJoCo-Warp
solver (kit-less) by default, ``physics=physx`` where Isaac Sim is installed. Watching a policy uses Isaac
Lab's ``play_mode()`` (the ``-Play`` gym ids apply it).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from isaaclab_newton.physics import MJWarpSolverCfg, NewtonCfg
from isaaclab_newton.renderers import NewtonWarpRendererCfg
from isaaclab_ov.physics import OvPhysxCfg
from isaaclab_physx.physics import PhysxCfg

import isaaclab.sim as sim_utils
from isaaclab.assets import ArticulationCfg, AssetBaseCfg, RigidObjectCfg
from isaaclab.cloner import CloneCfg
from isaaclab.envs import ManagerBasedRLEnvCfg
from isaaclab.envs.utils.video_recorder_cfg import VideoRecorderCfg
from isaaclab.managers import EventTermCfg as EventTerm
from isaaclab.managers import ObservationGroupCfg as ObsGroup
from isaaclab.managers import ObservationTermCfg as ObsTerm
from isaaclab.managers import RewardTermCfg as RewTerm
from isaaclab.managers import SceneEntityCfg
from isaaclab.managers import TerminationTermCfg as DoneTerm
from isaaclab.physics import PhysxAutoCfg
from isaaclab.scene import InteractiveSceneCfg
from isaaclab.sensors import CameraCfg, ContactSensorCfg
from isaaclab.utils import configclass, replace
from isaaclab.utils.math import quat_from_matrix
from isaaclab_tasks.utils import PresetCfg

from openarm_vla.checks import IMAGE_SIZE
from openarm_vla.errors import ConfigError
from openarm_vla.robots.openarm import OPENARM_CFG

from . import mdp
from .fixed_cuboid import FixedCuboidCfg

TABLE_SIZE = (0.8, 1.0, 0.05)
TABLE_CENTER = (0.3, 0.0, -TABLE_SIZE[2] / 2)  # top surface at z = 0
TABLE_HEIGHT = 0.0

BOX_SIZES = [
    (0.050, 0.050, 0.050),
    (0.055, 0.060, 0.055),
    (0.060, 0.060, 0.060),
    (0.050, 0.065, 0.060),
    (0.065, 0.065, 0.055),
    (0.055, 0.070, 0.065),
]
BOX_COLORS = [
    (0.72, 0.50, 0.28),  # carton brown
    (0.80, 0.60, 0.35),
    (0.62, 0.42, 0.22),
    (0.85, 0.25, 0.20),  # printed cartons
    (0.20, 0.45, 0.80),
    (0.25, 0.65, 0.30),
]
BOX_WORKSPACE = {"x": (0.24, 0.34), "y": (-0.10, 0.10), "yaw": (-math.pi / 4, math.pi / 4)}
INSTRUCTION = mdp.variation.DEFAULT_INSTRUCTION  # "pick up the box"

CAMERA_EYE = (0.78, 0.0, 0.42)
CAMERA_TARGET = (0.20, 0.0, 0.06)
VIDEO_EYE = (0.85, 0.65, 0.50)
VIDEO_TARGET = (0.22, 0.0, 0.08)
"""The viewer camera that ``isaaclab play --video`` records (the -Play configs), from the front-left."""


def look_at_quat_world(eye, target) -> tuple[float, float, float, float]:
    """xyzw quaternion of a camera at ``eye`` looking at ``target`` in Isaac Lab's "world" convention (+x fwd, +z up)."""
    f = np.asarray(target, float) - np.asarray(eye, float)
    f /= np.linalg.norm(f)
    left = np.cross([0.0, 0.0, 1.0], f)
    left /= np.linalg.norm(left)
    up = np.cross(f, left)
    R = torch.tensor(np.stack([f, left, up], axis=1), dtype=torch.float64)
    return tuple(float(v) for v in quat_from_matrix(R))


def box_spawn_cfg(sizes=BOX_SIZES) -> sim_utils.MultiAssetSpawnerCfg:
    """One cuboid variant per (size, colour) pair; env ids map to variants in groups (see mdp.events)."""
    variants = [
        sim_utils.CuboidCfg(
            size=tuple(size),
            visual_material=sim_utils.PreviewSurfaceCfg(diffuse_color=BOX_COLORS[i % len(BOX_COLORS)], roughness=0.8),
        )
        for i, size in enumerate(sizes)
    ]
    return sim_utils.MultiAssetSpawnerCfg(
        assets_cfg=variants,
        rigid_props=sim_utils.UsdPhysicsRigidBodyCfg(),
        mass_props=sim_utils.MassCfg(mass=0.1),
        collision_props=sim_utils.UsdPhysicsCollisionCfg(),
    )


def distractor_cfg(slot: int, sizes) -> ArticulationCfg:
    """Distractor box ``slot`` (edge lengths ``sizes[slot % len]``), spawned parked under the table; its place and
    colour are drawn per episode (:class:`~.mdp.variation.SceneVariation`). Fixed to the world between resets
    (:mod:`.fixed_cuboid`: no degrees of freedom); the gripper closing on it is ``wrong_object``."""
    size = tuple(sizes[slot % len(sizes)])
    return ArticulationCfg(
        prim_path=f"{{ENV_REGEX_NS}}/Distractor_{slot}",
        spawn=FixedCuboidCfg(
            size=size,
            visual_material=sim_utils.PreviewSurfaceCfg(diffuse_color=(0.5, 0.5, 0.5), roughness=0.8),
            rigid_props=sim_utils.UsdPhysicsRigidBodyCfg(),
            mass_props=sim_utils.MassCfg(mass=0.1),
            collision_props=sim_utils.UsdPhysicsCollisionCfg(),
        ),
        init_state=ArticulationCfg.InitialStateCfg(pos=mdp.parked_distractor_pos(slot, size), joint_pos={},
                                                   joint_vel={}),
        actuators={},
    )


@configclass
class BoxGraspSceneCfg(InteractiveSceneCfg):
    """OpenArm at a table edge, a carton box, a front camera and lights."""

    robot: ArticulationCfg = replace(OPENARM_CFG, prim_path="{ENV_REGEX_NS}/Robot")
    table = AssetBaseCfg(
        prim_path="{ENV_REGEX_NS}/Table",
        spawn=sim_utils.CuboidCfg(
            size=TABLE_SIZE,
            collision_props=sim_utils.UsdPhysicsCollisionCfg(),
            visual_material=sim_utils.PreviewSurfaceCfg(diffuse_color=(0.55, 0.55, 0.58), roughness=0.9),
            physics_material=sim_utils.RigidBodyMaterialCfg(static_friction=1.0, dynamic_friction=1.0),
        ),
        init_state=AssetBaseCfg.InitialStateCfg(pos=TABLE_CENTER),
    )
    box = RigidObjectCfg(
        prim_path="{ENV_REGEX_NS}/Box",
        spawn=box_spawn_cfg(),
        init_state=RigidObjectCfg.InitialStateCfg(pos=(0.29, 0.0, 0.04)),
    )
    front_camera: CameraCfg | None = CameraCfg(
        prim_path="{ENV_REGEX_NS}/front_camera",
        offset=CameraCfg.OffsetCfg(pos=CAMERA_EYE, rot=look_at_quat_world(CAMERA_EYE, CAMERA_TARGET), convention="world"),
        data_types=["rgb"],
        spawn=sim_utils.PinholeCameraCfg(focal_length=20.0, horizontal_aperture=20.955, clipping_range=(0.05, 5.0)),
        width=224,
        height=224,
        renderer_cfg=NewtonWarpRendererCfg(),
    )
    """None in the state task (no camera)."""
    # one sensor per pad (filtered contact reporting needs one sensing body per env), for the grasp test
    left_pad_contact = ContactSensorCfg(
        prim_path="{ENV_REGEX_NS}/Robot/openarm_left_finger", filter_prim_paths_expr=["{ENV_REGEX_NS}/Box"]
    )
    right_pad_contact = ContactSensorCfg(
        prim_path="{ENV_REGEX_NS}/Robot/openarm_right_finger", filter_prim_paths_expr=["{ENV_REGEX_NS}/Box"]
    )
    light = AssetBaseCfg(
        prim_path="/World/light",
        spawn=sim_utils.DistantLightCfg(intensity=mdp.variation.NOMINAL_LIGHT, color=(1.0, 1.0, 1.0), angle=0.5),
        init_state=AssetBaseCfg.InitialStateCfg(rot=(0.3, 0.0, 0.0, 0.954)),
    )
    dome = AssetBaseCfg(prim_path="/World/dome", spawn=sim_utils.DomeLightCfg(intensity=800.0, color=(0.9, 0.9, 0.9)))


@configclass
class ActionsCfg:
    joints = mdp.NormalizedJointActionCfg(asset_name="robot")


@configclass
class ObservationsCfg:
    @configclass
    class PolicyCfg(ObsGroup):
        """What the VLA sees: the front RGB image (uint8 HWC) and the 8-dim joint state."""

        front_rgb: ObsTerm | None = ObsTerm(
            func=mdp.image_rgb, params={"sensor_cfg": SceneEntityCfg("front_camera"), "data_type": "rgb", "normalize": False}
        )
        """None in a scene without its camera (:meth:`BoxGraspEnvCfg.remove_camera`)."""
        joint_pos = ObsTerm(func=mdp.joint_state)

        def __post_init__(self):
            self.enable_corruption = False
            self.concatenate_terms = False

    @configclass
    class PrivilegedCfg(ObsGroup):
        """Simulator state, recorded with demos and used by the PPO teacher and the scripted expert."""

        joint_pos = ObsTerm(func=mdp.joint_state)
        joint_vel = ObsTerm(func=mdp.joint_vel)
        box_pos = ObsTerm(func=mdp.box_pos)
        box_quat = ObsTerm(func=mdp.box_quat)
        tcp_pos = ObsTerm(func=mdp.tcp_pos)
        tcp_to_box = ObsTerm(func=mdp.tcp_to_box)
        box_size = ObsTerm(func=mdp.box_size)
        grasp_yaw_error = ObsTerm(func=mdp.grasp_yaw_error)
        pad_contact = ObsTerm(func=mdp.pad_contact)

        def __post_init__(self):
            self.enable_corruption = False
            self.concatenate_terms = False

    policy: PolicyCfg = PolicyCfg()
    privileged: PrivilegedCfg = PrivilegedCfg()


@configclass
class EventCfg:
    reset_scene = EventTerm(func=mdp.reset_scene_to_default, mode="reset", params={"reset_joint_targets": True})
    reset_box = EventTerm(
        func=mdp.reset_box_on_table,
        mode="reset",
        params={
            "x_range": BOX_WORKSPACE["x"],
            "y_range": BOX_WORKSPACE["y"],
            "yaw_range": BOX_WORKSPACE["yaw"],
            "table_height": TABLE_HEIGHT,
            "sizes": BOX_SIZES,
            "group_size": 8,
        },
    )
    box_mass = EventTerm(
        func=mdp.randomize_rigid_body_mass,
        mode="reset",
        params={
            "asset_cfg": SceneEntityCfg("box"),
            "mass_distribution_params": (0.05, 0.2),
            "operation": "abs",
            "recompute_inertia": True,
        },
    )


@configclass
class RewardsCfg:
    success = RewTerm(func=mdp.success_bonus, weight=1.0)


@configclass
class TerminationsCfg:
    success = DoneTerm(func=mdp.GraspMonitor)
    """Reads the env config's ``success`` field (:class:`~.mdp.success.SuccessCfg`)."""
    time_out = DoneTerm(func=mdp.time_out, time_out=True)
    box_off_table = DoneTerm(func=mdp.box_off_table, params={"minimum_height": -0.05})


@configclass
class MJWarpCfg(MJWarpSolverCfg):
    """Isaac Lab's MuJoCo-Warp settings plus Newton's body sleeping, which Isaac Lab's config lacks (it forwards every
    field ``SolverMuJoCo`` accepts): a tree of bodies at rest for a while stops being simulated, its contacts and
    constraint rows dropped until something touches it (a box waiting on the table, parked distractors). Off: in these
    scenes its bookkeeping costs the GPU more than it saves (benchmarks/generalization/README.md)."""

    enable_sleeping: bool = False
    sleep_tolerance: float | None = None
    """Velocity under which a tree counts as at rest (None: MuJoCo's 1e-3)."""


@configclass
class PhysicsCfg(PresetCfg):
    """Physics backends: Newton + MuJoCo-Warp (kit-less, the default) or PhysX (Isaac Sim / OV PhysX)."""

    newton_mjwarp = NewtonCfg(
        solver_cfg=MJWarpCfg(
            solver="newton", integrator="implicitfast", njmax=300, nconmax=100, cone="elliptic",
            # friction 10x stiffer than the normal direction (elliptic cones): MuJoCo's soft friction lets a
            # pinched box creep down ~0.8 mm in 2 s at impratio 1, < 0.1 mm at 10 (benchmarks/contact)
            impratio=10.0,
            # 30 iterations, not MuJoCo-Warp's 100: the same expert success and grasp fidelity at 1024 envs on
            # the GPU, 1.2x the expert's env-steps/s (benchmarks/contact)
            iterations=30,
        ),
        num_substeps=2,
    )
    physx = PhysxAutoCfg(isaacsim_physx=PhysxCfg(), ovphysx=OvPhysxCfg())
    default = newton_mjwarp


@configclass
class BoxGraspEnvCfg(ManagerBasedRLEnvCfg):
    """OpenArm-BoxGrasp: the VLA task (front camera + joint state, binary success reward)."""

    scene: BoxGraspSceneCfg = BoxGraspSceneCfg(num_envs=16, env_spacing=2.0)
    observations: ObservationsCfg = ObservationsCfg()
    actions: ActionsCfg = ActionsCfg()
    events: EventCfg = EventCfg()
    rewards: RewardsCfg = RewardsCfg()
    terminations: TerminationsCfg = TerminationsCfg()

    instruction: str = INSTRUCTION
    """The language instruction of this task (stored with demos, given to the VLA)."""

    success: mdp.SuccessCfg = mdp.SuccessCfg()
    """What counts as success: lift height, hold length (``env.success.hold_steps=...``), pad force."""

    variation: mdp.SceneVariationCfg = mdp.SceneVariationCfg()
    """Domain randomization, distractors, instruction templates and the OOD knobs (``env.variation.*``); all off
    here, on in ``OpenArm-BoxGrasp-DR`` (:class:`BoxGraspDREnvCfg`)."""

    group_size: int = 8
    """G, the envs of a group: consecutive env ids share the box variant (size, colour), and GRPO resets each group
    to one start. The one source of G: GRPO reads it from here (``env.group_size=...``)."""

    __checks__ = {
        "scene.num_envs": ">= 1", "scene.env_spacing": "> 0",
        "scene.front_camera.width": IMAGE_SIZE, "scene.front_camera.height": IMAGE_SIZE,
        "decimation": ">= 1", "episode_length_s": "> 0", "sim.dt": "> 0", "sim.render_interval": ">= 1",
        "seed": ">= 0", "group_size": ">= 1", "instruction": "non-empty",
        "success.lift_height": ("> 0", "success: the box held this far above its resting height"),
        "success.hold_steps": (">= 1", "success: control steps the grasp must hold, lifted"),
        "success.min_pad_force": (">= 0", "a pad is on the box from this normal force on"),
        "terminations.box_off_table.params.minimum_height": (float, "any"),
        "events.box_mass.params.mass_distribution_params": (tuple[float, float], "> 0"),
    }
    """Ranges of the keys this task owns or users override (:mod:`openarm_vla.checks`: checked with their types
    before the env is built); the rest of the config is Isaac Lab's."""
    __rules__ = (("episode_length_s >= sim.dt * decimation", "an episode of at least one control step"),)

    __live_fields__ = tuple(f"variation.{k}" for k in (
        "table_colors", "box_colors", "light_intensity", "light_color", "camera_pos_jitter", "camera_rot_jitter_deg",
        "image_noise_std", "num_distractors", "instruction_templates", "absent_color_instruction"))
    """Fields a built env reads at every reset, so they may be changed on it between evaluations without a rebuild
    (the OOD suite does). It must have been built with what they need (table and box colours, distractor slots:
    :meth:`~.mdp.variation.SceneVariation._check_live` says if not); the others change the scene or its events."""

    cycle_variants: bool = False
    """Group k gets box variant k mod 6 instead of a seeded draw (a few groups cover every variant)."""

    def __post_init__(self):
        self.decimation = 2
        self.episode_length_s = 8.0  # 400 steps at 50 Hz
        self.sim.dt = 0.01
        self.sim.render_interval = self.decimation
        self.sim.physics = PhysicsCfg()
        self.viewer.eye = (1.2, 0.9, 0.8)
        self.viewer.lookat = (0.25, 0.0, 0.05)
        self.set_group_size(self.group_size)

    def set_group_size(self, group_size: int, cycle_variants: bool | None = None) -> None:
        """Envs [k*G, (k+1)*G) share one box variant; keep the clone plan and the reset event in step."""
        self.group_size = group_size
        if cycle_variants is not None:
            self.cycle_variants = cycle_variants
        self.scene.clone_cfg = CloneCfg(clone_strategy=mdp.grouped_clone_strategy(group_size, self.cycle_variants))
        self.events.reset_box.params["group_size"] = group_size
        self.events.reset_box.params["cycle_variants"] = self.cycle_variants
        self.sync_variation()

    def sync_variation(self) -> None:
        """Make the scene, events and image term follow ``variation`` (called by :meth:`set_group_size`, which
        ``factory.configure`` calls after the overrides): box sizes and region, the variation event, the
        distractor slots, the arm start offset and the mid-episode box move."""
        v = self.variation
        bad = [f"env.variation.box_colors.{k}={show}: must be 3 values in [0, 1]" for k, c in v.box_colors.items()
               if len(show := list(c)) != 3 or not all(isinstance(x, (int, float)) and 0 <= x <= 1 for x in show)]
        if bad:  # dict entries: the declared checks do not reach them
            raise ConfigError(bad)
        if v.box_sizes is None:  # the task's values, written out (what the OOD suite compares its shifts against)
            v.box_sizes = [tuple(s) for s in BOX_SIZES]
        if v.box_x_range is None:
            v.box_x_range = tuple(BOX_WORKSPACE["x"])
        if v.box_y_range is None:
            v.box_y_range = tuple(BOX_WORKSPACE["y"])
        sizes = [tuple(s) for s in v.box_sizes]
        params = self.events.reset_box.params
        params["sizes"] = sizes
        params["x_range"] = tuple(v.box_x_range)
        params["y_range"] = tuple(v.box_y_range)
        if sizes != [tuple(s) for s in BOX_SIZES]:
            self.scene.box.spawn = box_spawn_cfg(sizes)

        def put(owner, name, value):  # set a term, or clear it only where it was ever set (base config unchanged)
            if value is not None or getattr(owner, name, None) is not None:
                setattr(owner, name, value)

        draws = v.draws_anything()
        put(self.events, "scene_variation", EventTerm(func=mdp.SceneVariation, mode="reset") if draws else None)
        for i in range(mdp.MAX_DISTRACTORS):
            put(self.scene, f"distractor_{i}", distractor_cfg(i, sizes) if i < v.slots() else None)
        offset = EventTerm(func=mdp.offset_arm_start, mode="reset", params={"max_offset": v.arm_start_offset})
        put(self.events, "arm_start_offset", offset if v.arm_start_offset > 0 else None)
        step_s = self.sim.dt * self.decimation  # an interval event that runs every control step
        move = EventTerm(func=mdp.move_box_once, mode="interval", interval_range_s=(step_s, step_s),
                         params={"step": v.move_box_at_step, "x_range": params["x_range"], "y_range": params["y_range"]})
        put(self.events, "move_box", move if v.move_box_at_step > 0 else None)
        rgb = getattr(self.observations.policy, "front_rgb", None)
        if rgb is not None:
            rgb.func = mdp.policy_image if draws else mdp.image_rgb

    def set_camera_resolution(self, width: int, height: int | None = None) -> None:
        self.scene.front_camera.width = width
        self.scene.front_camera.height = height or width

    def remove_camera(self) -> None:
        """The scene without its camera (physics-only measurements): no render cost, no image observation."""
        self.scene.front_camera = None
        if getattr(self.observations.policy, "front_rgb", None) is not None:
            self.observations.policy.front_rgb = None

    def play_mode(self):
        """Watching a policy: 4 envs and a video camera (Isaac Lab's play scripts and the ``-Play`` gym ids call
        this); ``isaaclab play ... --video`` records env 0 through it (:meth:`add_video_recorder`)."""
        super().play_mode()
        self.scene.num_envs = 4
        self.add_video_recorder()

    def add_video_recorder(self, width: int = 320, height: int = 240, video_length: int = 250) -> None:
        """A viewer camera (``video_camera``, Newton's Warp renderer) and an Isaac Lab video recorder on it.

        Isaac Lab's ``--video`` records from a visualizer unless the env config declares recorders; with none it
        starts a headless Kit visualizer, which needs Isaac Sim. A recorder on a scene camera records kit-less
        (frames by the Warp ray tracer, mp4 by moviepy + imageio-ffmpeg). ``--video`` gives the recorder its
        output directory; a recorder without one is dropped at start-up
        (:class:`~.mdp.events.keep_requested_video_recorders`), so playing without ``--video`` writes no files.
        """
        self.scene.video_camera = CameraCfg(
            prim_path="{ENV_REGEX_NS}/video_camera",
            offset=CameraCfg.OffsetCfg(pos=VIDEO_EYE, rot=look_at_quat_world(VIDEO_EYE, VIDEO_TARGET), convention="world"),
            data_types=["rgb"],
            spawn=sim_utils.PinholeCameraCfg(focal_length=18.0, horizontal_aperture=20.955, clipping_range=(0.05, 5.0)),
            width=width,
            height=height,
            renderer_cfg=NewtonWarpRendererCfg(),
        )
        self.video_recorders = [VideoRecorderCfg(source="sensor:video_camera", video_length=video_length,
                                                 output_filename_prefix="openarm")]
        self.events.video_on_request = EventTerm(func=mdp.keep_requested_video_recorders, mode="reset")


DR_TABLE_COLORS = [
    (0.55, 0.55, 0.58),  # the base grey
    (0.45, 0.30, 0.18),  # wood
    (0.62, 0.48, 0.32),  # light wood
    (0.80, 0.80, 0.78),  # white laminate
    (0.25, 0.27, 0.30),  # dark grey
    (0.30, 0.40, 0.32),  # green felt
]
DR_BOX_COLORS = {
    "red": (0.80, 0.10, 0.08),
    "blue": (0.08, 0.22, 0.80),
    "green": (0.10, 0.55, 0.15),
    "yellow": (0.90, 0.78, 0.08),
    "orange": (0.95, 0.42, 0.05),
    "purple": (0.42, 0.12, 0.62),
}
"""The training palette of box colour names (the OOD suite holds other names out)."""
DR_INSTRUCTIONS = [
    "pick up the {color} box",
    "grab the {color} box",
    "lift the {color} box",
    "pick the {color} box up",
    "grasp the {color} carton and lift it",
]


@configclass
class BoxGraspDREnvCfg(BoxGraspEnvCfg):
    """OpenArm-BoxGrasp-DR: the VLA task with domain randomization, 0-3 distractor boxes and an instruction that
    names the target's colour (docs/generalization.md). Same action, success and group interfaces."""

    def __post_init__(self):
        self.variation = mdp.SceneVariationCfg(
            table_colors=list(DR_TABLE_COLORS),
            box_colors=dict(DR_BOX_COLORS),
            light_intensity=(1800.0, 3200.0),
            light_color=((0.85, 0.85, 0.80), (1.0, 1.0, 1.0)),
            camera_pos_jitter=0.02,
            camera_rot_jitter_deg=3.0,
            image_noise_std=4.0,
            num_distractors=(0, 3),
            instruction_templates=list(DR_INSTRUCTIONS),
        )
        super().__post_init__()


@configclass
class BoxGraspStateEnvCfg(BoxGraspEnvCfg):
    """OpenArm-BoxGrasp-State: privileged state, top-down end-effector actions and dense shaping, for PPO.

    Shaped after Isaac Lab's lift task (tanh-kernel reach, lift and hold terms, small action-rate and joint
    velocity penalties) on the same scene and success rule, with what our box needs besides: turning the
    hand to the box's faces, and holding the box lifted for the hold rule's 0.2 s. The action is
    :class:`~.mdp.actions.TopDownDeltaAction` (5 dims) instead of the VLA's 8 absolute joint targets, and
    success does not end the episode (see :attr:`~.mdp.success.SuccessCfg.terminate`); episodes last 5 s.
    """

    @configclass
    class StateActionsCfg:
        arm = mdp.TopDownDeltaActionCfg(asset_name="robot")

    @configclass
    class StateObservationsCfg:
        @configclass
        class PolicyCfg(ObsGroup):
            joint_pos = ObsTerm(func=mdp.joint_state)
            joint_vel = ObsTerm(func=mdp.joint_vel)
            tcp_pos = ObsTerm(func=mdp.tcp_pos)
            box_pos = ObsTerm(func=mdp.box_pos)
            box_quat = ObsTerm(func=mdp.box_quat)
            tcp_to_box = ObsTerm(func=mdp.tcp_to_box)
            grasp_yaw_error = ObsTerm(func=mdp.grasp_yaw_error)
            pad_contact = ObsTerm(func=mdp.pad_contact)
            tcp_target_error = ObsTerm(func=mdp.tcp_target_error)
            actions = ObsTerm(func=mdp.last_action)

            def __post_init__(self):
                self.enable_corruption = False
                self.concatenate_terms = True

        policy: PolicyCfg = PolicyCfg()

    @configclass
    class ShapedRewardsCfg:
        reach = RewTerm(func=mdp.reach_box, weight=1.0, params={"std": 0.1})
        reach_fine = RewTerm(func=mdp.reach_box, weight=1.0, params={"std": 0.02})
        align = RewTerm(func=mdp.yaw_aligned_near_box, weight=0.5, params={"std": 0.2, "reach_std": 0.05})
        grasp = RewTerm(func=mdp.box_held, weight=2.0)
        lift = RewTerm(func=mdp.box_lifted, weight=10.0, params={"height": 0.12})
        hold = RewTerm(func=mdp.box_held_high, weight=5.0)
        success = RewTerm(func=mdp.success_bonus, weight=5.0)
        action_rate = RewTerm(func=mdp.action_rate_l2, weight=-1e-3)
        joint_vel = RewTerm(func=mdp.joint_vel_l2, weight=-1e-4, params={"asset_cfg": SceneEntityCfg("robot")})

    actions: StateActionsCfg = StateActionsCfg()
    observations: StateObservationsCfg = StateObservationsCfg()
    rewards: ShapedRewardsCfg = ShapedRewardsCfg()

    def __post_init__(self):
        super().__post_init__()
        self.scene.front_camera = None
        self.episode_length_s = 5.0  # 250 steps
        self.success.terminate = False
