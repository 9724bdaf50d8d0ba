"""Greedy validation of the VLA during training, on a fixed bank of held-out initial states.

SFT and GRPO both call :func:`validate`: one greedy episode from every bank state, success with its
Wilson 95% CI, the failure table, and a few clips (one success and one failure where there are both) for
TensorBoard / W&B.
"""

from __future__ import annotations

from openarm_vla.eval.bank import EvalBank, evaluate_bank
from openarm_vla.eval.metrics import summarize
from openarm_vla.eval.video import EpisodeVideo, pick_clips
from openarm_vla.policies.vla import VLAEnvPolicy
from openarm_vla.rollout import FAILURE_CATEGORIES


def validate(env, vla, bank: EvalBank, videos: int = 2, progress: bool = True, watch: int = 8) -> tuple[dict, list[dict], list[dict]]:
    """-> (metrics ``eval/*``, episode records, clips). ``watch`` envs are filmed to pick ``videos`` clips from."""
    was_training = vla.model.training
    vla.model.eval()
    policy = VLAEnvPolicy.for_env(vla, env, temperature=0.0)
    film = EpisodeVideo(range(min(watch, bank.pass_size(0))), episodes=1) if videos > 0 else None
    try:
        records = evaluate_bank(env, policy, bank, on_step=(lambda s, a: film(s)) if film else None, progress=progress,
                                desc="validation")
    finally:
        vla.model.train(was_training)
    s = summarize(records, FAILURE_CATEGORIES)
    metrics = {"eval/success": s["success_rate"], "eval/ci_low": s["ci95"][0], "eval/ci_high": s["ci95"][1],
               "eval/episodes": s["num_episodes"], "eval/mean_steps": s["mean_steps"],
               **{f"eval/failures/{k}": v for k, v in s["failure_counts"].items()}}
    return metrics, records, pick_clips(film.clips, videos) if film is not None else []
