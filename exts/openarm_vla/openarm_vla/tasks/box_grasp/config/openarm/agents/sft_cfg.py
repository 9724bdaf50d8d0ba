"""SFT of the VLA on demonstrations (``scripts/train.py --algo sft``): the defaults of the recipe.

Override any field from the command line as ``agent.<field>=value`` (Isaac Lab's Hydra layer), or from a
YAML recipe under ``configs/``.
"""

from __future__ import annotations

from isaaclab.utils import configclass

from .vla_trainer_cfg import VLATrainerCfg


@configclass
class AugmentCfg:
    """Image augmentation of SFT batches (on the GPU, per sample)."""

    enabled: bool = True
    crop_scale: tuple[float, float] = (1.0, 1.0)
    """Random resized crop: area fraction of the crop, then resized back to the image size. Off by default:
    with a fixed camera the box's image position tells where to reach, a random crop shifts it, and
    OpenVLA-OFT's crop comes with a center crop at test time that our policy runner does not apply."""
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    """Colour jitter: each factor is drawn from [1 - x, 1 + x]."""

    __checks__ = {"crop_scale": "in (0, 1]", "brightness": "in [0, 1]", "contrast": "in [0, 1]",
                  "saturation": "in [0, 1]"}
    __rules__ = (("crop_scale[0] <= crop_scale[1]", "the smallest crop area first"),)


@configclass
class BoxGraspSFTCfg(VLATrainerCfg):
    """Cross-entropy on the action tokens of HDF5 demos (OFT parallel decoding, all chunk x 8 tokens at once)."""

    proprio: bool | None = None
    """OFT's proprio token (the 8 joint values, projected to one extra input token); None = the preset's default."""
    action_frame: str | None = None
    """What the action tokens encode: absolute | delta (arm joints as offsets from the joint state at the
    chunk's start); None = the preset's default (small: delta)."""
    datasets: list[str] = []
    """HDF5 demo files (``--dataset``)."""
    success_only: bool = True
    """Train on successful demos only."""

    max_iterations: int = 3000
    """Optimizer steps."""
    batch_size: int = 256
    """Samples per optimizer step."""
    micro_batch_size: int | None = None
    """Samples per forward/backward (None = batch_size); gradient accumulation makes up the rest."""
    lr: float = 3e-4
    min_lr: float = 3e-5
    lr_schedule: str = "cosine"
    """cosine (to ``min_lr``) | constant, after ``warmup_steps`` of linear warm-up."""
    warmup_steps: int = 100
    betas: tuple[float, float] = (0.9, 0.95)
    augment: AugmentCfg = AugmentCfg()

    eval_every: int = 1000
    """Greedy evaluation in the env every this many steps (0 = only at the end)."""
    eval_num_envs: int = 256
    """Envs of the evaluation env (``--num_envs`` overrides; the bank is evaluated in passes of this many)."""
    save_every: int = 500
    log_every: int = 10

    __checks__ = {
        "action_frame": "in {absolute, delta}", "datasets": "any", "batch_size": ">= 1", "micro_batch_size": ">= 1",
        "min_lr": ">= 0", "lr_schedule": "in {cosine, constant}", "eval_num_envs": ">= 1",
        "log_every": ">= 1",
    }
    __rules__ = (("min_lr <= lr", "the cosine schedule decays from lr to min_lr"),
                 ("batch_size % micro_batch_size == 0", "gradient accumulation adds whole micro-batches"))
