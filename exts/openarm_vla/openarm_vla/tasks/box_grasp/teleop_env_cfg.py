"""OpenArm-BoxGrasp-Teleop: the VLA task set up for recording demonstrations by hand.

The env's action stays the VLA's 8-DoF normalized joint action, so a recorded demo holds exactly what
the VLA learns. The teleop command (end-effector deltas + gripper toggle) is turned into that action
outside the env, by :class:`openarm_vla.teleop.EEDeltaController` (IK), with the settings in
:attr:`BoxGraspTeleopEnvCfg.teleop`. Differences from ``OpenArm-BoxGrasp``: one env, each env its own box
variant (group size 1), 20 s episodes (people are slower than the scripted expert), and
:meth:`enable_viewer` adds the Newton GL viewer window (kit-less) the keyboard is read from.
"""

from __future__ import annotations

from dataclasses import field

from isaaclab.utils import configclass

from .box_grasp_env_cfg import BoxGraspEnvCfg


@configclass
class TeleopCfg:
    """End-effector delta teleop settings (see :mod:`openarm_vla.teleop`)."""

    pos_step: float = 0.004
    """TCP translation per control step while a move key is held [m] (0.2 m/s at 50 Hz)."""
    rot_step: float = 0.03
    """TCP rotation per control step while a rotate key is held [rad]."""
    ik_iters: int = 8
    """Damped least-squares IK iterations per control step."""

    __checks__ = {"pos_step": "> 0", "rot_step": "> 0", "ik_iters": ">= 1"}


@configclass
class BoxGraspTeleopEnvCfg(BoxGraspEnvCfg):
    """OpenArm-BoxGrasp-Teleop: end-effector deltas through IK for keyboard / spacemouse teleop."""

    teleop: TeleopCfg = field(default_factory=TeleopCfg)

    def __post_init__(self):
        super().__post_init__()
        self.scene.num_envs = 1
        self.episode_length_s = 20.0  # 1000 control steps
        self.set_group_size(1)

    def enable_viewer(self, width: int = 1280, height: int = 800) -> None:
        """Open the Newton GL viewer window (pyglet + ImGui) when the env is built (kit-less)."""
        from isaaclab_visualizers.newton import NewtonGLVisualizerCfg

        self.sim.visualizer_cfgs = [
            NewtonGLVisualizerCfg(
                window_width=width,
                window_height=height,
                eye=(0.95, -0.75, 0.65),
                lookat=(0.25, 0.0, 0.08),
                enable_picking=False,  # right-drag would push the box outside the recorded actions
            )
        ]
