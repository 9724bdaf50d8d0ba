"""MDP terms of the OpenArm box-grasp task (Isaac Lab's own terms are re-exported)."""

from isaaclab.envs.mdp import *  # noqa: F401,F403

from .actions import *  # noqa: F401,F403
from .events import *  # noqa: F401,F403
from .observations import *  # noqa: F401,F403
from .rewards import *  # noqa: F401,F403
from .success import *  # noqa: F401,F403
from .variation import *  # noqa: F401,F403
from .terminations import *  # noqa: F401,F403
