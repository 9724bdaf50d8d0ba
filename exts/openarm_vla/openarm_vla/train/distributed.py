"""One process per GPU under ``torchrun``, on torch's own distributed stack (no Ray).

``torchrun --nproc_per_node=K scripts/train.py ...`` (multi-node: ``--nnodes --node_rank --rdzv_backend c10d
--rdzv_endpoint HOST:PORT``) sets RANK / WORLD_SIZE / LOCAL_RANK; :func:`init` joins the group (NCCL on
GPUs, gloo on the CPU) and gives each rank ``cuda:LOCAL_RANK``. Every rank runs its own vectorized env with
its own groups (a group never spans ranks) and seeds offset by its rank. The model (:func:`wrap`):

- DDP (small presets): replicas kept identical. SFT under DistributedDataParallel; GRPO sums gradients
  across ranks after each mini-batch itself (its ranks hold different numbers of trajectories, which DDP's
  one-backward-per-step contract does not allow; the loss weights use the global counts, so the summed
  gradient is the global objective's).
- FSDP2 (the 7B preset): ``fully_shard`` per decoder layer; what one rank runs alone (GRPO's rollouts and
  old log-probs, SFT's evaluation) runs on an unsharded replica that :func:`sync_replica` refreshes from the
  shards, its parameters in FSDP's compute dtype (the run's autocast dtype, bf16 on CUDA: the weights the sharded
  forward computes with, in half the memory); checkpoints gather the fp32 weights themselves
  (:func:`full_model_state`). GRPO pads ranks to the same number of forwards.

Rank 0 alone logs, evaluates and writes checkpoints: whole (unsharded) weights and optimizer state, and one
RNG state per rank, so a run resumes with the world size it was written with, under either wrapping.

``agent.parallel=fsdp`` also holds in one process (no torchrun needed): a process group of one, FSDP2 sharding
over it, so one GPU runs one rank's share of a K-GPU FSDP run through the same code (all but the traffic).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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


def init(device: str, parallel: str = "auto") -> Dist:
    """Join the torchrun group if there is one (``parallel="fsdp"`` in one process: a group of one); one line
    names a bad setup."""
    from .runtime import TrainError

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


def close(d: Dist) -> None:
    if d.group and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(d: Dist, value) -> torch.Tensor:
    """Sum of a number or tensor over the ranks (itself on one process)."""
    t = torch.as_tensor(value, dtype=torch.float64, device=d.comm_device).clone()
    if d.on:
        dist.all_reduce(t)
    return t


def mean_metrics(d: Dist, metrics: dict, sums: tuple[str, ...] = ()) -> dict:
    """Numbers averaged over the ranks (``sums`` keys added up instead); non-numbers are rank 0's."""
    if not d.on:
        return metrics
    keys = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    vals = all_sum(d, [float(metrics[k]) for k in keys])
    out = dict(metrics)
    for k, v in zip(keys, vals.tolist()):
        out[k] = v if k in sums else v / d.world
    return out


def broadcast_model(d: Dist, model) -> None:
    """Rank 0's weights everywhere (models built from the same seed already agree; this makes it certain)."""
    if d.on:
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)


def sum_gradients(d: Dist, model) -> None:
    """Add up every parameter's gradient over the ranks in one flat all-reduce (missing gradients count as 0)."""
    if not d.on:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p))
        offset += n


def gather_objects(d: Dist, obj) -> list:
    """Every rank's ``obj`` on every rank (RNG states for the checkpoint)."""
    if not d.on:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.on:
        dist.barrier()


# ------------------------------------------------------------------------------------------------ wrapping

PARALLEL = ("auto", "ddp", "fsdp")


def wrap(d: Dist, model, parallel: str = "auto", summed_gradients: bool = False, dtype: str = "float32"):
    """(module to train through, kind): kind "single" (one process), "ddp" (replicas; SFT wraps them in
    DistributedDataParallel, GRPO sums gradients itself) or "fsdp" (FSDP2 ``fully_shard`` per Llama decoder
    layer and at the root; compute in ``dtype``, the run's autocast setting (bf16 on CUDA by default), over fp32
    master weights, fp32 gradient reduction). "auto":
    FSDP for the 7B preset, DDP otherwise; in one process plain, unless "fsdp" (a group of one, see
    :func:`init`). ``summed_gradients``: FSDP adds the ranks' gradients up instead of averaging them (GRPO's loss
    weights already use the global counts)."""
    from openarm_vla.vla.model import compute_dtype

    from .runtime import TrainError

    if parallel not in PARALLEL:
        raise TrainError(f"agent.parallel={parallel!r}: expected one of {', '.join(PARALLEL)}")
    if not d.on and not (parallel == "fsdp" and d.group):
        return model, "single"
    kind = parallel if parallel != "auto" else ("fsdp" if model.config.llm.hidden_size >= 2048 else "ddp")
    if d.main:
        print(f"[dist] {kind} over {d.world} process(es), {d.device} on rank 0", flush=True)
    if kind == "ddp":
        return model, "ddp"
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from .lora import has_lora

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
    return model, "fsdp"


def plain_replica(model, device, dtype: str = "float32"):
    """An unsharded copy of a sharded model's architecture (built on the meta device: no RNG draws), for what
    one rank runs alone (rollouts, evaluation), its parameters (not its buffers: the rotary frequencies stay
    fp32) in the run's compute dtype (``dtype``: its autocast setting, as for :func:`wrap`); :func:`sync_replica`
    fills it."""
    from openarm_vla.vla import OpenVLAForActionPrediction
    from openarm_vla.vla.model import compute_dtype

    with torch.device("meta"):
        replica = OpenVLAForActionPrediction(model.config)
    replica = replica.to_empty(device=device).eval().requires_grad_(False)
    for p in replica.parameters():
        p.data = p.data.to(compute_dtype(dtype))
    if model.compiled_layers:  # agent.compile: the rollouts' forwards too
        replica.compile_decoder_layers()
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


def full_model_state(kind: str, model) -> dict | None:
    """Under FSDP the whole fp32 state dict, on rank 0's CPU (collective: every rank calls; the others get an
    empty dict), for the checkpoint: the replica holds the weights in the compute dtype. Otherwise None (the
    model's own state dict serves)."""
    if kind != "fsdp":
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def clip_grad_norm(model, max_norm: float) -> float:
    """Clip the global gradient norm (sharded gradients included); returns it before clipping."""
    norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_norm)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


def optimizer_state(kind: str, model, optimizer) -> dict:
    """The whole optimizer state (collective under FSDP: every rank calls; rank 0 receives it)."""
    if kind != "fsdp":
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_states(kind: str, model, optimizer, model_sd: dict, optim_sd: dict) -> None:
    """Load whole state dicts into a plain or a sharded model (every rank reads the checkpoint itself)."""
    if kind != "fsdp":
        model.load_state_dict(model_sd)
        optimizer.load_state_dict(optim_sd)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_sd, options=opts)
    set_optimizer_state_dict(model, optimizer, optim_sd, options=opts)


def max_over_ranks(d: Dist, value: int) -> int:
    if not d.on:
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.long, device=d.comm_device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())
