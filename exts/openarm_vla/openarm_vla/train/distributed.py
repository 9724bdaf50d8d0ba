"""One process per GPU under ``torchrun``, on torch's own distributed stack (no Ray).

``torchrun --nproc_per_node=K scripts/train.py ...`` (multi-node: ``--nnodes --node_rank --rdzv_backend c10d
--rdzv_endpoint HOST:PORT``) sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`init` joins the group (NCCL on
GPUs, gloo on the CPU) and gives each rank ``cuda:LOCAL_RANK``. Every rank runs its own vectorized env with
its own groups (a group never spans ranks) and seeds offset by its rank.

The trainers see two objects and no ``if fsdp`` of their own: :class:`Dist` (rank, world, the collectives,
all no-ops in one process) and :class:`Parallel` (the wrapped model, from :func:`wrap`):

- DDP (small presets): replicas kept identical. SFT forwards through DistributedDataParallel
  (``Parallel.net``); GRPO sums gradients across ranks after each mini-batch itself
  (``Parallel.reduce_gradients``: its ranks hold different numbers of trajectories, which DDP's
  one-backward-per-step contract does not allow; the loss weights use the global counts, so the summed
  gradient is the global objective's).
- FSDP2 (the 7B preset): ``fully_shard`` per decoder layer; what one rank runs alone (GRPO's rollouts and
  old log-probs, SFT's evaluation) runs on an unsharded replica (``Parallel.plain``) that
  ``Parallel.sync_replica`` refreshes from the shards, its parameters in FSDP's compute dtype (the run's
  autocast dtype, bf16 on CUDA: the weights the sharded forward computes with, in half the memory);
  checkpoints gather the fp32 weights themselves (``Parallel.checkpoint_state``). Every sharded forward is
  collective, so GRPO pads ranks to the same number of forwards (``Parallel.forwards``).

Rank 0 alone logs, evaluates and writes checkpoints: whole (unsharded) weights and optimizer state, and one
RNG state per rank, so a run resumes with the world size it was written with, under either wrapping.

``agent.parallel=fsdp`` also holds in one process (no torchrun needed): a process group of one, FSDP2 sharding
over it, so one GPU runs one rank's share of a K-GPU FSDP run through the same code (all but the traffic).
"""
from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from openarm_vla.errors import TrainError

PARALLEL = ("auto", "ddp", "fsdp")


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"
    group: bool = False
    """Whether this process is in a process group (torchrun's, or a group of one for FSDP in one process)."""

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1

    @property
    def comm_device(self) -> str:
        """Where collectives' small tensors live: the GPU under NCCL, the CPU under gloo."""
        return self.device if str(self.device).startswith("cuda") else "cpu"

    def all_sum(self, value) -> torch.Tensor:
        """Sum of a number or tensor over the ranks (itself on one process), in float64."""
        t = torch.as_tensor(value, dtype=torch.float64, device=self.comm_device).clone()
        if self.on:
            dist.all_reduce(t)
        return t

    def max_over_ranks(self, value: int) -> int:
        if not self.on:
            return int(value)
        t = torch.tensor([int(value)], dtype=torch.long, device=self.comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def mean_metrics(self, metrics: dict, sums: tuple[str, ...] = ()) -> dict:
        """Numbers averaged over the ranks (``sums`` keys added up instead); non-numbers are rank 0's."""
        if not self.on:
            return metrics
        keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        vals = self.all_sum([float(metrics[k]) for k in keys])
        return {**metrics, **{k: v if k in sums else v / self.world for k, v in zip(keys, vals.tolist())}}

    def gather_objects(self, obj) -> list:
        """Every rank's ``obj`` on every rank, in rank order (RNG states for the checkpoint)."""
        if not self.on:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast_model(self, model) -> None:
        """Rank 0's weights everywhere (models built from the same seed already agree; this makes it certain)."""
        if self.on:
            for t in list(model.parameters()) + list(model.buffers()):
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        if self.on:
            dist.barrier()

    def close(self) -> None:
        if self.group and dist.is_initialized():
            dist.destroy_process_group()


def init(device: str, parallel: str = "auto") -> Dist:
    """Join the torchrun group if there is one (``parallel="fsdp"`` in one process: a group of one); one line
    names a bad setup."""
    if parallel not in PARALLEL:
        raise TrainError(f"agent.parallel={parallel!r}: expected one of {', '.join(PARALLEL)}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        if parallel != "fsdp" or dist.is_initialized():
            return Dist(device=device)
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo", store=dist.HashStore(),
                                rank=0, world_size=1)
        return Dist(device=device, group=True)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = str(device).startswith("cuda")
    if cuda:
        if not dist.is_nccl_available():
            raise TrainError("torchrun on GPUs needs NCCL, which this torch build lacks (use --device cpu for gloo)")
        if local >= torch.cuda.device_count():
            raise TrainError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) here: "
                             "--nproc_per_node must not exceed the GPUs of a node")
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, local, device, group=True)


# ------------------------------------------------------------------------------------------------ wrapping


@dataclass
class Parallel:
    """A model as this run trains it: ``kind`` single (one process), ddp (replicas) or fsdp (sharded)."""

    d: Dist
    kind: str
    module: torch.nn.Module
    """The module the optimizer steps (sharded under FSDP)."""
    net: torch.nn.Module
    """What SFT's loss forwards through: DistributedDataParallel under DDP, else ``module``."""
    replica: torch.nn.Module | None = None
    """Under FSDP an unsharded copy in the compute dtype, for what one rank runs alone (rank 0's, or every
    rank's for GRPO's rollouts); None elsewhere."""
    stale: bool = True
    """Whether the replica lags the trained weights (set by each optimizer step, cleared by :meth:`sync_replica`)."""

    @property
    def plain(self) -> torch.nn.Module:
        """The unsharded model: rollouts, evaluation, the config and tokenizer-facing export."""
        return self.replica if self.replica is not None else self.module

    def sync_replica(self) -> None:
        """Copy the trained weights into the replica if they moved since the last copy (under FSDP a collective:
        every rank calls, each with the same ``stale``)."""
        if self.kind == "fsdp" and self.stale:
            sync_replica(self.module, self.replica)
        self.stale = False

    def no_sync(self, last: bool):
        """Context of one micro-batch's backward: DDP all-reduces on the last of an accumulation only."""
        return self.net.no_sync() if self.kind == "ddp" and not last and hasattr(self.net, "no_sync") else nullcontext()

    def reduce_gradients(self) -> None:
        """Sum every parameter's gradient over the ranks where nothing else did (GRPO under DDP; FSDP sums in
        its backward, its gradient divide factor set to 1)."""
        if self.kind != "ddp" or not self.d.on or self.net is not self.module:
            return
        params = [p for p in self.module.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    def forwards(self, n: int) -> int:
        """How many forwards this rank must run for its ``n``: under FSDP every rank runs the most any rank has
        (each sharded forward is collective; the extra ones carry zero weight)."""
        return self.d.max_over_ranks(n) if self.kind == "fsdp" else n

    def clip_grad_norm(self, max_norm: float) -> torch.Tensor:
        """Clip the global gradient norm (sharded gradients included); returns it before clipping, on the device
        (reading it waits for the GPU: the trainers read it when they log)."""
        norm = torch.nn.utils.clip_grad_norm_([p for p in self.module.parameters() if p.requires_grad], max_norm)
        return (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).detach()

    def checkpoint_state(self, optimizer) -> tuple[dict | None, dict]:
        """(whole fp32 model state dict or None, whole optimizer state) for a checkpoint. Under FSDP gathered
        from the shards onto rank 0's CPU (collective: every rank calls; the others get empty dicts); otherwise
        None for the model (its own state dict serves) and the optimizer's state dict."""
        if self.kind != "fsdp":
            return None, optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(self.module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_state(self, optimizer, model_sd: dict, optim_sd: dict) -> None:
        """Load whole state dicts into a plain or a sharded model (every rank reads the checkpoint itself);
        ``optim_sd`` None leaves the optimizer as it is."""
        if self.kind != "fsdp":
            self.module.load_state_dict(model_sd)
            if optim_sd is not None:
                optimizer.load_state_dict(optim_sd)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_state_dict

        if optim_sd is None:
            set_model_state_dict(self.module, model_sd, options=StateDictOptions(full_state_dict=True))
            return
        set_state_dict(self.module, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd,
                       options=StateDictOptions(full_state_dict=True))

    def modules(self) -> list[torch.nn.Module]:
        """Every module this process holds weights of (for the memory accounting of an OOM line)."""
        return [self.module] + ([self.replica] if self.replica is not None else [])


def wrap(d: Dist, model, parallel: str = "auto", dtype: str = "float32", summed_gradients: bool = False,
         replica_on: str = "main", ddp_module: bool = True) -> Parallel:
    """Wrap ``model`` for this run. kind "single" (one process), "ddp" (replicas) or "fsdp" (FSDP2
    ``fully_shard`` per Llama decoder layer and at the root; compute in ``dtype``, the run's autocast setting,
    over fp32 master weights, fp32 gradient reduction). "auto": FSDP for the 7B preset, DDP otherwise; in one
    process plain, unless "fsdp" (a group of one, see :func:`init`).

    ``summed_gradients``: FSDP adds the ranks' gradients up instead of averaging them (GRPO's loss weights already
    use the global counts). ``replica_on``: which ranks keep FSDP's unsharded replica ("main" or "all").
    ``ddp_module``: forward through DistributedDataParallel (SFT) or sum gradients by hand (GRPO)."""
    from openarm_vla.vla.model import compute_dtype

    from .lora import has_lora

    if parallel not in PARALLEL:
        raise TrainError(f"agent.parallel={parallel!r}: expected one of {', '.join(PARALLEL)}")
    d.broadcast_model(model)
    if not d.on and not (parallel == "fsdp" and d.group):
        return Parallel(d, "single", model, model)
    kind = parallel if parallel != "auto" else ("fsdp" if model.config.llm.hidden_size >= 2048 else "ddp")
    if d.main:
        print(f"[dist] {kind} over {d.world} process(es), {d.device} on rank 0", flush=True)
    if kind == "ddp":
        cuda = str(d.device).startswith("cuda")
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.local_rank] if cuda else None) \
            if ddp_module else model
        return Parallel(d, "ddp", model, net)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if has_lora(model):
        raise TrainError("agent.lora with FSDP is not supported: LoRA trains a replica per GPU (agent.parallel=ddp)")
    mp = MixedPrecisionPolicy(param_dtype=compute_dtype(dtype), reduce_dtype=torch.float32)
    units = list(model.language_model.model.layers)
    for layer in units:
        fully_shard(layer, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    if summed_gradients:
        for unit in units + [model]:
            unit.set_gradient_divide_factor(1.0)
            unit.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no PREMUL_SUM)
    replica = plain_replica(model, d.device, dtype) if replica_on == "all" or d.main else None
    par = Parallel(d, "fsdp", model, model, replica)
    par.sync_replica()
    return par


def plain_replica(model, device, dtype: str = "float32"):
    """An unsharded copy of a sharded model's architecture (built on the meta device: no RNG draws), its
    parameters (not its buffers: the rotary frequencies stay fp32) in the run's compute dtype (``dtype``: its
    autocast setting, as for :func:`wrap`); :func:`sync_replica` fills it."""
    from openarm_vla.vla import OpenVLAForActionPrediction
    from openarm_vla.vla.model import compute_dtype

    with torch.device("meta"):
        replica = OpenVLAForActionPrediction(model.config)
    replica = replica.to_empty(device=device).eval().requires_grad_(False)
    for p in replica.parameters():
        p.data = p.data.to(compute_dtype(dtype))
    if model.compiled_layers:  # agent.compile: the rollouts' forwards too
        replica.compile_layers()
    return replica


@torch.no_grad()
def sync_replica(model, replica) -> None:
    """Copy the trained weights into ``replica`` one tensor at a time (under FSDP a collective: every rank
    calls, in the same order; ``replica`` may be None on ranks that keep none)."""
    dst = {} if replica is None else {**dict(replica.named_parameters()), **dict(replica.named_buffers())}
    for name, src in list(model.named_parameters()) + list(model.named_buffers()):
        full = src.full_tensor() if hasattr(src, "full_tensor") else src
        if replica is not None:
            dst[name].copy_(full)
