"""A run's record: metrics.jsonl (always), TensorBoard (always), W&B (``agent.logger=wandb``; offline unless
WANDB_API_KEY is set), evaluation clips, the resolved config as YAML and the curve PNG. Rank 0 alone writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from openarm_vla.errors import TrainError
from openarm_vla.utils.plots import plot_curves
from openarm_vla.utils.run_files import MetricsFile, plain, write_config


class RunLogger:
    """metrics.jsonl (always), TensorBoard (always), W&B (``logger='wandb'``; offline unless WANDB_API_KEY)."""

    def __init__(self, run_dir: str | os.PathLike, config: dict, logger: str = "tensorboard", project: str = "openarm_vla",
                 resume_from: int | None = None, enabled: bool = True, keep_rows: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.enabled = enabled  # ranks other than 0 log nothing
        if not enabled:
            return
        if logger not in ("tensorboard", "wandb"):
            raise TrainError(f"agent.logger={logger!r}: expected tensorboard or wandb")
        self.run_dir = Path(run_dir)
        self.metrics = MetricsFile(self.run_dir / "metrics.jsonl", resume_from=resume_from, keep_rows=keep_rows)
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
