"""Where a 7B GRPO step's GPU time goes, model only (no env, no Isaac Lab): the rollout forward and the update's
forward + backward of a micro-batch, for the weight layouts a LoRA run could hold.

    python benchmarks/scale/model_phases.py --preset openvla-oft-7b --batch 512 --micro 16 --json OUT.json

Layouts: ``fp32+lora`` (fp32 weights, LoRA adapters, bf16 autocast: what GRPO held before the next one);
``bf16base+lora`` holds the frozen linear weights in bf16 (``agent.lora.frozen_bf16``, the default on CUDA);
``fp32`` the same without adapters (rollout only); ``bf16`` the benchmark's plain bf16 model without adapters
(scripts/benchmark.py --policy; rollout only); ``--compile 0 1`` times each also with its decoder layers
compiled (``agent.compile``; ``first_s`` is the warm-up call, compilation included). Each timing is
GPU-synchronized, after one warm-up; achieved TFLOP/s from :func:`openarm_vla.perf.forward_flops` (an update
micro-batch counts 2 forwards' FLOPs: under LoRA the frozen weights get no weight gradient; a full fine-tune's 3).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from openarm_vla.perf import forward_flops
from openarm_vla.utils.timing import device_sync
from openarm_vla.train.lora import apply_lora, hold_frozen_weights_in
from openarm_vla.vla import OpenVLAForActionPrediction, VLARunner, get_preset, make_text_tokenizer
from openarm_vla.vla.sampling import logprobs_of


def timed(fn, reps: int) -> tuple[float, float, float]:
    """(mean seconds of ``reps`` calls after one warm-up, peak GB, the warm-up's seconds: compilation with --compile)."""
    cuda = torch.cuda.is_available()
    sync = device_sync("cuda" if cuda else "cpu")
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) / reps, torch.cuda.max_memory_allocated() / 1e9 if cuda else 0.0, first


def build(preset: str, layout: str, device: str, compile: bool = False):
    cfg = get_preset(preset)
    with torch.device(device):
        model = OpenVLAForActionPrediction(cfg)
    if layout in ("bf16", "fp32"):
        model = model.to(torch.bfloat16) if layout == "bf16" else model
    else:
        apply_lora(model, 32, 16, 0.0, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        if layout == "bf16base+lora":  # what GRPO holds on CUDA (agent.lora.frozen_bf16)
            hold_frozen_weights_in(model, torch.bfloat16)
    if compile:  # agent.compile
        model.compile_layers()
    return model, cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="openvla-oft-7b")
    p.add_argument("--batch", type=int, default=512, help="rollout forward batch (envs drawing a chunk at once)")
    p.add_argument("--micro", type=int, nargs="+", default=[16], help="update micro-batch sizes")
    p.add_argument("--gc_micro", type=int, nargs="*", default=[32], help="micro-batch sizes timed with gradient checkpointing")
    p.add_argument("--layouts", nargs="+", default=["fp32+lora", "bf16base+lora", "fp32", "bf16"])
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--compile", type=int, nargs="+", default=[0], choices=[0, 1],
                   help="1: each layout also with its decoder layers compiled (agent.compile); 0 1: both")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU: a smoke run of the script (--preset tiny)
    rows = []
    for layout, compiled in [(lay, c) for lay in args.layouts for c in args.compile]:
        torch.manual_seed(0)
        model, cfg = build(args.preset, layout, dev, bool(compiled))
        layout += "+compile" if compiled else ""
        tok = make_text_tokenizer(cfg)
        vla = VLARunner(model, tok, args.batch, dtype="bfloat16")
        ids, mask = vla.prompt_ids(["pick up the box"] * args.batch)
        flops = forward_flops(model, ids.shape[1])["total"]
        rgb = torch.randint(0, 255, (args.batch, 224, 224, 3), dtype=torch.uint8, device=dev)
        data = {"rgb": rgb, "input_ids": ids, "attention_mask": mask}
        if cfg.use_proprio:
            data["proprio"] = torch.zeros(args.batch, cfg.proprio_dim, device=dev)
        tokens = torch.randint(0, cfg.n_bins, (args.batch, cfg.chunk, cfg.action_dim), device=dev)

        def rollout():
            with torch.no_grad():
                vla.predict_chunk(**vla.model_inputs(data), temperature=1.6)

        model.eval()
        s, mem, first = timed(rollout, args.reps)
        rows.append({"layout": layout, "phase": "rollout_forward", "batch": args.batch, "s": round(s, 3),
                     "samples_per_s": round(args.batch / s, 1), "tflops": round(flops * args.batch / s / 1e12, 1),
                     "peak_gb": round(mem, 1), "first_s": round(first, 1)})
        print(json.dumps(rows[-1]), flush=True)
        if "lora" not in layout:  # rollout only
            model = vla = None  # free the GPU before the next layout
            torch.cuda.empty_cache()
            continue
        model.train()
        for micro, gc in [(m, False) for m in args.micro] + [(m, True) for m in args.gc_micro]:
            (model.gradient_checkpointing_enable if gc else model.gradient_checkpointing_disable)()
            idx = torch.arange(micro, device=dev)

            def update():
                batch = {k: v[idx] for k, v in data.items()}
                logits = model(**vla.model_inputs(batch), dtype="bfloat16")
                logprobs_of(logits, tokens[idx], 1.6).mean().backward()

            try:
                s, mem, first = timed(update, args.reps + 2)
            except torch.OutOfMemoryError:
                rows.append({"layout": layout, "phase": "update_micro", "micro": micro, "gc": gc, "oom": True})
                print(json.dumps(rows[-1]), flush=True)
                model.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                continue
            model.zero_grad(set_to_none=True)
            rows.append({"layout": layout, "phase": "update_micro", "micro": micro, "gc": gc, "s": round(s, 3),
                         "samples_per_s": round(micro / s, 1), "tflops_2x": round(2 * flops * micro / s / 1e12, 1),
                         "peak_gb": round(mem, 1), "first_s": round(first, 1)})
            print(json.dumps(rows[-1]), flush=True)
        model = vla = None  # free the GPU before the next layout
        torch.cuda.empty_cache()
        if args.json:
            json.dump({"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "preset": args.preset, "rows": rows},
                      open(args.json, "w"), indent=1)
    if args.json:
        json.dump({"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "preset": args.preset, "rows": rows}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
