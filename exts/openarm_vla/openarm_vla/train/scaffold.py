"""What SFT and GRPO share around their one loop: set-up, resume, rank-0 evaluation, saving on all ranks, finishing.

Run directory::

    DIR/config.yaml                 the resolved task, env and agent configs
    DIR/metrics.jsonl               one JSON object per iteration / logging step (``iteration`` + metrics)
    DIR/tb/                         TensorBoard events (W&B under DIR/wandb/ with agent.logger=wandb)
    DIR/checkpoints/iter_<K>/       policy + trainer state + manifest (:mod:`.checkpoints`), the last
                                    ``keep_last`` kept
    DIR/final/                      the final policy (``scripts/evaluate.py --policy DIR/final``); written last,
                                    it marks a finished run
    DIR/curve.png                   success and loss against iterations
    DIR/videos/                     evaluation episodes (mp4)

A run killed at any moment leaves complete checkpoints only; ``--resume`` continues from the newest intact one
(or from the beginning when there is none), drops the metrics lines of later iterations, and ends at the same
iteration count; on the CPU its next iteration reproduces the uninterrupted run's.

A trainer builds its model, then :meth:`TrainingRun.wrap` (DDP / FSDP / plain and the optimizer),
:meth:`~TrainingRun.restore` and :meth:`~TrainingRun.open_log`, and loops over :meth:`~TrainingRun.iterations`
calling :meth:`~TrainingRun.optimizer_step`, :meth:`~TrainingRun.evaluate` and :meth:`~TrainingRun.save`; the
distributed mechanics stay in :mod:`.distributed`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from openarm_vla.utils.io import remove_stale_temps

from . import distributed
from .checkpoints import (CheckpointWriter, check_finite, export_final, newest_good_checkpoint, restore_training,
                          training_checkpoint_state, write_training_checkpoint)
from .logger import RunLogger, plot_run, write_run_config
from .memory import cuda_oom_as_error, training_state_bytes
from .optim import make_optimizer, rewarm
from .rng import rng_state, seed_everything


class TrainingRun:
    """One training process's run: its rank (``d``), device and autocast dtype, the wrapped model (``par``), the
    optimizer and LR schedule, the named generators a checkpoint restores, its counters and its logger."""

    def __init__(self, algo: str, task: str, env_cfg, agent, output, device: str, resume: bool = False):
        from openarm_vla.eval.protocol import refuse_test_bank

        if agent.eval_episodes > 0:
            refuse_test_bank(agent.eval_seed)
        self.algo, self.task, self.env_cfg, self.agent = algo, task, env_cfg, agent
        self.dir = Path(output)
        self.d = distributed.init(device, agent.parallel)
        self.device = self.d.device
        self.cuda = str(self.device).startswith("cuda")
        self.dtype = agent.dtype if self.cuda else "float32"
        self.resume, self.start, self.counters, self.generators, self.metrics_rows = resume, 0, {}, {}, None
        self.rewarm_from = None  # the optimizer step a fresh AdamW's LR ramp started at (a resumable export's resume)
        self.par = self.opt = self.sched = self.log = self.bar = None
        self.writer = CheckpointWriter()
        seed_everything(agent.seed)  # the same initial model on every rank
        if self.d.main:  # what killed writers left (a 7B checkpoint cut short is tens of GB)
            for where in (self.dir, self.dir / "checkpoints"):
                for p in remove_stale_temps(where):
                    print(f"[{algo}] removed {p}, left by a killed write", flush=True)

    def say(self, msg: str) -> None:
        if self.d.main:
            print(f"[{self.algo}] {msg}", flush=True)

    # ------------------------------------------------------------------ set-up
    def wrap(self, model, tok, norm_stats: dict, total_steps: int = 0, schedule: str = "constant", min_lr: float = 0.0,
             **wrap_kw) -> distributed.Parallel:
        """Wrap ``model`` for this run (:func:`.distributed.wrap`) and make its AdamW and LR schedule."""
        self.tok, self.norm_stats, self.config = tok, norm_stats, model.config
        self.par = distributed.wrap(self.d, model, self.agent.parallel, dtype=self.dtype, **wrap_kw)
        self.opt, self.sched = make_optimizer(self.par.module, self.agent, self.cuda, total_steps, schedule, min_lr)
        return self.par

    def restore(self) -> None:
        """``--resume``: continue from the newest intact checkpoint (a damaged newer one is named and skipped), or
        start from the beginning when there is none; sets ``start`` and the counters."""
        if not self.resume:
            return
        ckpt = newest_good_checkpoint(self.dir, say=self.say)
        if ckpt is None:
            self.resume = False
            self.say(f"--resume: no checkpoint in {self.dir / 'checkpoints'} to continue from; starting from the beginning")
            return
        state = restore_training(ckpt, self.par, self.opt, self.sched, self.generators, self.d.rank, self.d.world)
        self.start = int(state["iteration"])
        self.counters.update(state.get("counters", {}))
        self.metrics_rows = state.get("metrics_rows")
        fresh = state["optimizer"] is None  # a resumable export (:func:`.checkpoints.export_resumable`)
        self.rewarm_from = self.sched.last_epoch if fresh else state.get("rewarm_from")
        if self.rewarm_from is not None:
            rewarm(self.opt, self.sched, self.rewarm_from, self.agent.warmup_steps)
        self.say(f"resumed {self.dir} from {ckpt.name} (iteration {self.start})" + (
            f"; its weights came as {state.get('weights_dtype', '?')} without the optimizer's moments: AdamW starts "
            f"afresh and the LR warms up again over {self.agent.warmup_steps} steps" if fresh else ""))

    def open_log(self, extra: dict) -> RunLogger:
        """config.yaml and the metrics logger (a resumed run drops the lines of iterations after its checkpoint)."""
        model = {"model": self.config.to_dict()}
        if self.d.main:
            write_run_config(self.dir, self.task, self.env_cfg, self.agent,
                             {"algo": self.algo, "device": str(self.device), "world_size": self.d.world, **extra, **model})
        self.log = RunLogger(self.dir, {"agent": self.agent, **model}, self.agent.logger, self.agent.wandb_project,
                             resume_from=self.start if self.resume else None, enabled=self.d.main,
                             keep_rows=self.metrics_rows)
        return self.log

    def oom_guard(self, what_to_lower: str):
        return cuda_oom_as_error(what_to_lower, held=lambda: training_state_bytes(self.par.modules(), self.opt))

    # ------------------------------------------------------------------ the loop
    def iterations(self, unit: str = "it"):
        """The iteration numbers still to run (1-based, as they are logged and saved), with a progress bar."""
        from tqdm import tqdm

        total = self.agent.max_iterations
        self.bar = tqdm(range(self.start, total), desc=self.algo, unit=unit, dynamic_ncols=True, initial=self.start,
                        total=total, disable=not self.d.main)
        for i in self.bar:
            yield i + 1
        self.bar.close()

    def due(self, every: int, done: int) -> bool:
        return bool(every) and done % every == 0

    def optimizer_step(self) -> torch.Tensor:
        """Reduce gradients where the wrapping does not, clip, step, zero, advance the LR; returns the norm (a
        device scalar)."""
        self.par.reduce_gradients()
        norm = self.par.clip_grad_norm(self.agent.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()
        self.par.stale = True
        return norm

    def check_finite(self, loss: torch.Tensor, iteration: int) -> None:
        check_finite(loss, iteration, self.dir)

    def evaluate(self, step: int, validate) -> dict:
        """Rank 0 runs ``validate() -> (metrics, clips, fps)`` on the unsharded model and logs the clips; the
        other ranks wait. {} when evaluation is off."""
        if self.agent.eval_episodes <= 0:
            return {}
        self.par.sync_replica()  # under FSDP every rank takes part
        if not self.d.main:
            self.d.barrier()
            return {}
        t0 = time.perf_counter()
        metrics, clips, fps = validate()
        metrics["perf/eval_s"] = time.perf_counter() - t0  # a recipe's time outside its iterations, attributed
        self.log.videos(step, clips, fps)
        print(f"\n[{self.algo}] iteration {step}: held-out success {metrics['eval/success']:.3f} "
              f"[{metrics['eval/ci_low']:.3f}, {metrics['eval/ci_high']:.3f}] over {metrics['eval/episodes']} "
              f"({metrics['perf/eval_s']:.1f} s)", flush=True)
        self.d.barrier()
        return metrics

    def save(self, done: int) -> None:
        """Checkpoint every ``save_every`` iterations and at the last (all ranks take part, rank 0 writes)."""
        if not (self.due(self.agent.save_every, done) or done == self.agent.max_iterations):
            return
        rngs = self.d.gather_objects(rng_state(self.generators))  # every rank's, in rank order
        model_sd, optim_sd = self.par.checkpoint_state(self.opt)
        if self.d.main:  # copied to the host now, written while training goes on
            weights, state = training_checkpoint_state(self.par.plain, {
                "optimizer": optim_sd, "scheduler": self.sched.state_dict(), "rng": rngs, "counters": dict(self.counters),
                "metrics_rows": self.log.metrics.rows, "rewarm_from": self.rewarm_from,
                "config": {"agent": self.agent.to_dict(), "model": self.config.to_dict()}}, model_sd)
            self.writer.submit(write_training_checkpoint, self.dir, done, self.par.plain, self.tok, self.norm_stats,
                               weights, state, self.agent.keep_last)
        self.d.barrier()

    # ------------------------------------------------------------------ the end
    def finish(self, last_eval: dict, extra: dict | None = None) -> Path:
        """Log the final evaluation, then write DIR/final (last: it marks a finished run; it links the last
        checkpoint's gathered weights)."""
        if last_eval or extra:
            self.log.log(self.agent.max_iterations, {**last_eval, **(extra or {})})
        final = self.dir / "final"
        if self.d.main:
            self.writer.wait()  # final/ links the last checkpoint's files
            export_final(self.dir, self.par.plain, self.tok, self.norm_stats, self.agent.max_iterations)
        self.d.barrier()
        return final

    def close(self) -> None:
        """Finish the checkpoint write in flight, close the progress bar, the logger and the process group (also
        after an error: a failed write is then named, not raised over the error)."""
        try:
            self.writer.wait()
        except Exception as e:  # noqa: BLE001
            print(f"[{self.algo}] the last checkpoint write failed: {type(e).__name__}: {e}", flush=True)
        if self.bar is not None:
            self.bar.close()
        self.records = self.log.records() if self.log is not None else []
        if self.log is not None:
            self.log.close()
        self.d.close()

    def plot(self, title: str, loss_key: str, success_keys: list[str]) -> None:
        """DIR/curve.png from the metrics (rank 0, after :meth:`close`)."""
        if self.d.main and self.records:
            plot_run(self.dir, self.records, title, loss_key, success_keys)
