"""Prompt batching at rollout sizes, before/after in one run: ``tokenize_prompts`` of a git revision vs the working tree.

    python benchmarks/perf/prompt_batch.py [--rev f6415d6] [--num_envs 4096] [--distinct 1 30] [--repeat 20]

The rollout asks for the prompt ids of every env that starts a chunk (up to all envs, every ``chunk`` steps). Both
versions run in this process on the same inputs (a byte-level tokenizer: the per-row cost is what is measured) and
must give the same tensors; prints ms per call for each.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import types
from pathlib import Path

import torch

from openarm_vla.vla import prompt as current
from openarm_vla.vla.text_tokenizer import ByteTokenizer

ROOT = Path(__file__).resolve().parents[2]


def load_revision(rev: str) -> types.ModuleType:
    src = subprocess.run(["git", "show", f"{rev}:exts/openarm_vla/openarm_vla/vla/prompt.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    mod = types.ModuleType("prompt_before")
    mod.__dict__["__name__"] = "openarm_vla.vla.prompt_before"
    exec(compile(src.replace("from .config import", "from openarm_vla.vla.config import")
                 .replace("from .text_tokenizer import", "from openarm_vla.vla.text_tokenizer import"),
                 f"{rev}:prompt.py", "exec"), mod.__dict__)
    return mod


def ms_per_call(fn, repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", default="f6415d6", help="the revision before the change")
    p.add_argument("--num_envs", type=int, default=4096)
    p.add_argument("--distinct", type=int, nargs="+", default=[1, 30])
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    before, tok = load_revision(args.rev), ByteTokenizer()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.num_envs} envs")
    for k in args.distinct:
        texts = [f"pick up the {c} box" for c in range(k)]
        batch = [texts[i % k] for i in range(args.num_envs)]
        cache_a, cache_b = {}, {}
        a = before.tokenize_prompts(tok, batch, cache=cache_a)
        b = current.tokenize_prompts(tok, batch, cache=cache_b)
        assert all(torch.equal(x, y) for x, y in zip(a, b)), "the two versions disagree"
        t_a = ms_per_call(lambda: before.tokenize_prompts(tok, batch, cache=cache_a), args.repeat)
        t_b = ms_per_call(lambda: current.tokenize_prompts(tok, batch, cache=cache_b), args.repeat)
        print(f"{k:>3} distinct instructions: before {t_a:7.2f} ms/call, after {t_b:7.2f} ms/call ({t_a / t_b:.1f}x)")


if __name__ == "__main__":
    main()
