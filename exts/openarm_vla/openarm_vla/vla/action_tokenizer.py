"""Action tokenizer: continuous actions in [-1, 1] <-> OpenVLA action token ids <-> 256-way slice index.

Why bit-exact OpenVLA conventions: published OpenVLA / OpenVLA-OFT / SimpleVLA-RL checkpoints were
trained with them, so a different binning would silently shift every action by a bin.

OpenVLA (prismatic/vla/action_tokenizer.py):
    bins        = linspace(-1, 1, n_bins)                 # 256 *edges*
    bin_centers = (bins[:-1] + bins[1:]) / 2              # 255 centers
    encode: token_id = vocab_size - digitize(clip(a, -1, 1), bins)          # digitize in 1..256
    decode: a = bin_centers[clip(vocab_size - token_id - 1, 0, 254)]
with vocab_size the *unpadded* tokenizer vocabulary (32000 for Llama-2), so action ids are
31744..31999.

SimpleVLA-RL reads logits[..., vocab_size - 256 : vocab_size] and samples a *slice index* s in 0..255:
    token_id = (vocab_size - 256) + s,   s = 256 - digitize(a),   a = bin_centers[clip(255 - s, 0, 254)]
Large s means small action. Quirk kept on purpose: s = 0 (only a == +1 exactly) and s = 1 decode to
the same center, because 256 edges give only 255 centers.

All functions work on batched torch tensors of any shape, on any device. Bin edges come from
np.linspace and binning is done in float64, so `torch.bucketize` agrees exactly with `np.digitize`.
"""

from __future__ import annotations

import numpy as np
import torch


class ActionTokenizer:
    def __init__(self, vocab_size: int, n_bins: int = 256, min_action: float = -1.0, max_action: float = 1.0):
        if vocab_size < n_bins:
            raise ValueError(f"ActionTokenizer: vocab_size {vocab_size} < n_bins {n_bins}")
        self.vocab_size = vocab_size  # unpadded tokenizer vocabulary
        self.n_bins = n_bins
        self.min_action, self.max_action = min_action, max_action
        # np.linspace, not torch.linspace: they differ by an ulp at some edges, which moves actions
        # lying exactly on an edge into the neighbouring bin.
        self.bins = torch.from_numpy(np.linspace(min_action, max_action, n_bins))
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0
        self.token_begin = vocab_size - n_bins  # first action id (31744 for Llama-2)
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._cache:
            self._cache[device] = (self.bins.to(device), self.bin_centers.to(device))
        return self._cache[device]

    # --- continuous <-> OpenVLA "discretized" index (np.digitize result, 1..n_bins) ---
    def digitize(self, actions: torch.Tensor) -> torch.Tensor:
        bins, _ = self._tables(actions.device)
        a = actions.to(torch.float64).clamp(self.min_action, self.max_action)
        # np.digitize(x, bins) (right=False): i with bins[i-1] <= x < bins[i]  == bucketize(right=True)
        return torch.bucketize(a, bins, right=True)

    # --- token ids ---
    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """Continuous actions -> token ids (long), OpenVLA `vocab_size - digitize(a)`."""
        return self.vocab_size - self.digitize(actions)

    def decode(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token ids -> continuous actions (float32) at bin centers."""
        _, centers = self._tables(token_ids.device)
        idx = (self.vocab_size - token_ids.long() - 1).clamp(0, centers.numel() - 1)
        return centers[idx].to(torch.float32)

    # --- 256-way slice index (what the policy samples) ---
    def slice_to_token_ids(self, slice_idx: torch.Tensor) -> torch.Tensor:
        return slice_idx.long() + self.token_begin

    def token_ids_to_slice(self, token_ids: torch.Tensor) -> torch.Tensor:
        return token_ids.long() - self.token_begin

    def actions_to_slice(self, actions: torch.Tensor) -> torch.Tensor:
        """Continuous actions -> slice index 0..n_bins-1 (the SFT target for the 256-way head)."""
        return self.n_bins - self.digitize(actions)

    def slice_to_actions(self, slice_idx: torch.Tensor) -> torch.Tensor:
        """Slice index -> continuous action (float32)."""
        _, centers = self._tables(slice_idx.device)
        idx = (self.n_bins - 1 - slice_idx.long()).clamp(0, centers.numel() - 1)
        return centers[idx].to(torch.float32)
