"""The policy's rollout forward and update step at the recipe's sizes, under each numeric path, in one process.

    python benchmarks/perf/forward_cost.py [--preset small] [--batch 4096] [--micro 512 1024] [--device cuda] [--json F]

GRPO's rollout spends most of its time in ``VLARunner.predict_chunk`` (one forward per chunk of all envs that need
one) and its update in forward+backward of micro-batches. This times both on placeholder inputs of the recipe's shape
(random frames, the task's prompt) for each path: the default (fp32 weights under bf16 autocast), that plus
``compile_layers`` (agent.compile: the decoder layers), bf16 weights, and the vision towers / LLM
alone; prints ms per call, rows/s and the achieved TFLOP/s (FLOPs counted by torch's FlopCounterMode), so the gap to
the hardware is a number. On CUDA, ``--top N`` also lists each path's N costliest kernels of one update step
(torch.profiler).
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from openarm_vla.utils.timing import device_sync
from openarm_vla.vla import OpenVLAForActionPrediction, VLARunner, get_preset, make_text_tokenizer
from openarm_vla.vla.config import PROMPT_TEMPLATES

INSTRUCTION = "pick up the box"


def timed(fn, sync, repeat: int) -> float:
    """Seconds per call of ``fn`` after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeat


def flops_of(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def top_kernels(fn, sync, n: int) -> list[dict]:
    """The ``n`` CUDA kernels with the most GPU time in one call of ``fn`` (printed and returned)."""
    from torch.profiler import ProfilerActivity, profile

    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        sync()
    events = [e for e in prof.key_averages() if getattr(e, "device_time_total", 0) > 0]
    events.sort(key=lambda e: -e.device_time_total)
    total = sum(e.device_time_total for e in events) or 1.0
    out = [{"kernel": e.key[:120], "calls": e.count, "gpu_ms": round(e.device_time_total / 1e3, 2),
            "share": round(e.device_time_total / total, 3)} for e in events[:n]]
    for k in out:
        print(f"[forward_cost]     {k['gpu_ms']:8.2f} ms {100 * k['share']:5.1f} % x{k['calls']:<4} {k['kernel']}", flush=True)
    return out


def shape_cost(model, tok, args, dev, sync) -> list[dict]:
    """ms per call of ``model`` compiled (a copy) when every call has a row count it has not seen (as in a rollout, where the
    envs still running shrink, and in an update's near-equal micro-batches) against the same count every call, under
    torch's own SDPA order (cuDNN first on Hopper: it builds an execution plan for each new shape) and under the
    model's (``vla.model.ATTENTION_BACKENDS``, no cuDNN)."""
    from openarm_vla.vla import model as vla_model

    out, ours, eager = [], vla_model.ATTENTION_BACKENDS, model
    for cudnn in (True, False):
        vla_model.ATTENTION_BACKENDS = None if cudnn else ours  # None: torch's own order, cuDNN first on Hopper
        torch._dynamo.reset()  # the backend is chosen when a graph is traced: trace afresh under this setting
        model = copy.deepcopy(eager)
        model.compile_layers()
        runner = VLARunner(model, tok, num_envs=args.batch, dtype="bfloat16")
        x = inputs(runner, args.batch, dev)
        shift = 0 if cudnn else 3  # row counts unseen by the other setting too
        for kind, full, step_rows in (("rollout forward", args.batch, 7), ("update fwd+bwd", args.micro[0], 1)):
            for label, sizes in (("same rows", [full] * args.shapes),
                                 ("new rows each call", [max(2, full - step_rows * (i + 1) - shift) for i in range(args.shapes)])):
                def call(n, kind=kind):
                    xs = {k: v[:n] for k, v in x.items()}
                    if kind == "rollout forward":
                        model.eval()
                        runner.predict_chunk(**xs, temperature=1.0)
                    else:
                        model.train()
                        model(**xs, dtype="bfloat16").float().logsumexp(-1).mean().backward()
                        model.zero_grad(set_to_none=True)

                call(full)  # the full size is warm
                sync()
                t0 = time.perf_counter()
                for n in sizes:
                    call(n)
                sync()
                ms = (time.perf_counter() - t0) / len(sizes) * 1e3
                r = {"cudnn_sdp": cudnn, "call": kind, "rows": label, "ms": round(ms, 2)}
                out.append(r)
                print(f"[forward_cost] {kind:<16} {label:<19} {'torch SDPA order' if cudnn else 'no cuDNN (ours)'} {ms:9.2f} ms a call",
                      flush=True)
    vla_model.ATTENTION_BACKENDS = ours
    return out


def inputs(runner: VLARunner, n: int, device) -> dict:
    size = runner.config.image_size
    g = torch.Generator(device=device).manual_seed(0)
    rgb = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, device=device, generator=g)
    ids, mask = runner.prompt_ids([INSTRUCTION] * n)
    batch = {"rgb": rgb, "input_ids": ids, "attention_mask": mask,
             "proprio": torch.zeros(n, runner.config.proprio_dim, device=device)}
    return runner.model_inputs(batch)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--batch", type=int, default=4096, help="rows of one rollout forward (envs drawing a chunk)")
    p.add_argument("--micro", type=int, nargs="+", default=[512, 1024],
                   help="rows of one update micro-batch (forward + backward); each size is timed")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", default=None)
    p.add_argument("--only_compiled", action="store_true", help="time only the compiled path")
    p.add_argument("--shapes", type=int, default=6, help="calls of the compiled model at unseen row counts (0: skip)")
    p.add_argument("--top", type=int, default=12, help="kernels listed per update step on CUDA (0: none)")
    p.add_argument("--prompt", choices=sorted(PROMPT_TEMPLATES), default=None,
                   help="the prompt template instead of the preset's: openvla (OpenVLA's words around the instruction) "
                        "or instruction (the instruction alone); the token count per row follows")
    args = p.parse_args()
    dev = torch.device(args.device)
    sync = device_sync(dev)
    cfg = get_preset(args.preset, **({"prompt_template": PROMPT_TEMPLATES[args.prompt]} if args.prompt else {}))
    tok = make_text_tokenizer(cfg)
    with torch.device(dev):
        base = OpenVLAForActionPrediction(cfg)
    base = base.to(dev).eval()
    result = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "preset": cfg.name,
              "image_size": cfg.image_size, "prompt_template": cfg.prompt_template, "batch": args.batch, "micro": args.micro, "torch": torch.__version__,
              "attn_implementation": base.attn_implementation, "rows": []}

    def row(name: str, seconds: float, flops: float | None, rows: int) -> None:
        """One timed path; ``flops`` None where they were not counted (JSON null, not NaN)."""
        r = {"path": name, "ms": round(seconds * 1e3, 2), "rows_per_s": round(rows / seconds, 1),
             "tflops": None if flops is None else round(flops / seconds / 1e12, 1)}
        result["rows"].append(r)
        rate = "" if r["tflops"] is None else f"  {r['tflops']:>6.1f} TFLOP/s"
        print(f"[forward_cost] {name:<40} {r['ms']:>9.2f} ms  {r['rows_per_s']:>10,.0f} rows/s{rate}", flush=True)

    # FLOPs are counted on the eager model only: a compiled module first run under FlopCounterMode's dispatch mode
    # can leave dynamo skipping its code for good, and every later call (other models' too) then runs eager
    flops: dict = {}
    variants = {"fp32 weights, bf16 autocast (default)": (base, "bfloat16")}
    compiled = copy.deepcopy(base)
    compiled.compile_layers()
    variants["+ compile_layers (agent.compile)"] = (compiled, "bfloat16")
    variants["bf16 weights, no autocast"] = (copy.deepcopy(base).to(torch.bfloat16), "float32")
    if args.only_compiled:  # the compiled path alone (and --shapes): a short check
        variants = {k: v for k, v in variants.items() if k.startswith("+ compile")}
        eager = VLARunner(base, tok, num_envs=args.batch)
        xb = inputs(eager, args.batch, dev)
        flops["rollout"] = flops_of(lambda: eager.predict_chunk(**xb, temperature=1.0))
    for name, (model, dtype) in variants.items():
        runner = VLARunner(model, tok, num_envs=args.batch, dtype=dtype)
        x = inputs(runner, args.batch, dev)
        result.setdefault("prompt_ids_per_row", int(x["input_ids"].shape[1]))  # BOS + the prompt's bytes
        wdtype = next(model.parameters()).dtype  # bf16 weights take bf16 pixels
        x = {k: v.to(wdtype) if v.is_floating_point() else v for k, v in x.items()}
        fwd = lambda: runner.predict_chunk(**x, temperature=1.0)  # noqa: E731
        seconds = timed(fwd, sync, args.repeat)
        if model is base:
            flops["rollout"] = flops_of(fwd)
        row(f"rollout forward x{args.batch}: {name}", seconds, flops["rollout"], args.batch)
        model.train()
        for micro in args.micro:
            xm = {k: v[:micro] for k, v in x.items()}

            def step():
                model(**xm, dtype=dtype).float().logsumexp(-1).mean().backward()
                model.zero_grad(set_to_none=True)

            seconds = timed(step, sync, args.repeat)
            if model is base:
                flops[micro] = flops_of(step)
            row(f"update fwd+bwd x{micro}: {name}", seconds, flops.get(micro), micro)
        graphs = dict(torch._dynamo.utils.counters["stats"])
        print(f"[forward_cost]     dynamo so far: {graphs}", flush=True)
        if args.top and dev.type == "cuda":  # of the last micro-batch size
            try:  # the listing is a diagnosis: its failure must not cost the timings of the paths after it
                result.setdefault("update_kernels", {})[name] = top_kernels(step, sync, args.top)
            except Exception as e:  # noqa: BLE001
                print(f"[forward_cost]     kernel listing failed: {type(e).__name__}: {e}", flush=True)
        model.eval()
        if model is base:  # where the default's forward goes
            with torch.no_grad(), model.autocast(dtype):
                pv = x["pixel_values"]
                vis = lambda: model.projector(model.vision_backbone(pv))  # noqa: E731
                row(f"  vision towers + projector x{args.batch}", timed(vis, sync, args.repeat), flops_of(vis), args.batch)
                seq = model.build_sequence(pv, x["input_ids"], x["attention_mask"])
                llm = lambda: model._run_llm(seq, logits_to_keep=seq.readout)  # noqa: E731
                row(f"  LLM over {seq.embeds.shape[1]} tokens x{args.batch}", timed(llm, sync, args.repeat),
                    flops_of(llm), args.batch)
    if args.shapes:
        result["new_shapes"] = shape_cost(base, tok, args, dev, sync)
    if dev.type == "cuda":
        result["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
