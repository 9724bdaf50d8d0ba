"""Training checkpoints that survive ``kill -9`` and bad disks, and the final policy export.

``DIR/checkpoints/iter_<K>/`` holds the policy (our checkpoint format: weights, config, statistics, tokenizer),
``trainer_state.pt`` (optimizer, LR schedule, one RNG state per rank, counters, config) and, written last,
``manifest.json`` (size and SHA-256 of every file). The directory is written under a hidden temporary name
and renamed (the rename is the commit); the last ``keep_last`` are kept. ``--resume`` takes the newest
checkpoint whose manifest holds, names and skips any that does not (a truncated or corrupt file), and starts
from the beginning when there is none (a run killed before its first checkpoint). Leftovers of killed writes
are deleted at the start of every run and at every save. To continue on another machine when only small files can
travel, :func:`export_resumable` writes a checkpoint without the optimizer's moments.

The trainers write a checkpoint in the background (:class:`CheckpointWriter`): its tensors are copied to the host
first (:func:`training_checkpoint_state`), so training goes on while :func:`write_training_checkpoint` writes and
hashes the files; the next save and the end of the run wait for it. A kill during the write leaves the previous checkpoint the newest.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import torch

from openarm_vla.errors import CheckpointError, TrainError
from openarm_vla.utils.io import atomic_path, remove_stale_temps
from openarm_vla.utils.manifest import MANIFEST_FILE, copy_manifest, verify_manifest, write_manifest
from openarm_vla.utils.run_files import STATE_FILE, checkpoint_dirs

from .rng import set_rng_state


def export_policy(model, directory: Path, tokenizer, norm_stats: dict, state_dict: dict | None = None,
                  manifest: bool = True) -> Path:
    """The policy as a plain checkpoint (LoRA adapters merged into their weights, under the plain names;
    ``state_dict``: the weights gathered from FSDP's shards, ``model`` then gives the config)."""
    from openarm_vla.vla.checkpoint import save_checkpoint

    from .lora import has_lora, merged_state_dict

    if state_dict is None and has_lora(model):
        state_dict = merged_state_dict(model)
    return save_checkpoint(model, directory, tokenizer, norm_stats, state_dict=state_dict, manifest=manifest)


def host_snapshot(tree, clone_host: bool = True):
    """``tree`` with its tensors copied to the host and its dicts, lists and tuples rebuilt: what a background write
    may read while training changes the originals. ``clone_host=False`` keeps tensors already on the host as they
    are (FSDP's gathered state dicts are fresh copies: a 7B's would otherwise be held twice)."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().to("cpu", copy=clone_host or tree.device.type != "cpu")
    if isinstance(tree, dict):
        return {k: host_snapshot(v, clone_host) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(host_snapshot(v, clone_host) for v in tree)
    return tree


def training_checkpoint_state(model, state: dict, state_dict: dict | None = None) -> tuple[dict, dict]:
    """(policy weights, trainer state) of a checkpoint of ``model`` as they are now, on the host: the weights
    ``state_dict`` (FSDP's, gathered onto the host with the optimizer's state: kept, not copied again) or the
    model's (LoRA merged), the state with LoRA's trainable tensors."""
    from .lora import has_lora, merged_state_dict, trainable_state

    gathered = state_dict is not None
    if not gathered:
        state_dict = merged_state_dict(model) if has_lora(model) else model.state_dict()
    weights, state = host_snapshot(state_dict, not gathered), host_snapshot(state, not gathered)
    if has_lora(model):  # the live model's tensors, on any device
        state["trainable"] = host_snapshot(trainable_state(model))
    return weights, state


class CheckpointWriter:
    """Writes one checkpoint at a time in a thread while training goes on. :meth:`submit` and :meth:`wait` first
    wait for the write in flight and raise its error, if any. The thread is not a daemon: a process that ends
    (an error included) finishes the write first."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, fn, *args, **kwargs) -> None:
        self.wait()

        def run():
            try:
                fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to the training thread by wait()
                self._error = e

        self._thread = threading.Thread(target=run, name="checkpoint-writer")
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def save_training_checkpoint(run_dir: str | os.PathLike, iteration: int, model, tokenizer, norm_stats: dict,
                             state: dict, keep_last: int = 3, state_dict: dict | None = None) -> Path:
    """Checkpoint ``model`` as it is now (:func:`training_checkpoint_state`, then :func:`write_training_checkpoint`).
    ``model``: unsharded (under FSDP the replica, with the fp32 weights in ``state_dict``:
    :meth:`~.distributed.Parallel.checkpoint_state`)."""
    weights, state = training_checkpoint_state(model, state, state_dict)
    return write_training_checkpoint(run_dir, iteration, model, tokenizer, norm_stats, weights, state, keep_last)


def write_training_checkpoint(run_dir: str | os.PathLike, iteration: int, model, tokenizer, norm_stats: dict,
                              weights: dict, state: dict, keep_last: int = 3) -> Path:
    """Write ``checkpoints/iter_<iteration>/`` atomically (policy export of ``weights`` + ``trainer_state.pt`` +
    the manifest last); keep the last K. Reads only the host copies of :func:`training_checkpoint_state` (``model``
    gives the config), so it may run in a thread while training changes the model."""
    root = Path(run_dir) / "checkpoints"
    final = root / f"iter_{iteration:06d}"
    remove_stale_temps(root)
    with atomic_path(final) as tmp:
        export_policy(model, tmp, tokenizer, norm_stats, weights, manifest=False)
        torch.save({**state, "iteration": iteration}, tmp / STATE_FILE)
        write_manifest(tmp)
    for old in checkpoint_dirs(run_dir)[:-max(keep_last, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def newest_good_checkpoint(run_dir: str | os.PathLike, say=print) -> Path | None:
    """The newest checkpoint whose files match its manifest; each newer one that does not is named (``say``)
    and skipped. None when there is none."""
    for ck in reversed(checkpoint_dirs(run_dir)):
        problem = verify_manifest(ck)
        if problem is None:
            return ck
        say(f"[resume] skipped {ck}: {problem}")
    return None


def check_finite(loss: torch.Tensor, iteration: int, run_dir) -> None:
    """Stop on a non-finite loss with one line naming the last good checkpoint to go back to."""
    if not torch.isfinite(loss).all():
        last = checkpoint_dirs(run_dir)
        keep = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was written yet"
        raise TrainError(f"non-finite loss ({loss.item()}) at iteration {iteration}; stopped, {keep} "
                         "(lower agent.lr or check the data)")


def load_trainer_state(ckpt_dir: Path) -> dict:
    try:
        return torch.load(ckpt_dir / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - an unreadable state is a bad checkpoint, whatever the reason
        raise TrainError(f"{ckpt_dir / STATE_FILE}: unreadable trainer state ({type(e).__name__}: {e})") from None


def restore_training(ckpt: Path, par, optimizer, scheduler, generators: dict, rank: int = 0, world: int = 1) -> dict:
    """Load checkpoint ``ckpt`` into the model (``par``: :class:`~.distributed.Parallel`), optimizer and
    scheduler, set this rank's RNGs and named generators; returns the trainer state (``iteration``, counters,
    ...). A checkpoint holds one RNG state per process, so it resumes with the number of processes that wrote it."""
    state = load_trainer_state(ckpt)
    if len(state["rng"]) != world:
        raise TrainError(f"{ckpt}: written by a run of {len(state['rng'])} process(es); resume it with "
                         f"torchrun --nproc_per_node={len(state['rng'])} (this run has {world})")
    optim_sd = state["optimizer"]  # None in a resumable export: the optimizer starts afresh
    if "trainable" in state:  # LoRA: the base came from agent.init; the adapters and trainable layers from here
        unknown = par.module.load_state_dict(state["trainable"], strict=False).unexpected_keys
        if unknown:
            raise TrainError(f"{ckpt}: trainable tensors the model lacks: {unknown[:3]} (was agent.lora changed?)")
        if optim_sd is not None:
            optimizer.load_state_dict(optim_sd)
    else:
        from openarm_vla.vla.checkpoint import read_state_dict

        try:
            sd, _ = read_state_dict(ckpt, device="cpu")
            if optim_sd is None:  # a resumable export's bf16 weights, into the fp32 master weights
                sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
            par.load_state(optimizer, sd, optim_sd)
        except (CheckpointError, RuntimeError, KeyError, ValueError) as e:
            raise TrainError(f"{ckpt}: does not fit this model or optimizer ({' '.join(str(e).split())[:200]})") from None
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"][rank], generators)
    par.stale = True
    par.sync_replica()
    return state


def export_resumable(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype = torch.bfloat16,
                     max_shard_bytes: int | None = None, policy=None) -> Path:
    """Training checkpoint ``src`` as one a run on another machine can ``--resume`` where only small files travel:
    the policy in ``dtype`` and shards, and the trainer state without the optimizer's moments (twice the fp32
    weights); the RNG states, counters and LR schedule position stay. Put ``dst`` at ``RUN/checkpoints/iter_<K>``
    (its name in ``src``), the run's ``metrics.jsonl`` beside; the resumed run starts AdamW afresh and warms its LR up
    again over ``agent.warmup_steps`` (:meth:`.scaffold.TrainingRun.restore`). ``policy``: ``src`` already loaded by
    :func:`openarm_vla.vla.checkpoint.load_checkpoint` (read here otherwise)."""
    from openarm_vla.vla.checkpoint import load_checkpoint, save_checkpoint

    src = Path(src)
    if not (src / STATE_FILE).is_file():
        raise CheckpointError(f"{src}: not a training checkpoint (no {STATE_FILE}): a resumable export needs a run's "
                              "checkpoints/iter_<K>")
    state = load_trainer_state(src)
    if "trainable" in state:
        raise CheckpointError(f"{src}: a LoRA run's checkpoint: its base weights come from agent.init, so resume it "
                              "where its disk is (--resume), or export the merged policy without --resumable")
    ck = policy if policy is not None else load_checkpoint(src)
    with atomic_path(dst) as tmp:
        save_checkpoint(ck.model, tmp, ck.tokenizer, ck.norm_stats, manifest=False, dtype=dtype,
                        max_shard_bytes=max_shard_bytes)
        torch.save({**state, "optimizer": None, "exported_from": str(src), "weights_dtype": str(dtype)}, tmp / STATE_FILE)
        write_manifest(tmp)
    return Path(dst)


def export_final(run_dir: str | os.PathLike, model, tokenizer, norm_stats: dict, iteration: int | None = None) -> Path:
    """DIR/final: the policy as a plain checkpoint (``model`` unsharded, as for a training checkpoint).

    The run's last training checkpoint (``iteration``: just written, or the one a finished run resumed from)
    holds these very weights: final/ then hard-links its policy files rather than writing them again, so a 7B
    run writes its ~28 GB once (the trainers always checkpoint their last iteration: under FSDP the weights
    gathered from the shards, not the bf16 rollout replica), and takes its manifest without the trainer state.
    Without that checkpoint, or where links fail, the files are written or copied."""
    from openarm_vla.vla.checkpoint import MODEL_FILE

    final = Path(run_dir) / "final"
    last = Path(run_dir) / "checkpoints" / f"iter_{iteration:06d}" if iteration is not None else None
    if last is None or not (last / MODEL_FILE).is_file():
        return export_policy(model, final, tokenizer, norm_stats)
    with atomic_path(final) as tmp:
        shutil.copytree(last, tmp, copy_function=_link_or_copy, ignore=shutil.ignore_patterns(STATE_FILE, MANIFEST_FILE))
        copy_manifest(last, tmp, exclude=(STATE_FILE,))
    return final


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(src, dst)
