"""GRPO of the VLA from the binary success reward (``scripts/train.py --algo grpo``): SimpleVLA-RL's recipe.

Override any field from the command line as ``agent.<field>=value`` (Isaac Lab's Hydra layer), or from a
YAML recipe under ``configs/``. The group size G is the env's (``env.group_size``, 8 by default: consecutive env
ids form a group and share the box variant and the start); ``num_envs = oversample x num_groups x G``. Under ``torchrun`` with K processes each rank runs ``num_groups / K`` of the
groups in its own envs (``--num_envs`` is one rank's); ``num_groups``, ``batch_size`` and ``min_groups`` count
the whole update.
"""

from __future__ import annotations

from isaaclab.utils import configclass

from .vla_trainer_cfg import VLATrainerCfg


@configclass
class BoxGraspGRPOCfg(VLATrainerCfg):
    """Group-relative policy optimization with dynamic sampling, asymmetric clipping, no KL, no critic."""

    init: str | None = None
    """The SFT checkpoint directory to start from (``--init``); without it a from-scratch model of ``preset``
    (smoke tests and throughput only: GRPO needs groups that sometimes succeed)."""

    num_groups: int = 64
    """B: groups an update is made of, over all ranks (dynamic sampling fills it with mixed-outcome groups)."""
    oversample: float = 1.0
    """Each round runs round(oversample x B) groups (spec (a) 6: 1.5-3 fills B in fewer rounds; SimpleVLA-RL: 1)."""
    temperature: float = 1.6
    """Sampling temperature of the 256-way action-token slice (rollout, old and new log-probs alike)."""
    clip_low: float = 0.2
    clip_high: float = 0.28
    """Asymmetric PPO clip of the token ratio: [1 - clip_low, 1 + clip_high]."""
    keep_low: float = 0.0
    keep_high: float = 1.0
    """Dynamic sampling keeps groups whose success rate lies strictly inside (keep_low, keep_high)."""
    max_rounds: int = 10
    """Rollout rounds per iteration at most while fewer than ``num_groups`` groups are kept."""
    min_groups: int | None = None
    """Update on what was kept after ``max_rounds`` if at least this many groups (None = num_groups // 4); else skip."""
    aggregation: str = "seq-mean-token-mean"
    """seq-mean-token-mean (SimpleVLA-RL: per-trajectory token mean, then mean) | token-mean (DAPO / TRL)."""
    recompute_old_logprobs: bool = True
    """Recompute old log-probs after the rollout (SimpleVLA-RL); False reuses the rollout's."""
    max_rollout_steps: int | None = None
    """Stop a round after this many env steps (unfinished trajectories count as failures); None = the task's horizon."""

    max_iterations: int = 100
    lr: float = 5e-6
    """Constant after the warm-up (SimpleVLA-RL's, for the 7B model)."""
    batch_size: int = 128
    """Trajectories per optimizer step (mini-batch): 512 kept trajectories make 4 optimizer steps."""
    micro_batch_size: int = 512
    """Chunk samples per forward/backward in the update and the log-prob recompute."""

    eval_every: int = 4
    """Greedy validation before training and every this many iterations (0 = only before and after)."""
    eval_episodes: int = 256
    """Held-out initial states of the validation bank (one episode each, at most num_envs); 0 = no validation."""
    save_every: int = 5

    __checks__ = {
        "num_groups": ">= 1", "oversample": (">= 1", "a round runs at least num_groups groups"),
        "temperature": ("> 0", "greedy rollouts never give a group mixed outcomes"),
        "clip_low": ("in (0, 1)", "the ratio's lower clip is 1 - clip_low"), "clip_high": "> 0",
        "keep_low": ("< 1", "no success rate lies above 1; -0.01 keeps all-failed groups too (timing runs)"),
        "keep_high": ("> 0", "no success rate lies below 0"), "max_rounds": ">= 1", "min_groups": ">= 1",
        "aggregation": "in {seq-mean-token-mean, token-mean}", "max_rollout_steps": ">= 1",
        "batch_size": ">= 1", "micro_batch_size": ">= 1",
    }
    __rules__ = (("keep_low < keep_high", "dynamic sampling keeps success rates strictly between them"),
                 ("min_groups <= num_groups", "an update never holds more than num_groups groups"))

    def rollout_layout(self, group_size: int, num_envs: int | None, world: int) -> tuple[int, int, int, int]:
        """(B: groups this rank keeps per update, groups it rolls out per round, ``min_groups`` and ``num_groups``
        over all ranks). With ``num_envs`` (``--num_envs``, one rank's envs) B follows from it and ``oversample``;
        else from ``num_groups`` split over the ``world`` ranks. The one place this arithmetic lives."""
        if num_envs is not None:
            rollout = num_envs // group_size
            B = max(1, round(rollout / self.oversample))
            total = B * world
        else:
            B = self.num_groups // world
            rollout, total = max(B, round(self.oversample * B)), self.num_groups
        return B, rollout, (self.min_groups if self.min_groups is not None else max(1, total // 4)), total

    def run_problems(self, env_cfg, num_envs: int | None, world: int) -> list[str]:
        """The rules that need the run: the env's group size G, ``num_envs`` (``--num_envs``, one rank's envs) or,
        without it, the envs ``num_groups`` makes per rank over ``world`` processes."""
        G = env_cfg.group_size
        if G < 2:
            return [f"env.group_size={G}: must be >= 2 for GRPO (a group of one has no relative advantage)"]
        if num_envs is not None and num_envs % G:
            return [f"--num_envs={num_envs}, env.group_size={G}: need num_envs % group_size == 0 (a group is G "
                    "consecutive envs: groups never split)"]
        if num_envs is None and self.num_groups % world:
            return [f"agent.num_groups={self.num_groups}, {world} processes (WORLD_SIZE): need num_groups % world_size "
                    "== 0 (a group never spans ranks)"]
        _, rollout, _, _ = self.rollout_layout(G, num_envs, world)
        if self.eval_episodes > rollout * G:
            return [f"agent.eval_episodes={self.eval_episodes}: must be <= the {rollout * G} rollout envs per rank (the "
                    "validation bank runs in one pass over the envs; lower agent.eval_episodes or raise the envs)"]
        return []
