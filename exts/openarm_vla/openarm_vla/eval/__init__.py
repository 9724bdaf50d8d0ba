"""Evaluation: metrics (success with a Wilson 95% CI, failure table) and episode videos.

The episode loops live in :mod:`openarm_vla.rollout`, the policies in :mod:`openarm_vla.policies`;
held-out evaluation banks in :mod:`openarm_vla.eval.bank`; the frozen OOD suite in :mod:`openarm_vla.eval.suite`
(its runner :mod:`~openarm_vla.eval.suite_run`, its table :mod:`~openarm_vla.eval.suite_table`).
"""

from .metrics import failure_table, format_failure_table, summarize, wilson_interval

__all__ = ["failure_table", "format_failure_table", "summarize", "wilson_interval"]
