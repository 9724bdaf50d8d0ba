"""Host synchronizations in GRPO's rollout loop and update, by source line: the torch calls that wait for the GPU.

    python benchmarks/perf/host_syncs.py [--steps 24] [--num_envs 8] [--json OUT]

Runs one GRPO rollout round (tiny preset, 32 px, CPU), then the update of what it kept (2 mini-batches of
micro-batches of 8 chunks), each under a TorchFunctionMode that counts the calls which,
on a CUDA tensor, copy a value to the host and so wait for the GPU (``item``, ``tolist``, ``bool()``, ``int()``,
``nonzero`` ...), keyed by the first frame outside torch. The counts do not depend on the device: this is the CPU
view of what stalls the GPU's queue in the step loop. Not seen here: ``torch.cuda.synchronize`` calls, and the
syncs inside Warp / Newton (not torch operations).
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import traceback
from pathlib import Path

from torch.overrides import TorchFunctionMode

SYNCING = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero", "argwhere", "numpy", "cpu",
           "unique", "masked_select", "repeat_interleave"}


class CountSyncs(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING:
            frame = next((f for f in reversed(traceback.extract_stack(limit=12)[:-1]) if "/torch/" not in f.filename), None)
            if frame is not None:
                where = frame.filename.split("site-packages/")[-1].split("exts/openarm_vla/")[-1]
                self.counts[f"{where}:{frame.lineno} {frame.name} {name}"] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--num_envs", type=int, default=8)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    from openarm_vla.tasks.factory import load_cfgs
    from openarm_vla.train import grpo

    overrides = ["env.scene.front_camera.width=32", "env.scene.front_camera.height=32", "env.group_size=2",
                 f"agent.num_groups={args.num_envs // 2}", "agent.oversample=1.0", "agent.max_rounds=1",
                 f"agent.max_rollout_steps={args.steps}", "agent.preset=tiny", "agent.eval_episodes=0",
                 "agent.keep_low=-0.01", "agent.save_every=0", "agent.micro_batch_size=8",
                 f"agent.batch_size={max(1, args.num_envs // 2)}"]
    env_cfg, agent = load_cfgs("OpenArm-BoxGrasp", "grpo_cfg_entry_point", overrides=overrides)
    s = grpo.make_learner("OpenArm-BoxGrasp", env_cfg, agent, Path(tempfile.mkdtemp()), "cpu", num_envs=args.num_envs)
    try:
        grpo.collect_groups(s)  # warm-up round
        mode, update_mode = CountSyncs(), CountSyncs()
        with mode:
            rollout = grpo.collect_groups(s)
        with update_mode:
            batch, _ = grpo.prepare_batch(s, rollout)
            grpo.update(s, batch, 1)
        micro = sum(len(mb) for mb in batch.schedule)
    finally:
        s.run.close()
        s.env.close()
    total, total_update = sum(mode.counts.values()), sum(update_mode.counts.values())
    print(f"[host_syncs] one rollout round of {args.steps} steps: {total} syncing calls ({total / args.steps:.1f} a step)")
    for where, n in mode.counts.most_common():
        print(f"[host_syncs] {n:6d}  {where}")
    print(f"[host_syncs] its update ({len(batch.schedule)} mini-batches, {micro} micro-batches): {total_update} syncing "
          f"calls ({total_update / max(micro, 1):.1f} a micro-batch)")
    for where, n in update_mode.counts.most_common():
        print(f"[host_syncs] {n:6d}  {where}")
    if args.json:
        args.json.write_text(json.dumps({"steps": args.steps, "num_envs": args.num_envs, "total": total,
                                         "by_source": dict(mode.counts.most_common()),
                                         "update": {"minibatches": len(batch.schedule), "micro_batches": micro,
                                                    "total": total_update,
                                                    "by_source": dict(update_mode.counts.most_common())}}, indent=1))


if __name__ == "__main__":
    main()
