"""Image augmentation of SFT batches on the GPU, per sample: random resized crop and colour jitter.

OpenVLA-OFT trains with a random crop of 90% of the area and colour jitter; here both run batched on the
device the images already live on (uint8 in, uint8 out, so the policy's own preprocessing follows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_images(rgb: torch.Tensor, crop_scale: tuple[float, float] = (0.85, 1.0), brightness: float = 0.2,
                   contrast: float = 0.2, saturation: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> uint8 [B, H, W, 3]: a crop of a random area fraction in ``crop_scale`` at a random
    place, resized back to H x W, then brightness, contrast and saturation factors drawn from [1 - x, 1 + x]."""
    B, H, W, _ = rgb.shape
    dev = rgb.device

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(B, device=dev, generator=generator)

    x = rgb.permute(0, 3, 1, 2).float() / 255.0
    side = u(*crop_scale).sqrt()  # the crop keeps the aspect ratio: side fraction = sqrt(area fraction)
    cx, cy = (1.0 - side) * (2.0 * u(0.0, 1.0) - 1.0), (1.0 - side) * (2.0 * u(0.0, 1.0) - 1.0)
    theta = torch.zeros(B, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = side, side, cx, cy
    grid = F.affine_grid(theta, (B, 3, H, W), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = x * u(1 - brightness, 1 + brightness)[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(1 - contrast, 1 + contrast)[:, None, None, None] + mean
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * u(1 - saturation, 1 + saturation)[:, None, None, None] + gray
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1)
