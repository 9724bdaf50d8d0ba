"""The math of SFT and GRPO as pure functions of tensors (each tested against hand-computed cases).

Shapes: N trajectories (B groups x G members, consecutive ids form a group), M stored chunks, each of
C actions x D dims = C * D action tokens over the 256-way slice.

GRPO follows SimpleVLA-RL (``docs/grpo.md``):
    advantage     A_i = (r_i - mean_g r) / (std_g r + 1e-6), unbiased std, broadcast to every valid token
    filter        keep a group iff its success rate lies strictly inside (low, high) (default (0, 1))
    mask          token (c, d) of a chunk starting at env step t0 is valid iff t0 + c < finish step
    loss          l = -min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A), rho = exp(logp - logp_old)
    aggregation   seq-mean-token-mean: mean over trajectories of each trajectory's token mean (SimpleVLA-RL)
                  token-mean: sum over all valid tokens / their count (DAPO, TRL)
Both aggregations are written as per-token weights, so the loss is a plain weighted sum over any split of
a mini-batch into micro-batches, and the gradient does not depend on the micro-batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AGGREGATIONS = ("seq-mean-token-mean", "token-mean")


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """[N] rewards -> [N] group-normalized advantages (r - mean_g) / (std_g + eps), std with Bessel's
    correction (torch's default, as every anchor uses); a zero-variance group gets 0."""
    r = rewards.float().reshape(-1, group_size)
    mean = r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, keepdim=True) if group_size > 1 else torch.ones_like(mean)
    return ((r - mean) / (std + eps)).reshape(-1)


def keep_groups(rewards: torch.Tensor, group_size: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """[N] binary rewards -> [B] bool: dynamic sampling keeps groups whose success rate lies in (low, high)."""
    rate = rewards.float().reshape(-1, group_size).mean(dim=1)
    return (rate > low) & (rate < high)


def action_token_mask(chunk_start: torch.Tensor, finish_step: torch.Tensor, chunk: int, action_dim: int) -> torch.Tensor:
    """[M] env step at which each chunk's first action ran, [M] its trajectory's finish step (number of steps
    it ran) -> [M, C, D] bool: the tokens of actions at or after the finish (inside the last chunk) are masked."""
    step = chunk_start[:, None] + torch.arange(chunk, device=chunk_start.device)[None]  # [M, C]
    return (step < finish_step[:, None]).unsqueeze(-1).expand(-1, chunk, action_dim)


def token_weights(mask: torch.Tensor, traj: torch.Tensor, aggregation: str = "seq-mean-token-mean",
                  n_traj: float | None = None, n_tokens: float | None = None) -> torch.Tensor:
    """Per-token loss weights of one mini-batch (all its chunks): summing ``weights * token_loss`` gives
    the aggregated loss. ``traj`` [M] names each chunk's trajectory (0..T-1 within the mini-batch).

    ``n_traj`` / ``n_tokens``: the mini-batch's trajectory / valid-token count over all ranks (default: this
    one's), so that summing every rank's gradient gives the gradient of the global mini-batch's loss.
    """
    m = mask.float()
    if aggregation == "token-mean":
        return m / max(float(n_tokens) if n_tokens is not None else float(m.sum()), 1.0)
    if aggregation != "seq-mean-token-mean":
        raise ValueError(f"aggregation {aggregation!r}: expected one of {AGGREGATIONS}")
    if traj.numel() == 0:
        return m
    per_traj = torch.zeros(int(traj.max()) + 1, device=m.device).index_add_(0, traj, m.flatten(1).sum(1))  # valid tokens
    count = float(n_traj) if n_traj is not None else float((per_traj > 0).sum())
    return m / (per_traj[traj].clamp(min=1.0) * max(count, 1.0))[:, None, None]


def clipped_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, weights: torch.Tensor,
                       clip_low: float = 0.2, clip_high: float = 0.28) -> tuple[torch.Tensor, dict]:
    """PPO-clip surrogate per token with asymmetric clipping, aggregated by ``weights`` (zero = masked).

    logp / old_logp / weights [M, C, D]; advantages [M] (one per chunk's trajectory) or [M, C, D].
    Returns (loss, stats): stats over the valid tokens, detached 0-d tensors (reading them waits for the device:
    the caller does it once per update): clip_frac_low (rho < 1 - eps_low with A < 0, the clipped side is active),
    clip_frac_high (rho > 1 + eps_high with A > 0), approx_kl (k3: (rho - 1) - log rho), ratio_dev (mean |rho - 1|).
    """
    adv = advantages if advantages.dim() == logp.dim() else advantages.reshape(-1, *([1] * (logp.dim() - 1)))
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    loss = (per_token * weights).sum()
    with torch.no_grad():
        valid = weights > 0
        n = valid.sum().clamp(min=1)
        adv_b = adv.expand_as(ratio)
        stats = {
            "clip_frac_low": ((ratio < 1.0 - clip_low) & (adv_b < 0) & valid).sum() / n,
            "clip_frac_high": ((ratio > 1.0 + clip_high) & (adv_b > 0) & valid).sum() / n,
            "approx_kl": (((ratio - 1.0) - log_ratio) * valid).sum() / n,
            "ratio_dev": ((ratio - 1.0).abs() * valid).sum() / n,
        }
    return loss, stats


def sft_token_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the 256-way action logits [B, C, D, K] against target bins [B, C, D] (OFT parallel
    decoding: every token of the chunk at once), averaged over the tokens where ``mask`` [B, C] or
    [B, C, D] is true (all if None). Returns (loss, token accuracy of the argmax)."""
    ce = F.cross_entropy(logits.float().flatten(0, -2), targets.long().flatten(), reduction="none").view(targets.shape)
    hit = (logits.argmax(-1) == targets).float()
    if mask is None:
        return ce.mean(), hit.mean()
    m = (mask[..., None] if mask.dim() == targets.dim() - 1 else mask).expand_as(ce).float()
    n = m.sum().clamp(min=1.0)
    return (ce * m).sum() / n, (hit * m).sum() / n
