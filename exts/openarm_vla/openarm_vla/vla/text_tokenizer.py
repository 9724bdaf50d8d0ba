"""Text tokenizers behind one small interface: a download-free byte tokenizer and a HF wrapper.

Why: the small presets must train and test with no network, while real OpenVLA checkpoints ship
their own Llama tokenizer. Both expose the same surface (`encode`, `vocab_size`, special ids,
`save_pretrained`), and `load_text_tokenizer(dir)` picks whichever a checkpoint directory holds.

ByteTokenizer id layout mirrors Llama-2's (whose byte-fallback tokens are also ids 3..258):
    0 <unk> | 1 <s> (BOS) | 2 </s> (EOS) | 3..258 the 256 bytes | 259..514 reserved action tokens
    515 <pad> (added after the vocabulary, like Llama's <PAD> = 32000)
`vocab_size` = 515 (unpadded, like Llama's 32000), so the last 256 ids are the action tokens and
ActionTokenizer(vocab_size) works unchanged. ``ByteTokenizer(vocab_size=32000)`` puts the same byte ids
inside a larger vocabulary (Llama's ids 3..258 are its byte-fallback tokens too): a stand-in for
random-init models whose real tokenizer needs files (prompt lengths are then bytes, not pieces).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BYTE_TOKENIZER_FILE = "byte_tokenizer.json"
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


class TextTokenizer:
    """Interface. `vocab_size` is the unpadded vocabulary whose last n_bins ids are action tokens."""

    vocab_size: int
    bos_token_id: int
    eos_token_id: int
    pad_token_id: int

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        raise NotImplementedError

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        raise NotImplementedError


class ByteTokenizer(TextTokenizer):
    kind = "byte"

    def __init__(self, n_action_tokens: int = 256, vocab_size: int | None = None):
        self.n_action_tokens = n_action_tokens
        self.unk_token_id, self.bos_token_id, self.eos_token_id = 0, 1, 2
        self.byte_offset = 3
        own = self.byte_offset + 256 + n_action_tokens  # 515
        if vocab_size is not None and vocab_size < own:
            raise ValueError(f"ByteTokenizer: vocab_size {vocab_size} < {own} (3 specials + 256 bytes + {n_action_tokens} actions)")
        self.vocab_size = vocab_size or own
        self.pad_token_id = self.vocab_size

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = [b + self.byte_offset for b in text.encode("utf-8")]
        return [self.bos_token_id] + ids if add_bos else ids

    def decode(self, ids) -> str:
        data = bytes(i - self.byte_offset for i in ids if self.byte_offset <= i < self.byte_offset + 256)
        return data.decode("utf-8", errors="replace")

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        spec = {"kind": self.kind, "n_action_tokens": self.n_action_tokens, "vocab_size": self.vocab_size,
                "bos_token_id": self.bos_token_id, "eos_token_id": self.eos_token_id, "pad_token_id": self.pad_token_id}
        with open(Path(directory) / BYTE_TOKENIZER_FILE, "w") as f:
            json.dump(spec, f, indent=2)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "ByteTokenizer":
        path = Path(directory) / BYTE_TOKENIZER_FILE
        with open(path) as f:
            spec = json.load(f)
        if spec.get("kind") != cls.kind:
            raise ValueError(f"{path}: expected kind 'byte', got {spec.get('kind')!r}")
        n = int(spec["n_action_tokens"])
        size = int(spec.get("vocab_size", 3 + 256 + n))
        return cls(n_action_tokens=n, vocab_size=size if size != 3 + 256 + n else None)


class HFTokenizer(TextTokenizer):
    """Wraps a local `transformers` tokenizer (e.g. the Llama-2 tokenizer in an OpenVLA checkpoint)."""

    kind = "hf"

    def __init__(self, tokenizer, pad_token_id: int | None = None):
        self.tok = tokenizer
        self.vocab_size = int(tokenizer.vocab_size)  # excludes added tokens such as <PAD>
        self.bos_token_id = tokenizer.bos_token_id
        self.eos_token_id = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else pad_token_id
        self.pad_token_id = pad if pad is not None else self.eos_token_id
        if self.bos_token_id is None:
            raise ValueError("HFTokenizer: the tokenizer defines no BOS token (OpenVLA prompts start with BOS)")

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = self.tok.encode(text, add_special_tokens=False)
        return [self.bos_token_id] + ids if add_bos else ids

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=True)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        self.tok.save_pretrained(str(directory))

    @classmethod
    def load(cls, directory: str | os.PathLike, pad_token_id: int | None = None) -> "HFTokenizer":
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(directory), local_files_only=True), pad_token_id)


def load_text_tokenizer(directory: str | os.PathLike, pad_token_id: int | None = None) -> TextTokenizer:
    """Byte tokenizer if `byte_tokenizer.json` is present, else the HF tokenizer files of `directory`."""
    d = Path(directory)
    if (d / BYTE_TOKENIZER_FILE).is_file():
        return ByteTokenizer.load(d)
    if any((d / f).is_file() for f in HF_TOKENIZER_FILES):
        return HFTokenizer.load(d, pad_token_id)
    raise FileNotFoundError(
        f"{d}: no tokenizer files (expected {BYTE_TOKENIZER_FILE} or one of {', '.join(HF_TOKENIZER_FILES)})"
    )


def make_text_tokenizer(cfg) -> TextTokenizer:
    """Tokenizer for a fresh (from-scratch) model of VLA config ``cfg``: bytes. A preset whose real tokenizer
    needs files (openvla-oft-7b's Llama, ``cfg.tokenizer == "hf"``) gets the byte ids inside its own vocabulary:
    a stand-in for timing and smoke runs, whose prompts are then bytes, not pieces (~2-3x as many tokens)."""
    return ByteTokenizer(vocab_size=None if cfg.tokenizer == "byte" else cfg.llm.vocab_size_unpadded)
