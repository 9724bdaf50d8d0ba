"""OpenVLA prompt text and batched prompt tokenization.

Why here: the prompt is part of the model's input contract (published checkpoints were trained on
exactly `In: What action should the robot take to {instruction}?\\nOut:` with a lower-cased
instruction), and batching it with a padding mask is what lets one forward serve thousands of envs.
"""

from __future__ import annotations

import torch

from .config import OPENVLA_PROMPT
from .text_tokenizer import TextTokenizer


def build_prompt(instruction: str, template: str = OPENVLA_PROMPT) -> str:
    """OpenVLA lower-cases the task instruction before formatting it into the template."""
    return template.format(instruction=instruction.lower())


def tokenize_prompts(
    tokenizer: TextTokenizer,
    instructions: list[str],
    template: str = OPENVLA_PROMPT,
    suffix_ids: tuple[int, ...] = (),
    padding_side: str = "left",
    device: torch.device | str | None = None,
    cache: dict[str, list[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (input_ids [B, L] long, attention_mask [B, L] long). Each row is BOS + prompt + suffix_ids,
    padded with `tokenizer.pad_token_id` on `padding_side`; mask 1 = real token.

    Left padding keeps the action slots at the same columns for every row (the model also accepts
    right padding: it derives positions and the readout from the mask). `cache` (instruction -> ids)
    can be kept by the caller to skip re-tokenizing repeated instructions.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    cache = {} if cache is None else cache
    unique = list(dict.fromkeys(instructions))  # a few distinct texts over thousands of envs: pad each once
    for text in unique:
        if text not in cache:
            cache[text] = tokenizer.encode(build_prompt(text, template), add_bos=True) + list(suffix_ids)
    rows = [cache[text] for text in unique]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        sl = slice(length - len(r), length) if padding_side == "left" else slice(0, len(r))
        ids[i, sl] = torch.tensor(r, dtype=torch.long)
        mask[i, sl] = 1
    if len(unique) < len(instructions):
        where = {text: i for i, text in enumerate(unique)}
        pick = torch.tensor([where[text] for text in instructions], dtype=torch.long)
        ids, mask = ids[pick], mask[pick]
    return ids.to(device), mask.to(device)
