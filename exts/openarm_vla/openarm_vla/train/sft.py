"""SFT of the VLA on demonstrations: cross-entropy on the action tokens, one readable loop (nanoGPT style).

Every step of every demo is an item: the front image (and, with proprio, the joint state) at step t, the
instruction, and the next ``chunk`` actions (padded past the episode end with its last action), expressed
in the model's action frame (absolute, or offsets from the joint state at t: ``action_frame="delta"``),
normalized with their q01/q99 over the demos (OpenVLA bounds_q99, so the 256 bins span what the demos use)
and binned into the 256-way slice. OFT parallel decoding predicts all chunk x 8 tokens in one forward. AdamW (decay on
matrices), linear warm-up then cosine or constant LR, gradient accumulation, bf16 autocast on CUDA, gradient
clipping, GPU image augmentation, gradient checkpointing. Greedy evaluation in the env on a bank
of held-out initial states every ``eval_every`` steps and at the end. The checkpoint carries the statistics,
so ``scripts/evaluate.py --policy DIR/final`` un-normalizes the actions it predicts.
"""

from __future__ import annotations

import time

import torch

from openarm_vla.action_space import DEFAULT_STATS_KEY, normalize
from openarm_vla.errors import DemoFileError, TrainError
from openarm_vla.vla.action_tokenizer import ActionTokenizer

from .augment import augment_images
from .losses import sft_token_loss
from .memory import peak_memory_gb
from .scaffold import TrainingRun

_KNOBS = {"proprio": "use_proprio", "action_frame": "action_frame"}
"""SFT's agent fields that set model-config fields (they must agree with an ``--init`` checkpoint)."""


def load_demos(agent, device):
    """(model, text tokenizer, DemoTensors, statistics with the token-frame action bounds, demo count): the
    model SFT starts from and the demos on ``device``; a bad demo file is named before anything is built."""
    from openarm_vla.data.dataset import DemoDataset
    from openarm_vla.data.demo_tensors import DemoTensors
    from openarm_vla.data.hdf5_format import validate_file
    from openarm_vla.data.statistics import compute_dataset_statistics

    from .model_init import build_model

    if not agent.datasets:
        raise TrainError("--algo sft needs demonstrations: --dataset FILE.hdf5 [...] (scripts/generate_demos.py writes them)")
    try:
        for path in agent.datasets:  # metadata only
            validate_file(path, required_obs=("front_rgb",), action_dim=8, allow_empty=False)
        model, tok, _ = build_model(agent, device, _KNOBS)
        cfg = model.config
        joint_key = "joint_pos" if cfg.use_proprio or cfg.action_frame == "delta" else None
        stats = compute_dataset_statistics(agent.datasets, proprio_key=joint_key, success_only=agent.success_only)
        ds = DemoDataset(agent.datasets, chunk_size=cfg.chunk, success_only=agent.success_only, proprio_key=joint_key,
                         action_dim=cfg.action_dim)
        data = DemoTensors(ds.load_arrays(), cfg.chunk, cfg.action_frame, device)
    except DemoFileError as e:
        raise TrainError(str(e)) from None
    stats["action"] = {**data.token_frame_stats(), "mask": [True] * cfg.action_dim, "frame": cfg.action_frame}
    return model, tok, data, stats, ds.num_demos


def train_sft(task: str, env_cfg, agent, output, device: str, resume: bool = False, num_envs: int | None = None) -> dict:
    """Run SFT; returns the final evaluation metrics and paths."""
    from openarm_vla.vla import VLARunner

    micro = agent.micro_batch_size or agent.batch_size
    if agent.batch_size % micro:
        raise TrainError(f"agent.batch_size {agent.batch_size} is not a multiple of agent.micro_batch_size {micro}")
    run = TrainingRun("sft", task, env_cfg, agent, output, device, resume)
    t0 = time.time()
    model, tok, data, stats, num_demos = load_demos(agent, run.device)
    cfg = model.config
    run.say(f"{num_demos} demos, {len(data)} steps from {len(agent.datasets)} file(s) in memory "
            f"({data.image.numel() / 2**20:.0f} MiB of images, {time.time() - t0:.1f} s); action frame {cfg.action_frame}"
            f"{f'; {run.d.world} processes' if run.d.on else ''}")
    norm_stats = {DEFAULT_STATS_KEY: stats}
    action_tok = ActionTokenizer(tok.vocab_size, cfg.n_bins)
    inputs_of = VLARunner(model, tok, num_envs=1, dtype=run.dtype)  # training inputs (prompts, preprocessing) only
    prompts = PromptTable(inputs_of, data.instructions)
    par = run.wrap(model, tok, norm_stats, agent.max_iterations, agent.lr_schedule, agent.min_lr)
    run.generators = {"batch": torch.Generator(device=run.device).manual_seed(agent.seed + 7919 * run.d.rank)}
    run.restore()
    run.open_log({})
    evaluator = Evaluator(task, env_cfg, agent, num_envs or agent.eval_num_envs, par, tok, norm_stats, run.dtype)
    last_eval = {}
    try:
        with run.oom_guard("agent.micro_batch_size (gradient accumulation keeps agent.batch_size) or agent.eval_num_envs"):
            par.module.train()
            t_last = time.time()
            watch = FiniteWatch(run.device)
            for done in run.iterations(unit="step"):
                loss, acc, grad_norm = sft_step(run, data, stats["action"], prompts, action_tok, micro, done)
                watch.see(loss, done)
                metrics = {}
                last = done == agent.max_iterations
                if run.due(agent.log_every, done) or run.due(agent.save_every, done) or last:
                    watch.check(run)  # the host waits for the GPU here only: before a log line or a checkpoint
                if run.due(agent.log_every, done) or last:
                    dt, t_last = time.time() - t_last, time.time()
                    metrics = run.d.mean_metrics({
                        "sft/loss": float(loss), "sft/token_acc": float(acc), "sft/lr": run.sched.get_last_lr()[0],
                        "sft/grad_norm": float(grad_norm), "perf/samples_per_s": agent.batch_size * agent.log_every / dt,
                        "perf/peak_mem_gb": peak_memory_gb()}, sums=("perf/samples_per_s",))
                    run.bar.set_postfix(loss=f"{metrics['sft/loss']:.3f}", acc=f"{metrics['sft/token_acc']:.2f}",
                                        success=f"{last_eval.get('eval/success', float('nan')):.2f}")
                if run.due(agent.eval_every, done) and done < agent.max_iterations:
                    last_eval = run.evaluate(done, evaluator)
                    metrics.update(last_eval)
                if metrics:
                    run.log.log(done, metrics)
                run.save(done)
            last_eval = run.evaluate(agent.max_iterations, evaluator)
            final = run.finish(last_eval)
    finally:
        run.close()
        evaluator.close()
    run.plot(f"SFT {cfg.name} on {num_demos} demos", "sft/loss", ["eval/success"])
    if not run.d.main:
        return {"final": str(final)}
    held_out = f"held-out success {last_eval['eval/success']:.3f}" if last_eval else "no evaluation (agent.eval_episodes=0)"
    run.say(f"done: {agent.max_iterations} steps; final {final}; {held_out}")
    return {"final": str(final), **last_eval}


def sft_step(run: TrainingRun, data, action_stats: dict, prompts, action_tok, micro: int,
             iteration: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step on ``agent.batch_size`` random demo steps in micro-batches of ``micro`` (gradient
    accumulation): augmentation, targets (normalized, binned), the token cross-entropy; returns (loss, token
    accuracy, gradient norm) as device scalars: nothing here waits for the GPU, so the host prepares the next step
    while this one runs (the loop reads them when it logs; :class:`FiniteWatch` keeps a non-finite loss from a
    checkpoint)."""
    agent, par, gen = run.agent, run.par, run.generators["batch"]
    idx = torch.randint(0, len(data), (agent.batch_size,), device=run.device, generator=gen)
    batch = data.batch(idx)
    if agent.augment.enabled:
        a = agent.augment
        batch["rgb"] = augment_images(batch["rgb"], tuple(a.crop_scale), a.brightness, a.contrast, a.saturation, gen)
    targets = action_tok.actions_to_slice(normalize(batch.pop("actions"), action_stats))
    batch["input_ids"], batch["attention_mask"] = prompts.rows(data.instruction_index(idx))
    accum = agent.batch_size // micro
    loss_sum = acc_sum = torch.zeros((), device=run.device)
    for k in range(accum):
        sl = slice(k * micro, (k + 1) * micro)
        inputs = prompts.runner.model_inputs({key: v[sl] for key, v in batch.items()})
        with par.no_sync(last=k == accum - 1):  # DDP all-reduces on the last micro-batch only
            logits = par.net(**inputs, dtype=run.dtype)
            loss, acc = sft_token_loss(logits, targets[sl])
            (loss / accum).backward()
        loss_sum = loss_sum + loss.detach() / accum
        acc_sum = acc_sum + acc.detach() / accum
    return loss_sum, acc_sum, run.optimizer_step()


class PromptTable:
    """The prompt ids and mask of each of a demo set's instructions, tokenized once, on the device: a batch takes
    its rows by instruction index (no host round trip per step). ``runner`` preprocesses the rest of the inputs."""

    def __init__(self, runner, instructions):
        self.runner = runner
        self.ids, self.mask = runner.prompt_ids(list(instructions))

    def rows(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.ids[index], self.mask[index]


class FiniteWatch:
    """The first step whose loss was not finite, tracked on the device; :meth:`check` reads it (a host sync) and
    stops the run naming the last good checkpoint. The loop checks before every log and every checkpoint, so a
    checkpoint is written only after finite steps."""

    def __init__(self, device):
        self.step = torch.full((), -1, dtype=torch.long, device=device)
        self.loss = torch.zeros((), device=device)

    def see(self, loss: torch.Tensor, step: int) -> None:
        first = ~torch.isfinite(loss) & (self.step < 0)
        self.step = torch.where(first, step, self.step)
        self.loss = torch.where(first, loss, self.loss)

    def check(self, run: TrainingRun) -> None:
        step = int(self.step)
        if step >= 0:
            run.check_finite(self.loss, step)


class Evaluator:
    """SFT's greedy evaluation on rank 0: the env and its held-out bank are built at the first evaluation and
    kept (Isaac Lab holds one simulation per process); the policy is the unsharded model (``par.plain``)."""

    def __init__(self, task, env_cfg, agent, num_envs: int, par, tok, norm_stats: dict, dtype: str):
        self.task, self.env_cfg, self.agent, self.num_envs = task, env_cfg, agent, num_envs
        self.par, self.tok, self.norm_stats, self.dtype = par, tok, norm_stats, dtype
        self.env = self.bank = self.runner = None

    def __call__(self) -> tuple[dict, list[dict], int]:
        from openarm_vla.eval.bank import EvalBank
        from openarm_vla.tasks.factory import make_env
        from openarm_vla.vla import VLARunner

        from .validation import validate

        if self.env is None:
            self.env = make_env(self.task, cfg=self.env_cfg, num_envs=self.num_envs, device=self.par.d.device,
                                seed=self.agent.eval_seed)
            self.bank = EvalBank.build(self.env, self.agent.eval_episodes, self.agent.eval_seed)
            self.runner = VLARunner(self.par.plain, self.tok, self.env.num_envs, norm_stats=self.norm_stats,
                                    unnormalize_actions=True, dtype=self.dtype)
        metrics, _, clips = validate(self.env, self.runner, self.bank, videos=self.agent.eval_videos)
        return metrics, clips, round(1 / self.env.step_dt)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
