"""What the SFT and GRPO configs share: the model to start from, the optimizer, greedy evaluation on a
held-out bank, checkpoints and logging (each trainer overrides the defaults of its recipe)."""

from __future__ import annotations

from isaaclab.utils import configclass


@configclass
class LoraCfg:
    """LoRA adapters (peft) on the language model's linear layers (the 7B preset); off: a full fine-tune."""

    enabled: bool = False
    rank: int = 32
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    frozen_bf16: bool = True
    """On CUDA with bf16 autocast, hold the frozen linear weights in bf16: the same forward (autocast multiplies
    with bf16 copies of them anyway), half the memory for the frozen base (7B: 28 -> 14 GB); exports stay fp32."""

    __checks__ = {"rank": ">= 1", "alpha": "> 0", "dropout": "in [0, 1)",
                  "target_modules": ("non-empty", "the layers that get adapters")}
    """Ranges of the fields (:mod:`openarm_vla.checks`: checked with their types before anything is built)."""


@configclass
class VLATrainerCfg:
    seed: int = 0
    preset: str | None = None
    """VLA preset (tiny | mini | small | openvla-oft-7b): without ``init`` a model built from scratch ("small" if None);
    with ``init`` it must match the checkpoint's (None: any)."""
    init: str | None = None
    """Checkpoint directory to start from (``--init``: ours or the published OpenVLA-OFT layout)."""
    prompt_template: str | None = None
    """The text around the instruction (``{instruction}`` marks it) of a model built from scratch; None = the
    preset's (small: the instruction alone; the 7B: OpenVLA's "In: What action should the robot take to ...?").
    With ``init`` it must match the checkpoint's."""

    max_iterations: int = 100
    lr: float = 1e-4
    weight_decay: float = 0.01
    """AdamW weight decay (matrices only; biases and norms are not decayed)."""
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    warmup_steps: int = 0
    """Optimizer steps of linear LR warm-up (0: the full LR from the first step, SimpleVLA-RL's GRPO). Adam's first
    steps move every weight by ~lr whatever its gradient: a from-scratch policy's first iteration jumps."""
    dtype: str = "bfloat16"
    """Autocast dtype on CUDA (float32 on the CPU)."""
    gradient_checkpointing: bool = False
    compile: bool = False
    """``torch.compile`` the Llama decoder layers and the ViT blocks (one graph shared by the layers of a kind,
    dynamic batch):
    fuses the elementwise work around the matmuls (measured in ``benchmarks/perf/README.md`` for the small preset,
    ``benchmarks/scale/README.md`` for the 7B); the first
    forward and the first backward compile. In bf16 the rollout's and the update's graphs round differently: GRPO's
    reused log-probs then differ slightly from the update's (``policy/ratio_dev_first_minibatch`` > 0)."""
    lora: LoraCfg = LoraCfg()
    parallel: str = "auto"
    """Under torchrun: ddp (replicas) | fsdp (FSDP2, fully_shard per decoder layer) | auto (fsdp for the 7B)."""

    eval_every: int = 0
    """Greedy evaluation on the held-out bank every this many iterations (0: only at the start / end)."""
    eval_episodes: int = 256
    """Held-out initial states per evaluation (one episode each); 0 = no evaluation."""
    eval_seed: int = 10_000
    """Seed of the held-out bank (kept apart from the demos' and the training rollouts' seeds)."""
    eval_videos: int = 2
    """Evaluation clips logged (one success and one failure where there are both)."""

    save_every: int = 1
    keep_last: int = 3
    """Checkpoints kept (the newest)."""
    logger: str = "tensorboard"
    """tensorboard | wandb (TensorBoard is always written; W&B is offline unless WANDB_API_KEY is set)."""
    wandb_project: str = "openarm_vla"

    __checks__ = {
        "seed": ">= 0", "preset": "in {tiny, mini, small, openvla-oft-7b}", "max_iterations": ">= 1", "lr": "> 0",
        "warmup_steps": ">= 0",
        "weight_decay": ">= 0", "betas": "in [0, 1)", "grad_clip": ("> 0", "a clip norm of 0 zeroes every gradient"),
        "dtype": "in {float32, bfloat16, float16}", "parallel": "in {auto, ddp, fsdp}",
        "eval_every": ">= 0", "eval_episodes": ">= 0", "eval_seed": ">= 0", "eval_videos": ">= 0",
        "save_every": ">= 0", "keep_last": ">= 1", "logger": "in {tensorboard, wandb}", "wandb_project": "non-empty",
    }
    """Ranges of the fields (:mod:`openarm_vla.checks`: checked with their types before anything is built)."""
    __rules__ = (("'{instruction}' in prompt_template", "the prompt holds the instruction where {instruction} stands"),)
