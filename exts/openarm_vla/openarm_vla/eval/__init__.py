"""Policy evaluation: episode loop, metrics, videos and the policy factory.

    rollout   run_episodes: policy-agnostic loop collecting finished-episode records
    metrics   success rate with a Wilson 95% CI, failure table, summary dict
    video     atomic mp4 writing from uint8 frames (imageio-ffmpeg)
    policies  make_policy(spec, env, device): random | expert | preset:NAME | checkpoint dir
"""

from .metrics import failure_table, format_failure_table, summarize, wilson_interval
from .rollout import run_episodes

__all__ = ["failure_table", "format_failure_table", "run_episodes", "summarize", "wilson_interval"]
