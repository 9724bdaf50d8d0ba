"""Checkpoints: our own format, and the published Hugging Face layout of OpenVLA / OpenVLA-OFT /
SimpleVLA-RL checkpoints.

Why two formats: ours stores the full VLAConfig (any preset, any size) so a run resumes exactly;
the published layout is what OpenVLA-family weights come in, and `save_published_layout` writes it
back so the round trip is tested without downloading anything.

Ours (directory):
    model.safetensors         state dict, parameter names as in the published checkpoints
    config.json               {"format": "openarm_vla", "vla_config": VLAConfig.to_dict(), "norm_stats": ...}
    dataset_statistics.json   norm_stats (q01/q99/mean/std per action dim)
    tokenizer files           byte_tokenizer.json, or the HF tokenizer files
Published (directory):
    config.json               HF OpenVLAConfig: vision_backbone_id, llm_backbone_id, timm_model_ids,
                              image_sizes, text_config, n_action_bins, norm_stats, pad_to_multiple_of, ...
    model.safetensors, or model.safetensors.index.json + shards
    dataset_statistics.json   (OpenVLA-OFT) norm_stats, merged over config.json's
    tokenizer files
Keys: vision_backbone.featurizer.*, vision_backbone.fused_featurizer.* (LayerScale `scale_factor`;
timm-style `gamma` is accepted too), projector.fc1/fc2/fc3.*, language_model.*.

Writes go to a temporary sibling directory that is renamed into place (:func:`openarm_vla.utils.io.atomic_path`),
so a crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from openarm_vla.action_space import STATS_FILENAME as STATS_FILE
from openarm_vla.errors import CheckpointError
from openarm_vla.utils.io import atomic_path, ensure_free_space
from openarm_vla.utils.manifest import verify_manifest, write_manifest

from .config import IMAGENET_MEAN, IMAGENET_STD, SIGLIP_MEAN, SIGLIP_STD, LLMConfig, VisionConfig, VLAConfig
from .model import OpenVLAForActionPrediction
from .text_tokenizer import TextTokenizer, load_text_tokenizer

MODEL_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
CONFIG_FILE = "config.json"
FORMAT = "openarm_vla"

# Prismatic's registry (configuration_prismatic.py), for published configs that only name the backbone.
VISION_BACKBONE_TO_TIMM_ID = {
    "dinov2-vit-l": ["vit_large_patch14_reg4_dinov2"],
    "siglip-vit-so400m": ["vit_so400m_patch14_siglip_224"],
    "dinosiglip-vit-so-224px": ["vit_large_patch14_reg4_dinov2", "vit_so400m_patch14_siglip_224"],
    "dinosiglip-vit-so-384px": ["vit_large_patch14_reg4_dinov2", "vit_so400m_patch14_siglip_384"],
}
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
LLAMA_EMPTY_TOKEN = 29871  # "▁": OpenVLA-OFT appends it after "Out:"




@dataclass
class LoadedCheckpoint:
    model: OpenVLAForActionPrediction
    tokenizer: TextTokenizer
    config: VLAConfig
    norm_stats: dict
    format: str  # "openarm_vla" or "published"


# ----------------------------------------------------------------------------- writing


def _cpu_state_dict(state_dict: dict) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}


def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def save_checkpoint(
    model: OpenVLAForActionPrediction,
    directory: str | os.PathLike,
    tokenizer: TextTokenizer,
    norm_stats: dict | None = None,
    state_dict: dict | None = None,
    manifest: bool = True,
    dtype: torch.dtype | None = None,
    max_shard_bytes: int | None = None,
) -> Path:
    """Our format. Pass `state_dict` when the model is sharded (e.g. a gathered FSDP full state dict).
    ``manifest``: write the files' sizes and hashes last (a trainer that adds files writes it itself).
    ``dtype`` (floating tensors cast, e.g. bf16 to move a policy) and ``max_shard_bytes`` (shards + index)."""
    sd = state_dict if state_dict is not None else model.state_dict()
    sd = _cpu_state_dict(sd)
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    ensure_free_space(Path(directory), sum(t.numel() * t.element_size() for t in sd.values()), "a checkpoint")
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        _save_weights(sd, tmp, max_shard_bytes)
        _write_json(tmp / CONFIG_FILE, {"format": FORMAT, "format_version": 1,
                                        "vla_config": model.config.to_dict(), "norm_stats": norm_stats or {}})
        _write_json(tmp / STATS_FILE, norm_stats or {})
        tokenizer.save_pretrained(tmp)
        if manifest:
            write_manifest(tmp)
    return Path(directory)


def _published_config(cfg: VLAConfig, norm_stats: dict, torch_dtype: str) -> dict:
    llm = cfg.llm
    ids = [v.timm_model_id for v in cfg.vision]
    known = {tuple(v): k for k, v in VISION_BACKBONE_TO_TIMM_ID.items()}
    custom = any(v.timm_overrides for v in cfg.vision)
    return {
        "architectures": ["OpenVLAForActionPrediction"],
        "model_type": "openvla",
        "vision_backbone_id": "custom" if custom else known.get(tuple(ids), "custom"),
        "llm_backbone_id": "llama2-7b-pure" if llm == LLMConfig() else "custom-llama",
        "arch_specifier": "no-align+fused-gelu-mlp" if cfg.use_fused_vision else "no-align+gelu-mlp",
        "use_fused_vision_backbone": cfg.use_fused_vision,
        "timm_model_ids": ids,
        "timm_override_act_layers": [v.act_layer for v in cfg.vision],
        "image_sizes": [cfg.image_size] * len(cfg.vision),
        "image_resize_strategy": "resize-naive",
        "llm_max_length": llm.max_position_embeddings,
        "pad_token_id": llm.pad_token_id,
        "pad_to_multiple_of": 64,
        "n_action_bins": cfg.n_bins,
        "norm_stats": norm_stats,
        "torch_dtype": torch_dtype,
        "text_config": {
            "model_type": "llama", "vocab_size": llm.vocab_size, "hidden_size": llm.hidden_size,
            "intermediate_size": llm.intermediate_size, "num_hidden_layers": llm.num_layers,
            "num_attention_heads": llm.num_heads, "num_key_value_heads": llm.num_kv_heads,
            "max_position_embeddings": llm.max_position_embeddings, "rms_norm_eps": llm.rms_norm_eps,
            "rope_theta": llm.rope_theta, "bos_token_id": llm.bos_token_id, "eos_token_id": llm.eos_token_id,
            "pad_token_id": llm.pad_token_id, "torch_dtype": torch_dtype,
        },
        # Not in published configs; written so that small presets and our conventions round-trip.
        "timm_overrides": [v.timm_overrides for v in cfg.vision],
        "action_dim": cfg.action_dim,
        "num_actions_chunk": cfg.chunk,
        "attention_mode": cfg.attention_mode,
        "resize_interpolation": cfg.resize_interpolation,
        "prompt_suffix_ids": list(cfg.prompt_suffix_ids),
        "use_proprio": cfg.use_proprio,
        "proprio_dim": cfg.proprio_dim,
    }


def save_published_layout(
    model: OpenVLAForActionPrediction,
    directory: str | os.PathLike,
    tokenizer: TextTokenizer | None = None,
    norm_stats: dict | None = None,
    max_shard_bytes: int | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `model` as an HF-format OpenVLA checkpoint (optionally sharded with an index file)."""
    sd = _cpu_state_dict(model.state_dict())
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    torch_dtype = str(next(iter(sd.values())).dtype).removeprefix("torch.")
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        _write_json(tmp / CONFIG_FILE, _published_config(model.config, norm_stats or {}, torch_dtype))
        if norm_stats:
            _write_json(tmp / STATS_FILE, norm_stats)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        _save_weights(sd, tmp, max_shard_bytes)
    return Path(directory)


def _save_weights(sd: dict, directory: Path, max_shard_bytes: int | None = None) -> None:
    """``model.safetensors``, or shards of at most ``max_shard_bytes`` (a tensor larger than that gets a shard
    of its own) and ``model.safetensors.index.json``, as Hugging Face writes them."""
    if max_shard_bytes is None:
        save_file(sd, str(directory / MODEL_FILE), metadata={"format": "pt"})
        return
    shards, cur, size = [], {}, 0
    for k, v in sd.items():
        nbytes = v.numel() * v.element_size()
        if cur and size + nbytes > max_shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k], size = v, size + nbytes
    shards.append(cur)
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(directory / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    _write_json(directory / INDEX_FILE, {"metadata": {"total_size": total}, "weight_map": weight_map})


# ----------------------------------------------------------------------------- reading


def _read_json(path: Path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid JSON ({e})") from None


def read_state_dict(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[dict, str]:
    """-> (state dict, description of the file(s) read). Handles a single file or an index + shards."""
    d = Path(directory)
    if (d / MODEL_FILE).is_file():
        files, where = [d / MODEL_FILE], str(d / MODEL_FILE)
    elif (d / INDEX_FILE).is_file():
        index = _read_json(d / INDEX_FILE)
        if "weight_map" not in index:
            raise CheckpointError(f"{d / INDEX_FILE}: missing key 'weight_map'")
        files, where = [d / f for f in sorted(set(index["weight_map"].values()))], str(d / INDEX_FILE)
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise CheckpointError(f"{where}: shard file(s) not found: {', '.join(missing[:3])}")
    else:
        raise CheckpointError(f"{d}: no {MODEL_FILE} or {INDEX_FILE}")
    sd = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt", device=str(device)) as fh:
                for k in fh.keys():
                    sd[k] = fh.get_tensor(k)
        except Exception as e:  # noqa: BLE001 - safetensors raises its own types for truncated or corrupt files
            raise CheckpointError(f"{f}: unreadable weights ({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    return sd, where


def _norm_for(timm_id: str) -> tuple[tuple, tuple]:
    if "siglip" in timm_id:
        return SIGLIP_MEAN, SIGLIP_STD
    if "clip" in timm_id:
        return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    return IMAGENET_MEAN, IMAGENET_STD


def config_from_published(hf: dict, tokenizer: TextTokenizer, where: str = CONFIG_FILE, **overrides) -> VLAConfig:
    """VLAConfig from an HF OpenVLA config.json. action_dim / chunk are not in published configs
    (OpenVLA-OFT hard-codes them per benchmark): pass them as overrides if they differ from 8 / 8."""
    ids = hf.get("timm_model_ids") or VISION_BACKBONE_TO_TIMM_ID.get(hf.get("vision_backbone_id", ""))
    if not ids:
        raise CheckpointError(f"{where}: cannot determine the vision towers (no 'timm_model_ids' and unknown "
                              f"'vision_backbone_id' {hf.get('vision_backbone_id')!r})")
    ids = [i.split(".")[0] for i in ids]  # drop pretrained tags such as ".lvd142m"
    acts = hf.get("timm_override_act_layers") or [None] * len(ids)
    tov = hf.get("timm_overrides") or [{}] * len(ids)
    sizes = hf.get("image_sizes") or [224]
    if len(set(sizes)) != 1:
        raise CheckpointError(f"{where}: image_sizes {sizes} differ between towers (unsupported)")
    vision = tuple(VisionConfig(i, dict(o), a, *_norm_for(i)) for i, o, a in zip(ids, tov, acts))

    tc = hf.get("text_config") or {}
    if tc.get("model_type", "llama") != "llama":
        raise CheckpointError(f"{where}: text_config.model_type {tc.get('model_type')!r} is not supported (llama only)")
    llm_id = hf.get("llm_backbone_id", "llama")
    if not llm_id.startswith(("llama", "vicuna", "custom-llama")):
        raise CheckpointError(f"{where}: llm_backbone_id {llm_id!r} is not supported (Llama-2 / Vicuna only)")
    d = LLMConfig()  # Llama-2-7B defaults fill what sparse published text_configs omit
    pad_id = hf.get("pad_token_id", tc.get("pad_token_id", tokenizer.pad_token_id))
    multiple = int(hf.get("pad_to_multiple_of", 64))
    # OpenVLA resizes the embeddings to len(tokenizer) (vocab + <PAD>) rounded up to pad_to_multiple_of
    default_vocab = -(-max(tokenizer.vocab_size, pad_id + 1) // multiple) * multiple
    rope_theta = tc.get("rope_theta", (tc.get("rope_parameters") or {}).get("rope_theta", d.rope_theta))
    llm = LLMConfig(
        hidden_size=tc.get("hidden_size", d.hidden_size), num_layers=tc.get("num_hidden_layers", d.num_layers),
        num_heads=tc.get("num_attention_heads", d.num_heads), num_kv_heads=tc.get("num_key_value_heads"),
        intermediate_size=tc.get("intermediate_size", d.intermediate_size),
        vocab_size=tc.get("vocab_size", default_vocab), vocab_size_unpadded=tokenizer.vocab_size,
        max_position_embeddings=tc.get("max_position_embeddings", d.max_position_embeddings),
        rms_norm_eps=tc.get("rms_norm_eps", d.rms_norm_eps), rope_theta=rope_theta,
        bos_token_id=tc.get("bos_token_id", tokenizer.bos_token_id), eos_token_id=tc.get("eos_token_id", tokenizer.eos_token_id),
        pad_token_id=pad_id,
    )
    if "prompt_suffix_ids" in hf:
        suffix = tuple(hf["prompt_suffix_ids"])
    else:
        suffix = (LLAMA_EMPTY_TOKEN,) if getattr(tokenizer, "kind", "") == "hf" and llm.vocab_size_unpadded == 32000 else ()
    fields = dict(
        name=f"published:{hf.get('vision_backbone_id', 'custom')}+{hf.get('llm_backbone_id', 'llama')}",
        vision=vision, llm=llm, image_size=int(sizes[0]), n_bins=int(hf.get("n_action_bins", 256)),
        resize_interpolation=hf.get("resize_interpolation", "bicubic"),
        action_dim=int(hf.get("action_dim", 8)), chunk=int(hf.get("num_actions_chunk", 8)),
        prompt_suffix_ids=suffix, attention_mode=hf.get("attention_mode", "bidirectional"),
        tokenizer=getattr(tokenizer, "kind", "hf"),
        use_proprio=bool(hf.get("use_proprio", False)), proprio_dim=int(hf.get("proprio_dim", 8)),
    )
    fields.update(overrides)
    return VLAConfig(**fields)


def load_norm_stats(directory: str | os.PathLike, config_json: dict | None = None) -> dict:
    """norm_stats from config.json, updated by dataset_statistics.json when present."""
    stats = dict((config_json or {}).get("norm_stats") or {})
    path = Path(directory) / STATS_FILE
    if path.is_file():
        stats.update(_read_json(path))
    return stats


def _check_keys(model: torch.nn.Module, sd: dict, where: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: state dict does not match the model: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if sd[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"{where}: {len(bad)} shape mismatches (checkpoint vs model), first: {bad[:3]}")


def build_model_from_state_dict(
    config: VLAConfig, sd: dict, where: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> OpenVLAForActionPrediction:
    """Build on the meta device (no random init of billions of weights) and adopt the loaded tensors."""
    sd = {(k[: -len(".gamma")] + ".scale_factor" if k.startswith("vision_backbone.") and k.endswith(".gamma") else k): v
          for k, v in sd.items()}
    with torch.device("meta"):
        model = OpenVLAForActionPrediction(config)
    _check_keys(model, sd, where)
    if dtype is not None:
        sd = {k: v.to(dtype) for k, v in sd.items()}
    model.load_state_dict({k: v.to(device) for k, v in sd.items()}, strict=True, assign=True)
    lm = model.language_model.model  # RoPE tables are non-persistent buffers: rebuild them for real
    lm.rotary_emb = type(lm.rotary_emb)(config=lm.config, device=torch.device(device))
    leftover = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise CheckpointError(f"{where}: tensors not initialised by the checkpoint: {leftover[:3]}")
    return model


def load_checkpoint(
    directory: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    **config_overrides,
) -> LoadedCheckpoint:
    """Load our format or the published HF layout (detected from config.json).

    config_overrides replace VLAConfig fields (e.g. action_dim=7, chunk=8 for a LIBERO OpenVLA-OFT
    checkpoint, or attention_mode).
    """
    d = Path(directory)
    if not (d / CONFIG_FILE).is_file():
        raise CheckpointError(f"{d}: no {CONFIG_FILE}")
    problem = verify_manifest(d)
    if problem:
        raise CheckpointError(f"{d}: {problem}")
    cfg_json = _read_json(d / CONFIG_FILE)
    if cfg_json.get("format") == FORMAT:
        if "vla_config" not in cfg_json:
            raise CheckpointError(f"{d / CONFIG_FILE}: missing key 'vla_config'")
        config = VLAConfig.from_dict(cfg_json["vla_config"])
        config = config.replace(**config_overrides) if config_overrides else config
        tokenizer = load_text_tokenizer(d, pad_token_id=config.llm.pad_token_id)
        fmt = FORMAT
    else:
        tokenizer = load_text_tokenizer(d, pad_token_id=cfg_json.get("pad_token_id"))
        config = config_from_published(cfg_json, tokenizer, str(d / CONFIG_FILE), **config_overrides)
        fmt = "published"
    if tokenizer.vocab_size != config.llm.vocab_size_unpadded:
        raise CheckpointError(f"{d}: tokenizer vocab_size {tokenizer.vocab_size} != model's unpadded vocab "
                              f"{config.llm.vocab_size_unpadded}")
    sd, where = read_state_dict(d, device=device)
    model = build_model_from_state_dict(config, sd, where, device=device, dtype=dtype)
    return LoadedCheckpoint(model, tokenizer, config, load_norm_stats(d, cfg_json), fmt)
