"""Registered Isaac Lab tasks of openarm_vla (importing this registers the gym ids)."""

from .box_grasp.config import openarm as _openarm  # noqa: F401
from .box_grasp.config.openarm import TASKS

TASK_IDS = tuple(TASKS)
