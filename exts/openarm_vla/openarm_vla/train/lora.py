"""LoRA adapters (peft) on the VLA's language model, for the 7B preset (``agent.lora.enabled=true``).

The adapters are injected in place (no wrapper module), so the model keeps its parameter names and its
forward. Trainable: the adapters, the projector and the proprio projector; frozen: the Llama weights and
the vision towers. What is saved:

- the policy export (checkpoints and ``DIR/final``) holds merged weights, W + (alpha / r) B A, under the
  plain names: ``evaluate.py`` and GRPO's ``--init`` load it like any checkpoint;
- ``trainer_state.pt`` holds the trainable tensors themselves, so ``--resume`` rebuilds the base from
  ``agent.init`` and continues exactly.

On CUDA the frozen linear weights are held in bf16 (``agent.lora.frozen_bf16``): bf16 autocast multiplies with
a bf16 copy of them anyway, so the forward is the same and the frozen base takes half the memory (7B: 28 -> 14
GB). The exports stay fp32.
"""

from __future__ import annotations

import torch


def apply_lora(model, rank: int, alpha: int, dropout: float, target_modules) -> int:
    """Inject adapters into ``model.language_model`` and freeze what LoRA leaves alone; returns trainable params."""
    from peft import LoraConfig, inject_adapter_in_model

    for p in model.parameters():
        p.requires_grad_(False)
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                                       target_modules=list(target_modules)), model.language_model)
    for module in (model.projector, model.proprio_projector):
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def enable_lora(model, cfg, autocast_dtype: str | None = None) -> None:
    """:func:`apply_lora` with an agent's ``lora`` config, then the frozen weights in ``autocast_dtype`` when it
    is bfloat16 and ``cfg.frozen_bf16`` (the caller passes None without autocast); a missing peft is one line."""
    from openarm_vla.errors import TrainError

    try:
        n = apply_lora(model, cfg.rank, cfg.alpha, cfg.dropout, cfg.target_modules)
    except ImportError:
        raise TrainError("agent.lora.enabled needs peft: pip install 'openarm_vla[lora]'") from None
    held = ""
    if cfg.frozen_bf16 and autocast_dtype == "bfloat16":
        held = f"; {hold_frozen_weights_in(model, torch.bfloat16) * 2 / 1e9:.1f} GB of frozen weights held in bf16"
    print(f"[lora] rank {cfg.rank} adapters on {', '.join(cfg.target_modules)}: {n:,} trainable parameters{held}", flush=True)


def hold_frozen_weights_in(model, dtype: torch.dtype) -> int:
    """Store the frozen weights and biases of linear and conv layers in ``dtype`` (autocast's compute dtype);
    returns how many elements. Norms, embeddings, scales and everything trainable keep their dtype, so the
    residual stream and the optimizer's tensors are unchanged."""
    n = 0
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            for p in module.parameters(recurse=False):
                if not p.requires_grad and p.is_floating_point() and p.dtype != dtype:
                    p.data = p.data.to(dtype)
                    n += p.numel()
    return n


def has_lora(model) -> bool:
    return any("lora_A" in n for n, _ in model.named_parameters())


def merged_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's state dict with every adapter folded into its base weight, under the names without LoRA, in
    fp32: summed there (a small delta would round away in bf16), frozen bf16 weights widened back."""
    from peft.tuners.lora import LoraLayer

    merged = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            base = module.get_base_layer()
            merged[f"{name}.weight"] = base.weight.detach().float() + sum(
                module.get_delta_weight(a).float() for a in module.active_adapters)
            if base.bias is not None:
                merged[f"{name}.bias"] = base.bias.detach()
    out = {}
    for k, v in model.state_dict().items():
        if "lora_" in k:
            continue
        plain = k.replace(".base_layer.", ".")
        v = merged.get(plain, v)
        out[plain] = v.float() if v.dtype in (torch.bfloat16, torch.float16) else v
    return out


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
