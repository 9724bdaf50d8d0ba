"""Write a policy checkpoint in another dtype and in shards: to move it between machines, or to ship it.

    python scripts/export_policy.py SRC_DIR DST_DIR [--dtype bfloat16] [--max_shard_mb 15]

SRC_DIR is any checkpoint ``scripts/evaluate.py --policy`` loads (a run's ``final/`` or ``checkpoints/iter_K/``).
DST_DIR gets our checkpoint format with the weights cast to ``--dtype`` and split into safetensors shards of at
most ``--max_shard_mb`` MiB (plus an index), and a manifest; ``--init DST_DIR`` and ``--policy DST_DIR`` load it
(in fp32). The default (bf16, 15 MiB shards) fits machines that pass files back 16 MiB at a time.

``--resumable`` (SRC a run's ``checkpoints/iter_K/``): DST is also a training checkpoint, its trainer state without the
optimizer's moments (RNGs, counters, LR schedule position kept). Put it at ``RUN/checkpoints/iter_K`` on the other
machine, with the run's ``metrics.jsonl`` beside, and ``--resume`` continues the run there, iteration numbers and draws
included; AdamW starts afresh there and its LR warms up again over ``agent.warmup_steps``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from openarm_vla.cli import run_main


@run_main("export_policy")
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="export_policy", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--max_shard_mb", type=float, default=15.0, help="largest shard in MiB (0: one file)")
    p.add_argument("--resumable", action="store_true",
                   help="also the trainer state without the optimizer: --resume continues the run from DST")
    args = p.parse_args(argv)
    if args.max_shard_mb < 0:
        p.error("--max_shard_mb must be >= 0")

    import torch

    from openarm_vla.vla.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(args.src)
    shard = int(args.max_shard_mb * 2**20) or None
    if args.resumable:
        from openarm_vla.train.checkpoints import export_resumable

        export_resumable(args.src, args.dst, getattr(torch, args.dtype), shard, policy=ck)
    else:
        save_checkpoint(ck.model, args.dst, ck.tokenizer, ck.norm_stats, dtype=getattr(torch, args.dtype), max_shard_bytes=shard)
    files = sorted(f for f in args.dst.iterdir() if f.suffix == ".safetensors")
    print(f"[export_policy] {args.src} -> {args.dst}: {ck.config.name}, {args.dtype}, {len(files)} weight file(s), "
          f"largest {max(f.stat().st_size for f in files) / 2**20:.1f} MiB" + (", resumable" if args.resumable else ""),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
