"""Teleoperation: keyboard (or Isaac Sim device) commands through the end-effector delta controller
(:mod:`openarm_vla.robots.ee_delta`) to the VLA's 8-DoF joint action, recorded as demos.

- :mod:`.keyboard`: the key map, on-screen help and a key-state tracker for the Newton GL viewer window.
- :mod:`.recording`: the recording loop (``scripts/record_demos.py``).
"""
