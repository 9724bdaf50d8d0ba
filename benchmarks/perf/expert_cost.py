"""The scripted expert's cost per control step, before/after in one run: the expert (and its IK) of a git revision vs
the working tree, on the same observations.

    python benchmarks/perf/expert_cost.py [--rev 752fcca] [--num_envs 1024 4096] [--device cuda] [--json OUT]

The expert drives the demo stage and every expert evaluation; on the GPU its per-step work is thousands of small
tensor operations, so kernel launches, not arithmetic, set its time. No simulator here: a kinematic loop (the
joints reach last step's targets, the box stays where it is drawn) walks every env through approach, descend,
close and lift, and a random eighth of the envs restart every 16 steps so that planning is in it. Both versions
must give the same actions (float64; max |difference| printed). Prints and writes, per version: ms per steady act,
ms per act that plans every env and one that plans 32 envs, and (CUDA) kernel launches per steady act.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

from openarm_vla.action_space import action_to_joint_targets, joint_limits
from openarm_vla.policies import scripted_expert as current
from openarm_vla.robots import kinematics as current_kinematics

ROOT = Path(__file__).resolve().parents[2]


def load_revision(rev: str, src: Path | None = None) -> tuple[types.ModuleType, types.ModuleType]:
    """The expert module of ``rev`` with that revision's kinematics (read by git, or from ``src``, a copy of that
    revision's ``openarm_vla`` package folder, where the checkout has no git history)."""

    def source(path: str) -> str:
        if src is not None:
            return (src / path).read_text()
        return subprocess.run(["git", "show", f"{rev}:exts/openarm_vla/openarm_vla/{path}"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout

    kin = types.ModuleType("kinematics_before")
    sys.modules[kin.__name__] = kin
    exec(compile(source("robots/kinematics.py").replace("from . import openarm_spec", "from openarm_vla.robots import openarm_spec"),
                 f"{rev}:kinematics.py", "exec"), kin.__dict__)
    expert = types.ModuleType("scripted_expert_before")
    expert.__dict__["__name__"] = expert.__name__
    sys.modules[expert.__name__] = expert  # dataclasses look their module up
    exec(compile(source("policies/scripted_expert.py").replace("from openarm_vla.robots.kinematics import",
                                                                "from kinematics_before import"),
                 f"{rev}:scripted_expert.py", "exec"), expert.__dict__)
    return expert, kin


def start_obs(n: int, device: str, seed: int) -> dict[str, torch.Tensor]:
    """Arm at random poses near the middle of its range, boxes on the table in the task's workspace."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = joint_limits()
    q = lo + (hi - lo) * (0.45 + 0.1 * torch.rand(n, 7, generator=g))
    yaw = (torch.rand(n, generator=g) - 0.5) * 1.5
    box = torch.stack([0.25 + 0.1 * torch.rand(n, generator=g), 0.2 * torch.rand(n, generator=g) - 0.1,
                       torch.full((n,), 0.025)], dim=1)
    quat = torch.stack([torch.zeros(n), torch.zeros(n), torch.sin(yaw / 2), torch.cos(yaw / 2)], dim=1)
    return {k: v.to(device) for k, v in {"q": q.double(), "box_pos": box, "box_quat": quat}.items()}


def observe(state: dict, device: str) -> dict[str, torch.Tensor]:
    tcp, _, _ = current_kinematics.fk_jacobian(state["q"])
    n = state["q"].shape[0]
    return {"joint_pos": torch.cat([state["q"], torch.zeros(n, 2, dtype=torch.float64, device=device)], 1).float(),
            "box_pos": state["box_pos"], "box_quat": state["box_quat"], "tcp_pos": tcp.float()}


def follow(state: dict, actions: torch.Tensor) -> None:
    """The arm joints reach the commanded targets."""
    a = actions.double()
    state["q"] = action_to_joint_targets(a, *joint_limits(a))[:, :7]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat * 1e3


def launches_per_call(fn, device: str, calls: int = 3) -> float | None:
    if not device.startswith("cuda"):
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        sync(device)
    return sum(e.count for e in prof.key_averages() if e.key in ("cudaLaunchKernel", "cuLaunchKernel")) / calls


def compare_and_time(versions: dict, n: int, device: str, steps: int, repeat: int) -> dict:
    experts = {name: make(n, device) for name, make in versions.items()}
    state = start_obs(n, device, seed=n)
    g = torch.Generator().manual_seed(1)
    worst, phases = 0.0, set()
    for t in range(steps):  # closed loop on the first version's actions; every version sees the same observations
        obs = observe(state, device)
        acts = {name: e.act(obs) for name, e in experts.items()}
        first = next(iter(acts.values()))
        worst = max(worst, max(float((a - first).abs().max()) for a in acts.values()))
        phases |= set(next(iter(experts.values())).phase.unique().tolist())
        follow(state, first)
        if t % 16 == 15:
            ids = torch.randperm(n, generator=g)[: n // 8].to(device)
            for e in experts.values():
                e.reset(ids)
    obs = observe(state, device)
    out = {"num_envs": n, "max_action_difference": worst, "phases_seen": sorted(phases), "versions": {}}
    some = torch.arange(min(32, n), device=device)
    for name, e in experts.items():
        def steady(e=e):
            e.act(obs)

        def plan_all(e=e):
            e.reset(None)
            e.act(obs)

        def plan_some(e=e):
            e.reset(some)
            e.act(obs)

        steady()
        out["versions"][name] = {"steady_ms": round(timed(steady, device, repeat), 2),
                                 "plan_all_ms": round(timed(plan_all, device, max(1, repeat // 4)), 2),
                                 "plan_32_ms": round(timed(plan_some, device, max(1, repeat // 4)), 2),
                                 "launches_per_steady_act": launches_per_call(steady, device)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", default="752fcca", help="the revision before the change")
    p.add_argument("--rev_src", type=Path, default=None,
                   help="that revision's openarm_vla package folder (robots/kinematics.py, policies/scripted_expert.py) "
                        "where there is no git history")
    p.add_argument("--num_envs", type=int, nargs="+", default=[1024, 4096])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=160, help="closed-loop steps compared")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    before, _ = load_revision(args.rev, args.rev_src)
    versions = {f"before ({args.rev})": lambda n, dev: before.ScriptedExpert(n, dev, verbose=False),
                "after (working tree)": lambda n, dev: current.ScriptedExpert(n, dev, verbose=False)}
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu, {torch.get_num_threads()} threads"
    rows = []
    for n in args.num_envs:
        r = compare_and_time(versions, n, args.device, args.steps, args.repeat)
        rows.append(r)
        print(f"[expert_cost] {n} envs on {device_name}: actions of the versions differ by at most {r['max_action_difference']:.2e}; "
              f"phases seen {r['phases_seen']}", flush=True)
        for name, v in r["versions"].items():
            print(f"[expert_cost]   {name:>20}: steady {v['steady_ms']} ms, planning all {v['plan_all_ms']} ms, "
                  f"planning 32 {v['plan_32_ms']} ms, kernel launches per steady act {v['launches_per_steady_act']}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps({"device": device_name, "rev": args.rev, "command": " ".join(sys.argv), "rows": rows}, indent=1))
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
