"""Batched image preprocessing on the observation's device (GPU in training, CPU in tests).

Why not the HF/PIL processor: observations of thousands of envs are already a CUDA uint8 tensor;
one resize + normalize on the GPU avoids a host round trip per env.

uint8 [B, H, W, 3] -> float [0, 1] -> resize (config.resize_interpolation, antialiased, clamped to
[0, 1]) to image_size -> per-tower
normalization -> pixel_values [B, 3 * n_towers, S, S]; channels 0:3 feed the first tower (DINOv2,
ImageNet mean/std) and 3:6 the fused one (SigLIP, mean/std 0.5), as OpenVLA packs them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import VLAConfig


class ImagePreprocessor:
    def __init__(self, config: VLAConfig):
        self.image_size = config.image_size
        self.mode = config.resize_interpolation
        self.mean = torch.tensor([v.mean for v in config.vision], dtype=torch.float32)  # [T, 3]
        self.std = torch.tensor([v.std for v in config.vision], dtype=torch.float32)

    @property
    def num_channels(self) -> int:
        return 3 * self.mean.shape[0]

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        if rgb.dim() != 4 or rgb.shape[-1] != 3 or rgb.dtype != torch.uint8:
            raise ValueError(f"rgb must be uint8 [B, H, W, 3]; got {rgb.dtype} {tuple(rgb.shape)}")
        x = rgb.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # [B, 3, H, W]
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode=self.mode, antialias=True,
                              align_corners=False).clamp_(0.0, 1.0)
        mean = self.mean.to(x.device)[:, :, None, None]  # [T, 3, 1, 1]
        std = self.std.to(x.device)[:, :, None, None]
        x = (x[:, None] - mean) / std  # [B, T, 3, S, S]
        return x.flatten(1, 2).contiguous()
