"""What a training checkpoint costs the training loop, before/after in one run: the write in the loop (as before)
against the host copy in the loop and the write in the background (:class:`CheckpointWriter`, as now).

    python benchmarks/perf/checkpoint_cost.py [--preset small] [--device cpu|cuda] [--saves 3]

A model of the preset with AdamW's moments (one optimizer step taken), saved ``--saves`` times each way into a
temporary folder. Prints the seconds the loop is held per save each way and how long the background write took.
The recipes checkpoint every GRPO iteration and every 250 SFT steps (~20 saves a pipeline run).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from openarm_vla.train.checkpoints import CheckpointWriter, training_checkpoint_state, write_training_checkpoint
from openarm_vla.vla import OpenVLAForActionPrediction, get_preset, make_text_tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--saves", type=int, default=3)
    args = p.parse_args()
    cfg = get_preset(args.preset)
    tok = make_text_tokenizer(cfg)
    model = OpenVLAForActionPrediction(cfg).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for q in model.parameters():
        q.grad = torch.zeros_like(q)
    opt.step()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    state = lambda: {"optimizer": opt.state_dict(), "rng": [torch.get_rng_state()]}  # noqa: E731
    n = sum(q.numel() for q in model.parameters())
    print(f"[checkpoint_cost] {args.preset}: {n / 1e6:.1f} M parameters on {args.device}, {args.saves} saves each way")
    with tempfile.TemporaryDirectory() as tmp:
        held = []
        for i in range(args.saves):
            sync()
            t0 = time.perf_counter()
            # as before: the live tensors written in the loop
            write_training_checkpoint(f"{tmp}/before", i + 1, model, tok, {}, model.state_dict(), state(), keep_last=1)
            held.append(time.perf_counter() - t0)
        print(f"[checkpoint_cost] before (written in the loop): loop held {sum(held) / len(held):.2f} s a save")
        writer, held, total = CheckpointWriter(), [], []
        for i in range(args.saves):
            sync()
            t0 = time.perf_counter()
            weights, st = training_checkpoint_state(model, state())
            writer.submit(write_training_checkpoint, f"{tmp}/after", i + 1, model, tok, {}, weights, st, 1)
            held.append(time.perf_counter() - t0)
            writer.wait()  # the next save would wait here; training runs meanwhile
            total.append(time.perf_counter() - t0)
        print(f"[checkpoint_cost] after (host copy in the loop, written in the background): loop held "
              f"{sum(held) / len(held):.2f} s a save; the background write done {sum(total) / len(total):.2f} s after "
              "it was submitted")


if __name__ == "__main__":
    main()
