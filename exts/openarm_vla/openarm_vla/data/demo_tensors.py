"""Every step of a demo set on one device, batched by index: what SFT trains from.

Why in memory: a batch is a gather on the GPU (no loader processes, no per-item Python), which keeps the small
model's SFT compute-bound; :class:`~openarm_vla.data.dataset.DemoDataset` reads the files (its ``load_arrays`` fills
this) and keeps a lazy per-item path for a torch ``DataLoader`` where a dataset does not fit in memory.
"""

from __future__ import annotations

import torch

from openarm_vla.action_space import joint_state_to_action, to_token_frame


def chunk_rows(t: torch.Tensor, episode_end: torch.Tensor, chunk: int) -> torch.Tensor:
    """[B, chunk] row indices of the actions of a chunk starting at rows ``t``: t, t+1, ... clamped to the row of
    its episode's last step (past the end a chunk repeats the last action)."""
    rows = t[:, None] + torch.arange(chunk, device=t.device)[None]
    return torch.minimum(rows, episode_end[:, None])


class DemoTensors:
    """All demo steps on one device; :meth:`batch` gathers a training batch by index: the frame, the joint state
    in action units, and the chunk in the model's action frame (not normalized)."""

    def __init__(self, arrays: dict, chunk: int, frame: str, device):
        self.device, self.chunk, self.frame = torch.device(device), chunk, frame
        self.image = torch.from_numpy(arrays["image"]).to(self.device)
        self.actions = torch.from_numpy(arrays["actions"]).to(self.device)
        self.end = torch.from_numpy(arrays["episode_end"]).to(self.device)
        self.proprio = torch.from_numpy(arrays["proprio"]).to(self.device) if "proprio" in arrays else None
        self.instruction = torch.as_tensor(arrays["instruction"], dtype=torch.long, device=self.device)
        self.instructions = arrays["instructions"]

    def __len__(self) -> int:
        return self.image.shape[0]

    def batch(self, idx: torch.Tensor) -> dict:
        rows = chunk_rows(idx, self.end[idx], self.chunk)
        out = {"rgb": self.image[idx], "idx": idx}
        joint = joint_state_to_action(self.proprio[idx]) if self.proprio is not None else None
        out["actions"] = to_token_frame(self.actions[rows], joint, self.frame)
        if joint is not None:
            out["proprio"] = joint
        return out

    def instruction_index(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx``'s index into :attr:`instructions`, on the device (no host round trip)."""
        return self.instruction[idx]

    def token_frame_stats(self) -> dict:
        """q01/q99 (and mean/std/min/max) of every chunk entry in the token frame: the normalization bounds."""
        from openarm_vla.data.statistics import compute_action_stats

        values = torch.cat([self.batch(torch.arange(s, min(s + 4096, len(self)), device=self.device))["actions"].flatten(0, 1)
                            for s in range(0, len(self), 4096)])
        stats = compute_action_stats([values.cpu()])
        return {k: v for k, v in stats.items() if k not in ("num_transitions", "num_trajectories")}
