"""OpenVLA-OFT (Prismatic) model with OFT-style parallel decoding of an action chunk.

Why written here rather than loaded with trust_remote_code: the published modeling file pins
timm 0.9 / transformers 4.40 and a patched transformers fork; this module reproduces the same
architecture and parameter names on current timm + transformers so published checkpoints load
key-for-key (see checkpoint.py) and our small presets train from scratch.

Submodules (names as in the published checkpoints):
    vision_backbone.featurizer        timm ViT (DINOv2-reg4 in the 7B model), LayerScale as `scale_factor`
    vision_backbone.fused_featurizer  timm ViT (SigLIP), only when two towers are fused
    projector.fc1 / fc2 / fc3         fused: fc1 -> GELU -> fc2 -> GELU -> fc3; single tower: fc1 -> GELU -> fc2
    proprio_projector.fc1 / fc2       (use_proprio only) OFT's ProprioProjector: joint values -> one token
    language_model                    transformers.LlamaForCausalLM (random init from a LlamaConfig)

Vision features are the output of the second-to-last ViT block with prefix (cls/register) tokens
dropped; the fused towers' features are concatenated along channels ([B, 256, 1024 + 1152] at 7B).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import timm
import torch
import torch.nn as nn
from timm.layers import LayerScale as TimmLayerScale
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import LlamaForCausalLM

from .config import VisionConfig, VLAConfig

ATTENTION_BACKENDS: tuple[SDPBackend, ...] | None = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                                     SDPBackend.MATH)
"""The SDPA backends the model's attention may take, in torch's order among them: not cuDNN's, which builds an
execution plan for every batch size it has not seen (tenths of a second each, on Hopper), where a rollout's batch
shrinks as envs finish and an update's micro-batches change size every iteration. None: torch's own choice."""

_AUTOCAST = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def compute_dtype(dtype: str) -> torch.dtype:
    """The torch dtype an autocast setting ("bfloat16", "float16"; anything else: none) computes in."""
    return _AUTOCAST.get(dtype, torch.float32)


class LayerScale(nn.Module):
    """timm's LayerScale with its parameter named `scale_factor`, as in OpenVLA checkpoints
    (OpenVLA renames `gamma` because old transformers versions rewrote any key containing "gamma")."""

    def __init__(self, scale_factor: torch.Tensor):
        super().__init__()
        self.scale_factor = nn.Parameter(scale_factor.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_factor


def _rename_layer_scales(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, TimmLayerScale):
            setattr(module, name, LayerScale(child.gamma))
        else:
            _rename_layer_scales(child)


def create_featurizer(vision: VisionConfig, image_size: int) -> nn.Module:
    vit = timm.create_model(
        vision.timm_model_id, pretrained=False, num_classes=0, img_size=image_size, act_layer=vision.act_layer,
        **vision.timm_overrides,
    )
    if len(vit.blocks) < 2:
        raise ValueError(f"{vision.timm_model_id}: needs >= 2 blocks (features come from the second-to-last)")
    _rename_layer_scales(vit)
    return vit


def featurize(vit: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Second-to-last block output without prefix tokens and without the final norm: [B, N, C].
    Same values as OpenVLA's `get_intermediate_layers(n={len(blocks) - 2})`, but stops early so the
    last block is not computed."""
    return vit.forward_intermediates(
        x, indices=[len(vit.blocks) - 2], norm=False, stop_early=True, output_fmt="NLC", intermediates_only=True
    )[0]


class PrismaticVisionBackbone(nn.Module):
    def __init__(self, config: VLAConfig):
        super().__init__()
        self.use_fused_vision_backbone = config.use_fused_vision
        self.featurizer = create_featurizer(config.vision[0], config.image_size)
        self.embed_dim = self.featurizer.embed_dim
        if self.use_fused_vision_backbone:
            self.fused_featurizer = create_featurizer(config.vision[1], config.image_size)
            self.embed_dim += self.fused_featurizer.embed_dim
            n0, n1 = self.featurizer.patch_embed.num_patches, self.fused_featurizer.patch_embed.num_patches
            if n0 != n1:
                raise ValueError(f"fused vision towers disagree on patch count: {n0} vs {n1}")
        self.num_patches = self.featurizer.patch_embed.num_patches

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if not self.use_fused_vision_backbone:
            return featurize(self.featurizer, pixel_values)
        img, img_fused = torch.split(pixel_values, [3, 3], dim=1)
        return torch.cat([featurize(self.featurizer, img), featurize(self.fused_featurizer, img_fused)], dim=2)

    def unused_parameters(self):
        """Parameters the forward never reaches: the last block, final norm and pooling head."""
        for vit in [self.featurizer] + ([self.fused_featurizer] if self.use_fused_vision_backbone else []):
            for name, p in vit.named_parameters():
                if name.startswith(f"blocks.{len(vit.blocks) - 1}.") or not name.startswith(
                    ("blocks.", "patch_embed.", "pos_embed", "cls_token", "reg_token", "norm_pre.")
                ):
                    yield p


class PrismaticProjector(nn.Module):
    def __init__(self, use_fused_vision_backbone: bool, vision_dim: int, llm_dim: int):
        super().__init__()
        self.use_fused_vision_backbone = use_fused_vision_backbone
        if use_fused_vision_backbone:
            self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
            self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
            self.fc3 = nn.Linear(llm_dim, llm_dim)
            self.act_fn1, self.act_fn2 = nn.GELU(), nn.GELU()
        else:
            self.fc1 = nn.Linear(vision_dim, llm_dim)
            self.fc2 = nn.Linear(llm_dim, llm_dim)
            self.act_fn1 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(self.act_fn1(self.fc1(x)))
        if self.use_fused_vision_backbone:
            x = self.fc3(self.act_fn2(x))
        return x


class ProprioProjector(nn.Module):
    """OpenVLA-OFT's proprio projector: [B, proprio_dim] -> fc1 -> GELU -> fc2 -> [B, llm_dim]."""

    def __init__(self, proprio_dim: int, llm_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(proprio_dim, llm_dim)
        self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act_fn1 = nn.GELU()

    def forward(self, proprio: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act_fn1(self.fc1(proprio)))


@dataclass
class SequenceInputs:
    """What the Llama sees for one batch (see OpenVLAForActionPrediction.build_sequence)."""

    embeds: torch.Tensor  # [B, T, D]
    position_ids: torch.Tensor  # [B, T] logical positions
    valid: torch.Tensor  # [B, T] bool, False at prompt padding
    is_action: torch.Tensor  # [T] bool, True at the action slots and the stop token
    mask: torch.Tensor  # [B, 1, T, T] bool (True = may attend), or [B, T] for flash_attention_2
    readout: torch.Tensor  # [A] columns whose outputs predict the A action tokens


class OpenVLAForActionPrediction(nn.Module):
    """Vision-language-action model returning 256-way action logits for a whole chunk in one pass.

    Sequence (columns), for prompt ids t_0..t_{L-1} (t_0 = BOS for an unpadded row), P patches and
    A = chunk * action_dim action slots:

        [ t_0 | patch_1 .. patch_P (proprio) | t_1 .. t_{L-1} | slot_1 .. slot_A | stop ]

    i.e. OpenVLA's layout: patches inserted after the BOS column; with ``use_proprio`` OFT's proprio token
    follows the patches (it counts as one more patch below). Slot inputs are all-zero vectors
    (OpenVLA-OFT zeroes the action-token embeddings; RoPE still tells the slots apart); the stop token
    is the embedding of EOS, which OFT appends at inference because it is present in training.

    Padding: prompts may be left- or right-padded; rows are first left-aligned (a stable sort of the
    mask), so for a padded row column 0 and some prompt columns are padding. Positions come from the
    mask, not the columns: every row sees BOS at position 0, patches at 1..P, its n prompt tokens
    after them, then the slots and the stop token — exactly the unpadded sequence. Padding columns are
    never attended to (they attend to BOS only, so no softmax row is empty).

    Attention (explicit boolean [B, 1, T, T] mask for SDPA; query q may attend key k iff):
        prefix_causal:  valid[k] and (pos[k] <= pos[q] or is_action[q])
            -> causal over BOS + patches + prompt; slots and stop see the whole prefix and each other
               (bidirectional); no prefix token sees a slot.
        bidirectional:  valid[k]   (published OpenVLA-OFT / SimpleVLA-RL weights: their transformers
               fork disables the causal mask for the whole sequence)

    Readout (as OFT, shifted by one like a causal LM): action token a (0..A-1, chunk-major: token
    a = step a // action_dim, dim a % action_dim) is predicted by the output at position
    pos(first slot) - 1 + a, i.e. the last prompt token for a = 0 and slot a for a >= 1. Only the
    256 logits of the action ids [vocab_unpadded - 256, vocab_unpadded) are returned.
    """

    def __init__(self, config: VLAConfig, attn_implementation: str | None = None):
        super().__init__()
        self.config = config
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        self.attn_implementation = attn_implementation or config.resolved_attn_implementation(device_type)
        self.vision_backbone = PrismaticVisionBackbone(config)
        self.projector = PrismaticProjector(
            config.use_fused_vision, self.vision_backbone.embed_dim, config.llm.hidden_size
        )
        self.proprio_projector = ProprioProjector(config.proprio_dim, config.llm.hidden_size) if config.use_proprio else None
        self.language_model = LlamaForCausalLM(config.llm.to_llama_config(self.attn_implementation))
        # Frozen because no gradient can reach them; they stay in the state dict for checkpoint
        # compatibility, and DDP / optimizers skip them.
        for p in self.vision_backbone.unused_parameters():
            p.requires_grad_(False)
        self.compiled_layers = False  # compile_layers()

    @property
    def num_patches(self) -> int:
        """Visual input tokens between BOS and the prompt: the patches, plus the proprio token if used."""
        return self.vision_backbone.num_patches + int(self.config.use_proprio)

    @property
    def device(self) -> torch.device:
        return self.projector.fc1.weight.device

    def gradient_checkpointing_enable(self) -> None:
        self.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.vision_backbone.featurizer.set_grad_checkpointing(True)
        if self.config.use_fused_vision:
            self.vision_backbone.fused_featurizer.set_grad_checkpointing(True)

    def gradient_checkpointing_disable(self) -> None:
        self.language_model.gradient_checkpointing_disable()
        self.vision_backbone.featurizer.set_grad_checkpointing(False)
        if self.config.use_fused_vision:
            self.vision_backbone.fused_featurizer.set_grad_checkpointing(False)

    def compile_layers(self) -> None:
        """``torch.compile`` each Llama decoder layer and each ViT block in place (regional compilation): layers of
        one kind share one compiled graph per grad mode, the batch dimension is dynamic (rollouts forward fewer
        envs as they finish; mini-batches split into micro-batches of varying size), parameter names and the
        state dict are unchanged.
        Inductor fuses what runs between the matmuls (RMSNorm, RoPE, SiLU * up, LayerNorm, GELU, the LoRA branch's
        scale and add, the fp32 residual stream autocast leaves), which is most of what a forward and backward
        spend outside them. The first forward of each grad mode compiles (minutes for the 7B on a GPU, seconds for
        the tiny preset; GRPO does it before its first iteration: ``compile_model_passes``), and a batch of one row
        once more (dynamo specializes sizes 0/1).
        The ViT blocks' graphs skip Inductor's on-disk FX graph cache: torch 2.11 once failed to evaluate the
        guards of a cached ViT-block graph written by another process (``KeyError: 'self'``, two FSDP ranks in CI);
        without the cache each process compiles them afresh (seconds)."""
        for layer in self.language_model.model.layers:
            layer.compile(dynamic=True)
        backbone = self.vision_backbone
        for vit in [backbone.featurizer] + ([backbone.fused_featurizer] if self.config.use_fused_vision else []):
            for block in vit.blocks:
                block.compile(dynamic=True, options={"fx_graph_cache": False})
        self.compiled_layers = True

    def build_sequence(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        slot_embeds: torch.Tensor | None = None,
        proprio: torch.Tensor | None = None,
    ) -> SequenceInputs:
        cfg = self.config
        B, L = input_ids.shape
        P, A = self.num_patches, cfg.num_action_tokens
        n_extra = 1 if cfg.append_stop_token else 0
        dev = input_ids.device

        # left-align: stable sort puts padding first and keeps the token order
        m = attention_mask.to(torch.long)
        order = torch.argsort(m, dim=1, stable=True)
        ids, m = input_ids.gather(1, order), m.gather(1, order)
        n_text = m.sum(1)  # [B]

        embed = self.language_model.get_input_embeddings()
        text = embed(ids)  # [B, L, D]
        patches = self.projector(self.vision_backbone(pixel_values)).to(text.dtype)  # [B, P, D]
        if self.proprio_projector is not None:
            if proprio is None or proprio.shape != (B, cfg.proprio_dim):
                got = None if proprio is None else tuple(proprio.shape)
                raise ValueError(f"model {cfg.name} takes proprio [B={B}, {cfg.proprio_dim}]; got {got}")
            token = self.proprio_projector(proprio.to(self.proprio_projector.fc1.weight.dtype))
            patches = torch.cat([patches, token.to(text.dtype)[:, None]], dim=1)
        if slot_embeds is None:
            slot_embeds = text.new_zeros(B, A, text.shape[-1])
        parts = [text[:, :1], patches, text[:, 1:], slot_embeds.to(text.dtype)]
        if cfg.append_stop_token:
            stop = torch.full((B, 1), cfg.llm.eos_token_id, dtype=torch.long, device=dev)
            parts.append(embed(stop))
        embeds = torch.cat(parts, dim=1)

        rank = m.cumsum(1) - 1  # BOS -> 0, then 1, 2, ... (padding: -1 or repeats, masked anyway)
        text_pos = torch.where((m == 1) & (rank > 0), rank + P, torch.zeros_like(rank))
        patch_pos = torch.arange(1, P + 1, device=dev).expand(B, P)
        tail_pos = (n_text + P)[:, None] + torch.arange(A + n_extra, device=dev)[None]
        position_ids = torch.cat([text_pos[:, :1], patch_pos, text_pos[:, 1:], tail_pos], dim=1)

        ones = lambda n: torch.ones(B, n, dtype=torch.bool, device=dev)  # noqa: E731
        valid = torch.cat([m[:, :1].bool(), ones(P), m[:, 1:].bool(), ones(A + n_extra)], dim=1)
        T = valid.shape[1]
        is_action = torch.zeros(T, dtype=torch.bool, device=dev)
        is_action[1 + P + (L - 1):] = True

        if self.attn_implementation == "flash_attention_2":
            mask = valid  # 2-D padding mask + is_causal=False (bidirectional mode only)
        elif cfg.attention_mode == "bidirectional":
            mask = valid[:, None, None, :].expand(B, 1, T, T)
        else:
            causal = position_ids[:, None, :] <= position_ids[:, :, None]  # [B, q, k]
            mask = (valid[:, None, :] & (causal | is_action[None, :, None]))[:, None]

        first_slot = 1 + P + (L - 1)
        last_text = first_slot - 1 if L > 1 else 0
        readout = torch.cat([torch.tensor([last_text], device=dev), first_slot + torch.arange(A - 1, device=dev)])
        return SequenceInputs(embeds, position_ids, valid, is_action, mask, readout)

    def _run_llm(self, seq: SequenceInputs, logits_to_keep):
        mask, kwargs = seq.mask, {}
        if self.attn_implementation == "flash_attention_2":
            kwargs["is_causal"] = False
            mask = mask.long()
        elif self.attn_implementation == "eager":
            mask = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device).masked_fill_(
                ~mask, torch.finfo(torch.float32).min
            )
        return self.language_model(
            inputs_embeds=seq.embeds, attention_mask=mask, position_ids=seq.position_ids, use_cache=False,
            logits_to_keep=logits_to_keep, **kwargs,
        )

    def autocast(self, dtype: str | None = None):
        """Autocast context for `dtype` (default config.dtype); float32 disables it."""
        dtype = dtype or self.config.dtype
        return torch.autocast(self.device.type, dtype=compute_dtype(dtype), enabled=dtype in _AUTOCAST)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        slot_embeds: torch.Tensor | None = None,
        dtype: str | None = None,
        proprio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """-> float32 action logits [B, chunk, action_dim, n_bins] over the 256-way action slice.

        pixel_values [B, 3 * towers, S, S] (preprocess.py); input_ids / attention_mask [B, L] from
        prompt.py; slot_embeds [B, A, D] replaces the zero slot inputs (tests of the mask);
        dtype overrides config.dtype for autocast ("float32" = none); proprio [B, proprio_dim] for
        models with ``use_proprio``.
        """
        cfg = self.config
        if pixel_values.shape[1] != 3 * len(cfg.vision) or pixel_values.shape[-1] != cfg.image_size:
            raise ValueError(
                f"pixel_values must be [B, {3 * len(cfg.vision)}, {cfg.image_size}, {cfg.image_size}]; "
                f"got {tuple(pixel_values.shape)}"
            )
        backends = sdpa_kernel(list(ATTENTION_BACKENDS)) if ATTENTION_BACKENDS else contextlib.nullcontext()
        with self.autocast(dtype), backends:
            seq = self.build_sequence(pixel_values, input_ids, attention_mask, slot_embeds, proprio)
            logits = self._run_llm(seq, logits_to_keep=seq.readout).logits  # [B, A, V]
        begin = cfg.action_token_begin
        logits = logits[..., begin:begin + cfg.n_bins].float()
        return logits.reshape(logits.shape[0], cfg.chunk, cfg.action_dim, cfg.n_bins)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
