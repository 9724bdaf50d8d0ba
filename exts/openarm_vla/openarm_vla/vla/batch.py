"""Batches of stored action chunks, shared by the GRPO update and the log-prob checks.

A chunk record is what :meth:`VLARunner.act` returns under ``"chunks"`` (or a slice of it): uint8 ``rgb``
(or ``pixel_values``), ``input_ids`` / ``attention_mask`` [M, L], optional ``proprio``, ``token_idx`` and
``logprobs``. Prompts of different lengths are left-padded to the longest, as the policy pads them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

def collate_chunks(chunks: list[dict], pad_token_id: int) -> dict:
    """One batch from several chunk records (rows concatenated in order; keys all records share)."""
    L = max(c["input_ids"].shape[1] for c in chunks)
    out = {
        "input_ids": torch.cat([F.pad(c["input_ids"], (L - c["input_ids"].shape[1], 0), value=pad_token_id) for c in chunks]),
        "attention_mask": torch.cat([F.pad(c["attention_mask"], (L - c["attention_mask"].shape[1], 0), value=0) for c in chunks]),
    }
    for key in chunks[0]:
        if key not in out and all(key in c for c in chunks):
            out[key] = torch.cat([c[key] for c in chunks])
    return out
