"""openarm_vla: OpenArm box grasping from demonstrations to a VLA improved with GRPO, on Isaac Lab 3.0.

Heavy subpackages (tasks need Isaac Lab, vla needs transformers) load on first use, so that
``import openarm_vla`` stays cheap; ``import openarm_vla.tasks`` registers the gym ids.
"""

__version__ = "0.1.0"
