"""OpenVLA-OFT style vision-language-action model, tokenizers and the batched policy runner.

    config          VisionConfig / LLMConfig / VLAConfig, presets openvla-oft-7b, small, tiny
    action_tokenizer  ActionTokenizer: actions <-> OpenVLA action token ids <-> 256-way slice index
    text_tokenizer  ByteTokenizer (no download) and HFTokenizer behind one interface
    prompt          OpenVLA prompt and batched, padded prompt ids
    preprocess      uint8 images -> six-channel pixel_values on the GPU
    model           OpenVLAForActionPrediction (parallel decoding of a whole action chunk)
    sampling        sample / log-prob / entropy over the action slice with temperature
    checkpoint      our checkpoint format and the published HF layout
    runner          VLARunner: per-env chunk queues for N vectorized envs (one forward per step over the envs that need a chunk)
"""

from .checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
    save_checkpoint,
    save_published_layout,
)
from .config import PRESETS, LLMConfig, VisionConfig, VLAConfig, get_preset
from .model import OpenVLAForActionPrediction, count_parameters
from .runner import VLARunner
from .preprocess import ImagePreprocessor
from .prompt import build_prompt, tokenize_prompts
from .sampling import entropy, logprobs_of, sample_actions
from .text_tokenizer import ByteTokenizer, HFTokenizer, TextTokenizer, load_text_tokenizer, make_text_tokenizer
from .action_tokenizer import ActionTokenizer

__all__ = [
    "ActionTokenizer",
    "ByteTokenizer",
    "CheckpointError",
    "HFTokenizer",
    "ImagePreprocessor",
    "LLMConfig",
    "LoadedCheckpoint",
    "OpenVLAForActionPrediction",
    "PRESETS",
    "TextTokenizer",
    "VLAConfig",
    "VLARunner",
    "VisionConfig",
    "build_prompt",
    "count_parameters",
    "entropy",
    "get_preset",
    "load_checkpoint",
    "load_text_tokenizer",
    "logprobs_of",
    "make_text_tokenizer",
    "sample_actions",
    "save_checkpoint",
    "save_published_layout",
    "tokenize_prompts",
]
