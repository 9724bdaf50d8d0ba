"""What SFT and GRPO share around their loops: the run directory, checkpoints that survive ``kill -9``,
every RNG, the metrics logger (JSONL + TensorBoard + optional W&B), the curve PNG and one-line errors.

Run directory::

    DIR/config.yaml                 the resolved task, env and agent configs
    DIR/metrics.jsonl               one JSON object per iteration / logging step (``iteration`` + metrics)
    DIR/tb/                         TensorBoard events (W&B under DIR/wandb/ with agent.logger=wandb)
    DIR/checkpoints/iter_<K>/       model export (our checkpoint format) + trainer_state.pt: optimizer, LR
                                    scheduler, python / numpy / torch / CUDA RNG states, the sampling
                                    generator, iteration and counters, the config; written under a hidden
                                    temporary name and renamed, the last ``keep_last`` kept
    DIR/final/                      the final policy (``scripts/evaluate.py --policy DIR/final``)
    DIR/curve.png                   success and loss against iterations
    DIR/videos/                     evaluation episodes (mp4)

A run killed at any moment leaves complete checkpoints only (the rename is the commit); ``--resume`` loads
the newest, drops the metrics lines of later iterations and continues, so it ends at the same iteration
count, and on the CPU its next iteration reproduces the uninterrupted run's.
"""

from __future__ import annotations

import math
import os
import random
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from openarm_vla.utils.io import atomic_path
from openarm_vla.utils.plots import plot_curves
from openarm_vla.utils.run_files import STATE_FILE, MetricsFile, checkpoint_dirs, plain, write_config



class TrainError(ValueError):
    """A bad training request or a stopped run, with a one-line message naming what and where."""


# ------------------------------------------------------------------------------------------------ RNG


def rng_state(generator: torch.Generator | None = None) -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------- checkpoints


def _export_policy(model, directory: Path, tokenizer, norm_stats: dict, state_dict: dict | None = None) -> Path:
    """The policy as a plain checkpoint (LoRA adapters merged into their weights, under the plain names;
    ``state_dict``: the weights gathered from FSDP's shards, ``model`` then gives the config)."""
    from openarm_vla.vla.checkpoint import save_checkpoint

    from .lora import has_lora, merged_state_dict

    if state_dict is None and has_lora(model):
        state_dict = merged_state_dict(model)
    return save_checkpoint(model, directory, tokenizer, norm_stats, state_dict=state_dict)


def save_training_checkpoint(run_dir: str | os.PathLike, iteration: int, model, tokenizer, norm_stats: dict,
                             state: dict, keep_last: int = 3, state_dict: dict | None = None) -> Path:
    """Write ``checkpoints/iter_<iteration>/`` atomically (policy export + ``trainer_state.pt``, with LoRA's
    trainable tensors themselves); keep the last K. ``model``: unsharded (under FSDP the replica, with the
    weights in ``state_dict``: :func:`~openarm_vla.train.distributed.full_model_state`)."""
    from .lora import has_lora, trainable_state

    final = Path(run_dir) / "checkpoints" / f"iter_{iteration:06d}"
    with atomic_path(final) as tmp:
        _export_policy(model, tmp, tokenizer, norm_stats, state_dict)
        torch.save({**state, "iteration": iteration, **({"trainable": trainable_state(model)} if has_lora(model) else {})},
                   tmp / STATE_FILE)
    for old in checkpoint_dirs(run_dir)[:-max(keep_last, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(ckpt_dir: Path) -> dict:
    try:
        return torch.load(ckpt_dir / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - an unreadable state is a bad checkpoint, whatever the reason
        raise TrainError(f"{ckpt_dir / STATE_FILE}: unreadable trainer state ({type(e).__name__}: {e})") from None


def restore_training(run_dir, model, optimizer, device, generator=None, scheduler=None, rank: int = 0,
                     world: int = 1, kind: str = "single") -> dict:
    """``--resume``: load the newest checkpoint of ``run_dir`` into the model, optimizer (and scheduler), set this
    rank's RNGs; returns the trainer state (``iteration``, counters, ...). A checkpoint holds one RNG state per
    process, so it resumes with the number of processes that wrote it."""
    last = checkpoint_dirs(run_dir)[-1]
    state = load_trainer_state(last)
    if len(state["rng"]) != world:
        raise TrainError(f"{last}: written by a run of {len(state['rng'])} process(es); resume it with "
                         f"torchrun --nproc_per_node={len(state['rng'])} (this run has {world})")
    if "trainable" in state:  # LoRA: the base came from agent.init; the adapters and trainable layers from here
        unknown = model.load_state_dict(state["trainable"], strict=False).unexpected_keys
        if unknown:
            raise TrainError(f"{last}: trainable tensors the model lacks: {unknown[:3]} (was agent.lora changed?)")
        optimizer.load_state_dict(state["optimizer"])
    else:
        from openarm_vla.vla.checkpoint import read_state_dict

        from .distributed import load_states

        sd, _ = read_state_dict(last, device="cpu")
        try:
            load_states(kind, model, optimizer, sd, state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise TrainError(f"{last}: does not fit this model or optimizer ({' '.join(str(e).split())[:200]})") from None
    if scheduler is not None and "scheduler" in state:  # GRPO checkpoints before its warm-up have none
        scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"][rank], generator)
    if rank == 0:
        print(f"[resume] {run_dir} from {last.name} (iteration {state['iteration']})", flush=True)
    return state


def export_final(run_dir: str | os.PathLike, model, tokenizer, norm_stats: dict, iteration: int | None = None) -> Path:
    """DIR/final: the policy as a plain checkpoint (``model`` unsharded, as for a training checkpoint).

    The run's last training checkpoint (``iteration``: just written, or the one a finished run resumed from)
    holds these very weights: final/ then hard-links its policy files rather than writing them again, so a 7B
    run writes its ~28 GB once (the trainers always checkpoint their last iteration: under FSDP the weights
    gathered from the shards, not the bf16 rollout replica). Without that checkpoint, or where links fail, the
    files are written or copied."""
    from openarm_vla.vla.checkpoint import MODEL_FILE

    final = Path(run_dir) / "final"
    last = Path(run_dir) / "checkpoints" / f"iter_{iteration:06d}" if iteration is not None else None
    if last is None or not (last / MODEL_FILE).is_file():
        return _export_policy(model, final, tokenizer, norm_stats)
    with atomic_path(final) as tmp:
        shutil.copytree(last, tmp, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(STATE_FILE))
    return final


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dst)


# ------------------------------------------------------------------------------------------- models


def load_init_checkpoint(path: str, device, preset: str | None = None, what: str = "--init"):
    """A checkpoint to start from, checked before use: it exists, its action dim is the env's, and its preset is
    the one asked for (``preset`` None: any). One line names the mismatch."""
    from openarm_vla.action_space import ACTION_DIM
    from openarm_vla.vla.checkpoint import CheckpointError, load_checkpoint

    d = Path(path)
    if not (d / "config.json").is_file():
        raise TrainError(f"{what} {d}: not a checkpoint directory (no config.json)")
    try:
        ck = load_checkpoint(d, device=device)
    except CheckpointError as e:
        raise TrainError(f"{what} {d}: {e}") from None
    if ck.config.action_dim != ACTION_DIM:
        raise TrainError(f"{what} {d}: action_dim {ck.config.action_dim}, but the env needs {ACTION_DIM}")
    if preset is not None and ck.config.name != preset:
        raise TrainError(f"{what} {d}: a '{ck.config.name}' model, but agent.preset is '{preset}' "
                         f"(pass --preset {ck.config.name} or another checkpoint)")
    return ck


def build_model(agent, device, knobs: dict[str, str] | None = None):
    """The model a trainer starts from, with its tokenizer and normalization statistics: ``agent.init``'s
    checkpoint, or a from-scratch ``agent.preset`` ("small" if None, no statistics); then LoRA, gradient
    checkpointing and compilation as the agent asks. ``knobs`` maps agent fields to model-config fields (``{"proprio":
    "use_proprio"}``): set ones override the preset, and must agree with an ``--init`` checkpoint."""
    from openarm_vla.vla import OpenVLAForActionPrediction, get_preset, make_text_tokenizer

    from .lora import enable_lora

    asked = {field: getattr(agent, knob) for knob, field in (knobs or {}).items() if getattr(agent, knob) is not None}
    if agent.init:
        ck = load_init_checkpoint(agent.init, device, preset=agent.preset)
        model, tok, norm_stats = ck.model, ck.tokenizer, ck.norm_stats
        for knob, field in (knobs or {}).items():
            if field in asked and asked[field] != getattr(model.config, field):
                raise TrainError(f"--init {agent.init}: the checkpoint has {field}={getattr(model.config, field)}, "
                                 f"agent.{knob}={asked[field]}")
    else:
        try:
            cfg = get_preset(agent.preset or "small", **asked)
        except ValueError as e:
            raise TrainError(f"agent.preset={agent.preset}: {e}") from None
        tok = make_text_tokenizer(cfg)
        if cfg.tokenizer != "byte":
            print(f"[train] a from-scratch {cfg.name}: byte-level prompts stand in for its tokenizer, which needs "
                  "files (timing and smoke runs; --init a checkpoint to train for real)", flush=True)
        with torch.device(device):  # initialized where it runs: a 7B model is 30 GB in fp32, slow to init on a CPU
            model = OpenVLAForActionPrediction(cfg)
        model, norm_stats = model.to(device), {}
    if agent.lora.enabled:
        enable_lora(model, agent.lora, agent.dtype if str(device).startswith("cuda") else None)
    if agent.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if agent.compile:
        model.compile_decoder_layers()
    return model, tok, norm_stats


def decay_param_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups as nanoGPT's: weight decay on matrices (dim >= 2), none on biases, norms, embeddings' scales."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(warmup: int, total: int, schedule: str = "constant", min_ratio: float = 0.0):
    """The LR multiplier of optimizer step ``s`` (a ``LambdaLR`` lambda): linear warm-up over ``warmup`` steps
    (Adam's first steps move every weight by ~lr whatever the gradient's size), then ``constant`` or ``cosine``
    from 1 to ``min_ratio`` at step ``total``."""
    if schedule not in ("constant", "cosine"):
        raise TrainError(f"LR schedule {schedule!r}: expected constant or cosine")

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        t = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
    return f


def training_state_bytes(modules, optimizer=None) -> int:
    """Bytes this process holds for training whatever the batch: the modules' parameters and gradients (a
    sharded parameter counts its local shard) and the optimizer's state tensors."""
    def local(t):
        return t.to_local() if hasattr(t, "to_local") else t

    seen, total = set(), 0
    for module in modules:
        for p in module.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += local(p).nbytes + (local(p.grad).nbytes if p.grad is not None else 0)
    for state in (optimizer.state.values() if optimizer is not None else ()):
        total += sum(local(v).nbytes for v in state.values() if torch.is_tensor(v))
    return total


@contextmanager
def cuda_oom_as_error(what_to_lower: str, held=None):
    """Turn a CUDA out-of-memory error into one line saying what to lower; ``held`` (a callable: bytes of the
    batch-independent training state, :func:`training_state_bytes`) tells a state that alone nearly fills the
    GPU, which no smaller batch fixes, from one that leaves room."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        free, total = torch.cuda.mem_get_info() if torch.cuda.is_available() else (0, 0)
        state = held() if held is not None else 0
        msg = f"out of GPU memory ({(total - free) / 2**30:.1f} of {total / 2**30:.1f} GiB in use"
        if state:
            msg += f", {state / 2**30:.1f} GiB of it the weights, gradients and optimizer state"
        if total and state > 0.75 * total:
            msg += "); those alone nearly fill the GPU: train LoRA adapters (agent.lora.enabled=true) or shard " \
                   "the full model over more GPUs (torchrun, agent.parallel=fsdp)"
        else:
            msg += f"); lower {what_to_lower}"
        raise TrainError(msg) from None


def check_finite(loss: torch.Tensor, iteration: int, run_dir) -> None:
    if not torch.isfinite(loss).all():
        last = checkpoint_dirs(run_dir)
        keep = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
        raise TrainError(f"non-finite loss ({loss.item()}) at iteration {iteration}; stopped, {keep} "
                         "(lower agent.lr or check the data)")


def peak_memory_gb() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


# ------------------------------------------------------------------------------------------- logging


class RunLogger:
    """metrics.jsonl (always), TensorBoard (always), W&B (``logger='wandb'``; offline unless WANDB_API_KEY)."""

    def __init__(self, run_dir: str | os.PathLike, config: dict, logger: str = "tensorboard", project: str = "openarm_vla",
                 resume_from: int | None = None, enabled: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        self.enabled = enabled  # ranks other than 0 log nothing
        if not enabled:
            return
        if logger not in ("tensorboard", "wandb"):
            raise TrainError(f"agent.logger={logger!r}: expected tensorboard or wandb")
        self.run_dir = Path(run_dir)
        self.metrics = MetricsFile(self.run_dir / "metrics.jsonl", resume_from=resume_from)
        self.tb = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=None if resume_from is None else resume_from + 1)
        self.wandb = None
        if logger == "wandb":
            try:
                import wandb
            except ImportError:
                raise TrainError("agent.logger=wandb needs the wandb package (pip install wandb)") from None
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
            self.wandb = wandb.init(project=project, dir=str(self.run_dir), mode=mode, config=plain(config),
                                    name=self.run_dir.name, resume="allow", id=_wandb_id(self.run_dir))

    def log(self, iteration: int, metrics: dict) -> dict:
        record = {"iteration": int(iteration), **{k: v for k, v in metrics.items() if v is not None}}
        if not self.enabled:
            return record
        self.metrics.write(record)
        for k, v in record.items():
            if k != "iteration" and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.tb.add_scalar(k, v, iteration)
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in record.items() if k != "iteration"}, step=int(iteration))
        return record

    def videos(self, iteration: int, clips: list[dict], fps: int) -> list[str]:
        """Evaluation clips: mp4 files under DIR/videos, a frame strip per clip in TensorBoard, the mp4 in W&B."""
        from openarm_vla.eval.video import write_mp4

        if not self.enabled:
            return []
        paths = []
        for clip in clips:
            tag = f"iter{iteration:06d}_env{clip['env_id']}_{'success' if clip['success'] else clip['failure']}"
            path = write_mp4(self.run_dir / "videos" / f"{tag}.mp4", clip["frames"], fps=fps)
            paths.append(str(path))
            frames = clip["frames"][:: max(1, len(clip["frames"]) // 8)][:8]
            self.tb.add_image(f"eval_video/{tag.split('_', 1)[1]}", np.concatenate(list(frames), axis=1), iteration,
                              dataformats="HWC")
            if self.wandb is not None:
                import wandb

                self.wandb.log({f"eval_video/{tag.split('_', 1)[1]}": wandb.Video(str(path), format="mp4")}, step=int(iteration))
        return paths

    def records(self) -> list[dict]:
        return self.metrics.records() if self.enabled else []

    def close(self) -> None:
        if not self.enabled:
            return
        self.metrics.close()
        self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _wandb_id(run_dir: Path) -> str:
    """A W&B run id stable across resumes of the same run directory."""
    import hashlib

    return hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:12]


def write_run_config(run_dir: str | os.PathLike, task: str, env_cfg, agent_cfg, extra: dict | None = None) -> None:
    write_config(Path(run_dir) / "config.yaml", {"task": task, **(extra or {}), "agent": agent_cfg, "env": env_cfg})


def plot_run(run_dir: str | os.PathLike, records: list[dict], title: str, loss_key: str, success_keys: list[str],
             x: str = "iteration") -> Path:
    """DIR/curve.png: success (held-out with its CI band, and training success) and the loss against ``x``."""
    panels = [(success_keys, "success rate", (-0.02, 1.02), ("eval/ci_low", "eval/ci_high")), (loss_key, "loss", None)]
    return plot_curves(records, Path(run_dir) / "curve.png", panels, x=x, title=title)
