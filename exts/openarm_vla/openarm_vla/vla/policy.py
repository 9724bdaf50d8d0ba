"""Batched policy runner: observations of all envs -> one forward -> per-env action-chunk queues.

Why chunk queues per env: one forward yields `chunk` actions (OFT parallel decoding), replayed one
per env step. Envs reset at different times, so each env keeps its own queue and position; an env
whose queue is empty (or was cleared by `reset`) gets a fresh chunk. Only those envs are forwarded
(the batch is gathered with index_select), so after desynchronizing resets the cost per step is
proportional to the envs that actually need a new chunk. Tokens and log-probs of every chunk are
returned for RL; `logprobs()` recomputes them under the current weights for the update.
"""

from __future__ import annotations

import torch

from .model import OpenVLAForActionPrediction
from .preprocess import ImagePreprocessor
from .prompt import tokenize_prompts
from .sampling import entropy, logprobs_of, sample_actions
from .text_tokenizer import TextTokenizer
from .tokenizer import ActionTokenizer


def action_stats(norm_stats: dict, unnorm_key: str | None = None) -> dict:
    """The action statistics in `norm_stats`: accepts {key: {"action": {...}}}, {"action": {...}} or
    the bare {"q01": ..., "q99": ...}; `unnorm_key` picks the dataset when there are several."""
    if "q01" in norm_stats:
        return norm_stats
    if "action" in norm_stats:
        return norm_stats["action"]
    if unnorm_key is None:
        if len(norm_stats) != 1:
            raise ValueError(f"norm_stats has datasets {sorted(norm_stats)}; pass unnorm_key to pick one")
        unnorm_key = next(iter(norm_stats))
    if unnorm_key not in norm_stats or "action" not in norm_stats[unnorm_key]:
        raise ValueError(f"norm_stats has no action statistics for unnorm_key {unnorm_key!r} (has {sorted(norm_stats)})")
    return norm_stats[unnorm_key]["action"]


def unnormalize(actions: torch.Tensor, stats: dict) -> torch.Tensor:
    """OpenVLA's bounds_q99 un-normalization: 0.5 * (a + 1) * (q99 - q01) + q01 where mask, else a."""
    q01 = torch.as_tensor(stats["q01"], dtype=actions.dtype, device=actions.device)
    q99 = torch.as_tensor(stats["q99"], dtype=actions.dtype, device=actions.device)
    if q01.shape[-1] != actions.shape[-1]:
        raise ValueError(f"action stats have {q01.shape[-1]} dims, actions have {actions.shape[-1]}")
    mask = torch.as_tensor(stats.get("mask", [True] * q01.shape[-1]), dtype=torch.bool, device=actions.device)
    return torch.where(mask, 0.5 * (actions + 1.0) * (q99 - q01) + q01, actions)


class VLAPolicy:
    """Runs an OpenVLAForActionPrediction over N envs.

    act(obs, instruction, temperature) -> dict:
        actions      [N, action_dim] float32, in [-1, 1] (un-normalized with q01/q99 if enabled)
        token_idx    [N, chunk, action_dim] long, 256-way slice indices of each env's current chunk
        logprobs     [N, chunk, action_dim] float32, log softmax(logits / T) of those indices
        chunk_step   [N] long, index in the chunk of the returned action (0 = fresh chunk)
        new_chunk    [N] bool, envs that got a fresh chunk this call
        chunk_inputs {env_ids [M], pixel_values, input_ids, attention_mask} for those M envs: what
                     the GRPO update needs to recompute log-probs with `logprobs()`.
    temperature None or 0 = greedy (evaluation), e.g. 1.6 = SimpleVLA-RL rollouts.
    """

    def __init__(
        self,
        model: OpenVLAForActionPrediction,
        tokenizer: TextTokenizer,
        num_envs: int,
        action_dim: int = 8,
        norm_stats: dict | None = None,
        unnorm_key: str | None = None,
        unnormalize_actions: bool = False,
        dtype: str | None = None,
    ):
        cfg = model.config
        if cfg.action_dim != action_dim:
            raise ValueError(f"env action_dim {action_dim} != model action_dim {cfg.action_dim} (model {cfg.name})")
        if tokenizer.vocab_size != cfg.llm.vocab_size_unpadded:
            raise ValueError(f"tokenizer vocab_size {tokenizer.vocab_size} != model unpadded vocab {cfg.llm.vocab_size_unpadded}")
        self.model, self.tokenizer, self.config = model, tokenizer, cfg
        self.num_envs, self.chunk, self.action_dim = num_envs, cfg.chunk, action_dim
        self.dtype = dtype  # autocast dtype override; None = model.config.dtype
        self.action_tokenizer = ActionTokenizer(tokenizer.vocab_size, cfg.n_bins)
        self.preprocess = ImagePreprocessor(cfg)
        self.stats = action_stats(norm_stats or {}, unnorm_key) if unnormalize_actions else None
        self._prompt_cache: dict[str, list[int]] = {}
        dev = model.device
        self._idx = torch.zeros(num_envs, self.chunk, action_dim, dtype=torch.long, device=dev)
        self._logprobs = torch.zeros(num_envs, self.chunk, action_dim, dtype=torch.float32, device=dev)
        self._actions = torch.zeros(num_envs, self.chunk, action_dim, dtype=torch.float32, device=dev)
        self._step = torch.full((num_envs,), self.chunk, dtype=torch.long, device=dev)  # == chunk: empty

    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset(self, env_ids=None) -> None:
        """Clear the chunk queues of `env_ids` (all if None); they get a fresh chunk on the next act()."""
        if env_ids is None:
            self._step.fill_(self.chunk)
        else:
            self._step[torch.as_tensor(env_ids, device=self.device, dtype=torch.long)] = self.chunk

    def prepare(self, rgb: torch.Tensor, instructions: list[str]) -> dict[str, torch.Tensor]:
        """Model inputs for a batch: preprocessed images and padded prompt ids."""
        ids, mask = tokenize_prompts(
            self.tokenizer, instructions, self.config.prompt_template, self.config.prompt_suffix_ids,
            padding_side="left", device=self.device, cache=self._prompt_cache,
        )
        return {"pixel_values": self.preprocess(rgb.to(self.device)), "input_ids": ids, "attention_mask": mask}

    @torch.no_grad()
    def predict_chunk(self, pixel_values, input_ids, attention_mask, temperature=None, generator=None) -> dict:
        """One forward -> sampled chunk: token_idx / logprobs [B, chunk, action_dim] and actions."""
        logits = self.model(pixel_values, input_ids, attention_mask, dtype=self.dtype)
        idx, logp = sample_actions(logits, temperature, generator)
        return {"token_idx": idx, "logprobs": logp, "actions": self.action_tokenizer.slice_to_actions(idx)}

    def _check_obs(self, obs: dict) -> torch.Tensor:
        if "rgb" not in obs:
            raise KeyError(f"obs needs key 'rgb' (uint8 [N, H, W, 3]); got keys {sorted(obs)}")
        rgb = obs["rgb"]
        if rgb.dim() != 4 or rgb.shape[0] != self.num_envs or rgb.shape[-1] != 3 or rgb.dtype != torch.uint8:
            raise ValueError(f"obs['rgb'] must be uint8 [{self.num_envs}, H, W, 3]; got {rgb.dtype} {tuple(rgb.shape)}")
        jp = obs.get("joint_pos")
        if jp is not None and jp.shape[0] != self.num_envs:  # accepted for the env interface; not a model input
            raise ValueError(f"obs['joint_pos'] must have {self.num_envs} rows; got {tuple(jp.shape)}")
        return rgb

    def act(self, obs: dict, instruction: str | list[str], temperature: float | None = None,
            generator: torch.Generator | None = None) -> dict:
        rgb = self._check_obs(obs)
        instructions = [instruction] * self.num_envs if isinstance(instruction, str) else list(instruction)
        if len(instructions) != self.num_envs:
            raise ValueError(f"got {len(instructions)} instructions for {self.num_envs} envs")

        new_chunk = self._step >= self.chunk
        env_ids = new_chunk.nonzero().squeeze(1)
        chunk_inputs = {"env_ids": env_ids}
        if env_ids.numel() > 0:
            ids = env_ids.tolist()
            inputs = self.prepare(rgb[env_ids.to(rgb.device)], [instructions[i] for i in ids])
            out = self.predict_chunk(**inputs, temperature=temperature, generator=generator)
            self._idx[env_ids], self._logprobs[env_ids], self._actions[env_ids] = (
                out["token_idx"], out["logprobs"], out["actions"])
            self._step[env_ids] = 0
            chunk_inputs.update(inputs)

        chunk_step = self._step.clone()
        actions = self._actions[torch.arange(self.num_envs, device=self.device), chunk_step]
        self._step += 1
        if self.stats is not None:
            actions = unnormalize(actions, self.stats)
        return {
            "actions": actions,
            "token_idx": self._idx.clone(),
            "logprobs": self._logprobs.clone(),
            "chunk_step": chunk_step,
            "new_chunk": new_chunk,
            "chunk_inputs": chunk_inputs,
        }

    def logprobs(self, batch: dict, temperature: float | None = None, dtype: str | None = None) -> dict:
        """Training-time log-probs (with grad) of `batch['token_idx']` given the stored model inputs.
        -> {"logprobs", "entropy"} [B, chunk, action_dim] float32. Same temperature as the rollout."""
        logits = self.model(batch["pixel_values"], batch["input_ids"], batch["attention_mask"],
                            dtype=dtype or self.dtype)
        return {"logprobs": logprobs_of(logits, batch["token_idx"], temperature),
                "entropy": entropy(logits, temperature)}
