"""GPU memory: the peak a run reached, the bytes its training state holds whatever the batch, and an
out-of-memory error turned into one line that says what to lower (or that no smaller batch can help)."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from openarm_vla.errors import TrainError


def peak_memory_gb() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


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
