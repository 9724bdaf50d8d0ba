"""Sampling and log-probabilities over the 256-way action slice.

Why pure functions: rollout (sample + log-prob) and the GRPO update (log-prob + entropy of the same
tokens under new weights) must use the same temperature-scaled distribution, as SimpleVLA-RL does:
p = softmax(logits / T). Greedy (T None or 0) takes the argmax and reports log-probs at T = 1.
All functions take float logits [..., n_bins] and compute in float32.
"""

from __future__ import annotations

import torch


def _scaled(logits: torch.Tensor, temperature: float | None) -> torch.Tensor:
    if temperature is not None and temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0/None = greedy), got {temperature}")
    logits = logits.float()
    return logits if not temperature else logits / temperature


def sample_actions(
    logits: torch.Tensor, temperature: float | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (idx long [...], logprob float32 [...]); idx ~ softmax(logits / T), argmax if T is None/0."""
    logp = torch.log_softmax(_scaled(logits, temperature), dim=-1)
    if not temperature:
        idx = logp.argmax(dim=-1)
    else:
        flat = logp.reshape(-1, logp.shape[-1]).exp()
        idx = torch.multinomial(flat, 1, generator=generator).reshape(logp.shape[:-1])
    return idx, logp.gather(-1, idx[..., None]).squeeze(-1)


def logprobs_of(logits: torch.Tensor, idx: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
    """log softmax(logits / T)[idx], float32, differentiable w.r.t. logits."""
    logp = torch.log_softmax(_scaled(logits, temperature), dim=-1)
    return logp.gather(-1, idx.long()[..., None]).squeeze(-1)


def entropy(logits: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
    """Entropy (nats) of softmax(logits / T) over the last dim."""
    logp = torch.log_softmax(_scaled(logits, temperature), dim=-1)
    return -(logp.exp() * logp).sum(-1)
