"""Batched policy runner: observations of all envs -> one forward -> per-env action-chunk queues.

Why chunk queues per env: one forward yields `chunk` actions (OFT parallel decoding), replayed one
per env step. Envs reset at different times, so each env keeps its own queue and position; an env
whose queue is empty (or was cleared by `reset`) gets a fresh chunk. Only those envs are forwarded
(the batch is gathered with index_select), so after desynchronizing resets the cost per step is
proportional to the envs that actually need a new chunk; envs marked inactive (a GRPO member or an
evaluation env that already finished) are never forwarded.

`act` returns the actions of every env and, for the envs that drew a fresh chunk, what RL stores: the
uint8 frames, proprio and prompt ids the chunk was drawn from, its token indices and log-probs.
`logprobs()` recomputes log-probs of stored chunks under the current weights for the update, through the
same preprocessing and temperature.
"""

from __future__ import annotations

import torch

from openarm_vla.action_space import action_stats, from_token_frame, unnormalize

from .model import OpenVLAForActionPrediction
from .preprocess import ImagePreprocessor
from .prompt import tokenize_prompts
from .sampling import entropy, logprobs_of, sample_actions
from .text_tokenizer import TextTokenizer
from .action_tokenizer import ActionTokenizer


class VLARunner:
    """Runs an OpenVLAForActionPrediction over N envs.

    act(obs, instruction, temperature, generator, active) -> dict:
        actions      [N, action_dim] float32, in [-1, 1] (un-normalized with q01/q99 if enabled)
        chunk_step   [N] long, index in the chunk of the returned action (0 = fresh chunk)
        new_chunk    [N] bool, envs that got a fresh chunk this call
        chunks       for those M envs: env_ids [M], token_idx / logprobs [M, chunk, action_dim] (256-way
                     slice indices and log softmax(logits / T) of them), and the model inputs they were
                     drawn from: rgb uint8 [M, H, W, 3], input_ids / attention_mask [M, L], proprio [M, P]
                     (if the model takes it) -- what the GRPO update needs to recompute log-probs.
    obs: {"rgb": uint8 [N, H, W, 3], "proprio": [N, 8] the joint state in action units (models with a proprio
    token, or whose tokens encode motion relative to it: ``action_frame="delta"``)}. A chunk is decoded once,
    when drawn: bin centres, un-normalized with the statistics (q01/q99), made absolute, then replayed.
    temperature None or 0 = greedy (evaluation), e.g. 1.6 = SimpleVLA-RL rollouts.
    active: [N] bool or None; inactive envs draw no chunk (their returned action is a stale one).
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
        self._env_prompts: tuple | None = None  # (instructions, ids, mask) of every env, see _prompts_of
        dev = model.device
        self.queued_token_idx = torch.zeros(num_envs, self.chunk, action_dim, dtype=torch.long, device=dev)
        """[N, chunk, action_dim]: each env's current chunk (read-only view for inspection)."""
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

    def prompt_ids(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt ids and mask [B, L] on the model's device."""
        return tokenize_prompts(
            self.tokenizer, instructions, self.config.prompt_template, self.config.prompt_suffix_ids,
            padding_side="left", device=self.device, cache=self._prompt_cache,
        )

    def _prompts_of(self, instructions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt ids and mask of every env, on the device, kept while the per-env instructions stay the same (they
        change at resets only): a step takes its rows by index, with no host loop over the envs."""
        if self._env_prompts is None or self._env_prompts[0] != instructions:
            self._env_prompts = (list(instructions), *self.prompt_ids(instructions))
        return self._env_prompts[1], self._env_prompts[2]

    def model_inputs(self, batch: dict) -> dict:
        """Model inputs of a batch of stored chunks: ``rgb`` uint8 (preprocessed here) or ``pixel_values``,
        ``input_ids``, ``attention_mask`` and ``proprio`` where the model takes it."""
        pixel_values = batch["pixel_values"] if "pixel_values" in batch else self.preprocess(batch["rgb"].to(self.device))
        inputs = {"pixel_values": pixel_values, "input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if self.config.use_proprio:
            if batch.get("proprio") is None:
                raise KeyError(f"model {self.config.name} takes proprio: the batch needs key 'proprio' [B, {self.config.proprio_dim}]")
            inputs["proprio"] = batch["proprio"]
        return inputs

    @torch.no_grad()
    def predict_chunk(self, pixel_values, input_ids, attention_mask, proprio=None, temperature=None, generator=None) -> dict:
        """One forward -> sampled chunk: token_idx / logprobs [B, chunk, action_dim] and actions."""
        logits = self.model(pixel_values, input_ids, attention_mask, proprio=proprio, dtype=self.dtype)
        idx, logp = sample_actions(logits, temperature, generator)
        return {"token_idx": idx, "logprobs": logp, "actions": self.action_tokenizer.slice_to_actions(idx)}

    @property
    def needs_proprio(self) -> bool:
        return self.config.use_proprio or self.config.action_frame == "delta"

    def _check_obs(self, obs: dict) -> torch.Tensor:
        if "rgb" not in obs:
            raise KeyError(f"obs needs key 'rgb' (uint8 [N, H, W, 3]); got keys {sorted(obs)}")
        rgb = obs["rgb"]
        if rgb.dim() != 4 or rgb.shape[0] != self.num_envs or rgb.shape[-1] != 3 or rgb.dtype != torch.uint8:
            raise ValueError(f"obs['rgb'] must be uint8 [{self.num_envs}, H, W, 3]; got {rgb.dtype} {tuple(rgb.shape)}")
        prop = obs.get("proprio")
        if self.needs_proprio and (prop is None or tuple(prop.shape) != (self.num_envs, self.config.proprio_dim)):
            got = "nothing" if prop is None else tuple(prop.shape)
            raise ValueError(f"model {self.config.name} takes proprio: obs['proprio'] must be "
                             f"[{self.num_envs}, {self.config.proprio_dim}]; got {got}")
        return rgb

    def act(self, obs: dict, instruction: str | list[str], temperature: float | None = None,
            generator: torch.Generator | None = None, active: torch.Tensor | None = None) -> dict:
        rgb = self._check_obs(obs)
        instructions = [instruction] * self.num_envs if isinstance(instruction, str) else list(instruction)
        if len(instructions) != self.num_envs:
            raise ValueError(f"got {len(instructions)} instructions for {self.num_envs} envs")

        new_chunk = self._step >= self.chunk
        if active is not None:
            new_chunk &= active.to(self.device)
        env_ids = new_chunk.nonzero().squeeze(1)
        chunks: dict = {"env_ids": env_ids}
        if env_ids.numel() > 0:
            src = env_ids.to(rgb.device)
            frames = rgb[src]
            ids_all, mask_all = self._prompts_of(instructions)
            ids, mask = ids_all[env_ids], mask_all[env_ids]
            batch = {"rgb": frames, "input_ids": ids, "attention_mask": mask}
            if self.needs_proprio:
                batch["proprio"] = obs["proprio"][src].to(self.device, torch.float32)
            out = self.predict_chunk(**self.model_inputs(batch), temperature=temperature, generator=generator)
            values = out["actions"] if self.stats is None else unnormalize(out["actions"], self.stats)
            self.queued_token_idx[env_ids] = out["token_idx"]
            self._actions[env_ids] = from_token_frame(values, batch.get("proprio"), self.config.action_frame)
            self._step[env_ids] = 0
            chunks.update(batch, token_idx=out["token_idx"], logprobs=out["logprobs"])

        chunk_step = self._step.clamp(max=self.chunk - 1)
        actions = self._actions[torch.arange(self.num_envs, device=self.device), chunk_step]
        self._step += 1
        return {"actions": actions, "chunk_step": chunk_step, "new_chunk": new_chunk, "chunks": chunks}

    def logprobs(self, batch: dict, temperature: float | None = None, dtype: str | None = None) -> dict:
        """Training-time log-probs (with grad) of `batch['token_idx']` given the stored model inputs.
        -> {"logprobs", "entropy"} [B, chunk, action_dim] float32. Same temperature as the rollout."""
        logits = self.model(**self.model_inputs(batch), dtype=dtype or self.dtype)
        return {"logprobs": logprobs_of(logits, batch["token_idx"], temperature),
                "entropy": entropy(logits, temperature)}
