"""Teleoperation: end-effector delta commands mapped through IK to the VLA's 8-DoF joint action.

- :mod:`.ee_delta`: (dx, dy, dz, droll, dpitch, dyaw) + gripper -> normalized 8-DoF action (pure + stateful).
- :mod:`.keyboard`: the key map, on-screen help and a key-state tracker for the Newton GL viewer window.
"""

from .ee_delta import EEDeltaCfg, EEDeltaController, EEDeltaResult, ee_delta_to_action, rpy_to_matrix

__all__ = ["EEDeltaCfg", "EEDeltaController", "EEDeltaResult", "ee_delta_to_action", "rpy_to_matrix"]
