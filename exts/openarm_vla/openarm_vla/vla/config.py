"""Model configuration: one dataclass tree that fully describes an OpenVLA-OFT style model.

Why a plain dataclass tree (not a transformers PretrainedConfig): it round-trips through JSON with
`to_dict`/`from_dict`, can be overridden from YAML/CLI by the training scripts, and builds the
timm vision towers and the `LlamaConfig` without touching the Hugging Face hub.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
from dataclasses import dataclass, field

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)

# OpenVLA's prompt; `{instruction}` is lower-cased before formatting (see prompt.py).
OPENVLA_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
INSTRUCTION_PROMPT = "{instruction}"
"""The instruction alone: for models trained from scratch, which need no template to match pretraining."""
PROMPT_TEMPLATES = {"openvla": OPENVLA_PROMPT, "instruction": INSTRUCTION_PROMPT}
"""The templates by name, for benchmarks that compare them (``--prompt openvla``)."""

ATTENTION_MODES = ("prefix_causal", "bidirectional")
ATTN_IMPLEMENTATIONS = ("auto", "sdpa", "flash_attention_2", "eager")


@dataclass
class VisionConfig:
    """One timm ViT tower. `timm_overrides` are passed to `timm.create_model` and override the
    architecture registered under `timm_model_id` (depth, embed_dim, patch_size, ...), which is how
    the small presets keep the published tower type (DINOv2-reg4 / SigLIP-MAP) at a toy size."""

    timm_model_id: str
    timm_overrides: dict = field(default_factory=dict)
    act_layer: str | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass
class LLMConfig:
    """Llama backbone. Defaults are Llama-2-7B as used by OpenVLA (vocab padded 32000 -> 32064).

    `vocab_size` is the embedding-table size (padded to a multiple of 64 for tensor cores);
    `vocab_size_unpadded` is the tokenizer's vocabulary, whose last `n_bins` ids are the action tokens.
    """

    hidden_size: int = 4096
    num_layers: int = 32
    num_heads: int = 32
    num_kv_heads: int | None = None
    intermediate_size: int = 11008
    vocab_size: int = 32064
    vocab_size_unpadded: int = 32000
    max_position_embeddings: int = 2048
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 32000

    def __post_init__(self):
        self.num_kv_heads = self.num_kv_heads or self.num_heads  # None = multi-head (Llama-2-7B)

    def to_llama_config(self, attn_implementation: str):
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            max_position_embeddings=self.max_position_embeddings,
            rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta,
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            tie_word_embeddings=False,
            use_cache=False,
            attn_implementation=attn_implementation,
        )


@dataclass
class VLAConfig:
    """Whole model: vision tower(s) + projector + Llama + action/prompt conventions.

    attention_mode:
      "prefix_causal"  causal over [BOS, patches, prompt]; action slots (and the stop token) see the
                       whole prefix and each other; the prefix never sees the slots.
      "bidirectional"  every valid token sees every valid token. This is what the published
                       OpenVLA-OFT / SimpleVLA-RL weights were trained with (their transformers fork
                       drops the causal mask entirely), so checkpoints loaded from that layout use it.
    resize_interpolation: "bilinear" (default) or "bicubic" (what the published checkpoints' PIL/timm
      image transforms used); both antialiased.
    dtype: autocast dtype for the forward ("bfloat16" or "float32" = no autocast); parameters stay
      in the dtype they were created/loaded with.
    tokenizer: "byte" (ByteTokenizer, no download) or "hf" (tokenizer files shipped in a checkpoint).
    use_proprio: OFT's proprio input: the `proprio_dim` joint values (in action units, see
      openarm_vla.action_space.joint_state_to_action) projected by `proprio_projector` (fc1 -> GELU -> fc2,
      as OFT's ProprioProjector) to one extra input token right after the patches.
    action_frame: what the action tokens encode. "absolute": the action itself (OpenVLA). "delta": the arm
      dims as offsets from the joint state at the chunk's start (the gripper stays absolute), i.e. the
      motion over the chunk, which a discrete head learns far faster than a joint angle to 1/256 of its
      range; the policy adds the joint state back when it decodes a chunk, so the env still gets absolute
      targets. Both are normalized with the q01/q99 of what they encode.
    prompt_suffix_ids: ids appended after the prompt; OpenVLA-OFT appends Llama's empty token 29871
      after "Out:" to match its training inputs.
    """

    name: str
    vision: tuple[VisionConfig, ...]
    llm: LLMConfig
    image_size: int = 224
    resize_interpolation: str = "bilinear"
    action_dim: int = 8
    chunk: int = 8
    n_bins: int = 256
    prompt_template: str = OPENVLA_PROMPT
    prompt_suffix_ids: tuple[int, ...] = ()
    append_stop_token: bool = True
    attention_mode: str = "prefix_causal"
    attn_implementation: str = "auto"
    dtype: str = "bfloat16"
    tokenizer: str = "byte"
    use_proprio: bool = False
    proprio_dim: int = 8
    action_frame: str = "absolute"

    def __post_init__(self):
        self.vision = tuple(v if isinstance(v, VisionConfig) else VisionConfig(**v) for v in self.vision)
        if isinstance(self.llm, dict):
            self.llm = LLMConfig(**self.llm)
        self.prompt_suffix_ids = tuple(self.prompt_suffix_ids)
        for v in self.vision:
            v.mean, v.std = tuple(v.mean), tuple(v.std)
        if len(self.vision) not in (1, 2):
            raise ValueError(f"VLAConfig.vision: expected 1 or 2 towers, got {len(self.vision)}")
        if self.attention_mode not in ATTENTION_MODES:
            raise ValueError(f"VLAConfig.attention_mode: expected one of {ATTENTION_MODES}, got {self.attention_mode!r}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(
                f"VLAConfig.attn_implementation: expected one of {ATTN_IMPLEMENTATIONS}, got {self.attn_implementation!r}"
            )
        if self.resize_interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"VLAConfig.resize_interpolation: expected bilinear|bicubic, got {self.resize_interpolation!r}")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"VLAConfig.dtype: expected bfloat16|float16|float32, got {self.dtype!r}")
        if self.action_frame not in ("absolute", "delta"):
            raise ValueError(f"VLAConfig.action_frame: expected absolute|delta, got {self.action_frame!r}")
        if self.llm.vocab_size < self.llm.vocab_size_unpadded:
            raise ValueError("VLAConfig.llm: vocab_size must be >= vocab_size_unpadded")

    @property
    def use_fused_vision(self) -> bool:
        return len(self.vision) == 2

    @property
    def num_action_tokens(self) -> int:
        return self.action_dim * self.chunk

    @property
    def action_token_begin(self) -> int:
        """First id of the 256-way action slice (31744 for Llama-2)."""
        return self.llm.vocab_size_unpadded - self.n_bins

    def resolved_attn_implementation(self, device_type: str = "cuda") -> str:
        """"auto" picks flash_attention_2 only where it can express our mask (bidirectional mode,
        CUDA, flash_attn importable); the prefix-causal mask needs SDPA's explicit 4-D mask."""
        impl = self.attn_implementation
        if impl == "auto":
            has_fa = importlib.util.find_spec("flash_attn") is not None
            impl = "flash_attention_2" if (has_fa and device_type == "cuda" and self.attention_mode == "bidirectional") else "sdpa"
        if impl == "flash_attention_2" and self.attention_mode != "bidirectional":
            raise ValueError(
                "attn_implementation=flash_attention_2 cannot express attention_mode=prefix_causal "
                "(needs an explicit 4-D mask); use sdpa or attention_mode=bidirectional"
            )
        return impl

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "VLAConfig":
        d = copy.deepcopy(d)
        d.pop("use_fused_vision", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"VLAConfig.from_dict: unknown keys {unknown}")
        return cls(**d)

    def replace(self, **changes) -> "VLAConfig":
        return dataclasses.replace(copy.deepcopy(self), **changes)


def _dino(timm_id="vit_large_patch14_reg4_dinov2", **overrides) -> VisionConfig:
    return VisionConfig(timm_id, dict(overrides), None, IMAGENET_MEAN, IMAGENET_STD)


def _siglip(timm_id="vit_so400m_patch14_siglip_224", **overrides) -> VisionConfig:
    return VisionConfig(timm_id, dict(overrides), None, SIGLIP_MEAN, SIGLIP_STD)


# Byte tokenizer layout (see text_tokenizer.py): 0 unk, 1 BOS, 2 EOS, 3..258 bytes, 259..514 actions,
# 515 PAD (added after the vocabulary, like Llama's <PAD> 32000); embedding table padded to 576.
BYTE_VOCAB_UNPADDED = 515
BYTE_VOCAB_PADDED = 576


def _byte_llm(**kw) -> LLMConfig:
    return LLMConfig(
        vocab_size=BYTE_VOCAB_PADDED, vocab_size_unpadded=BYTE_VOCAB_UNPADDED, pad_token_id=BYTE_VOCAB_UNPADDED, **kw
    )


def _openvla_oft_7b() -> VLAConfig:
    return VLAConfig(
        name="openvla-oft-7b",
        vision=(_dino(), _siglip()),  # 224 px, patch 14 -> 16x16 = 256 patches, 1024 + 1152 = 2176 dims
        llm=LLMConfig(),
        image_size=224,
        resize_interpolation="bicubic",
        prompt_suffix_ids=(29871,),
        attention_mode="bidirectional",  # what the published weights were trained with
        tokenizer="hf",
    )


def _small() -> VLAConfig:
    # 128 px with ViT/16 patches -> 8x8 = 64 patches per tower (~50M parameters). 16x16 patches of 8 px
    # would mirror the 7B token count but cost 2.2x the FLOPs per sample in rollout, SFT and GRPO alike.
    # Trained from scratch on joint-space demos: delta-frame action tokens (the motion over the chunk, not joint
    # angles to 1/256 of their range). No proprio token: with it the policy leaned on the motion the joint state
    # already shows rather than on where the camera sees the box (docs/results.md, "proprio"). The prompt is the
    # instruction alone: OpenVLA's template words are the same bytes in every row, 47 of a row's 192 tokens, which a
    # model trained from scratch learns nothing from and every forward and backward pays for.
    vit = dict(patch_size=16, embed_dim=384, depth=6, num_heads=6)
    return VLAConfig(
        name="small",
        vision=(_dino("vit_small_patch14_reg4_dinov2", **vit), _siglip(**vit, mlp_ratio=4.0)),
        llm=_byte_llm(
            hidden_size=512, num_layers=8, num_heads=8, intermediate_size=1408, max_position_embeddings=1024
        ),
        image_size=128,
        prompt_template=INSTRUCTION_PROMPT,
        use_proprio=False,
        action_frame="delta",
    )


def _tiny() -> VLAConfig:
    # CPU tests: 32 px with patch 4 -> 8x8 = 64 patches; ~1.2M parameters.
    vit = dict(patch_size=4, embed_dim=64, depth=2, num_heads=2)
    return VLAConfig(
        name="tiny",
        vision=(_dino("vit_small_patch14_reg4_dinov2", **vit), _siglip(**vit, mlp_ratio=4.0)),
        llm=_byte_llm(hidden_size=128, num_layers=4, num_heads=4, intermediate_size=256, max_position_embeddings=512),
        image_size=32,
        dtype="float32",
    )


def _mini() -> VLAConfig:
    # The policy the README's CPU job shows: small's design (delta actions, no proprio token) at 64 px with 8-px
    # patches (8x8 = 64 patches per tower), ~6 M parameters: trained on a GPU in minutes, run on a CPU in real time.
    vit = dict(patch_size=8, embed_dim=128, depth=4, num_heads=2)
    return VLAConfig(
        name="mini",
        vision=(_dino("vit_small_patch14_reg4_dinov2", **vit), _siglip(**vit, mlp_ratio=4.0)),
        llm=_byte_llm(hidden_size=256, num_layers=4, num_heads=4, intermediate_size=704, max_position_embeddings=512),
        image_size=64,
        use_proprio=False,
        action_frame="delta",
    )


PRESETS = {"openvla-oft-7b": _openvla_oft_7b, "small": _small, "mini": _mini, "tiny": _tiny}


def get_preset(name: str, **overrides) -> VLAConfig:
    """A fresh preset config; keyword overrides replace top-level fields."""
    if name not in PRESETS:
        raise ValueError(f"unknown VLA preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]().replace(**overrides) if overrides else PRESETS[name]()
