"""The whole recipe as stages: [show a shipped policy] -> scripted demos -> SFT -> choose the SFT checkpoint -> GRPO
-> report [-> test bank] [-> evaluation suite]. The recipe's schema is :mod:`openarm_vla.pipeline_cfg`.

Each stage runs one of the project's CLIs in its own process rather than calling its function here: Isaac Lab
holds one simulation per process, a CUDA context gives its memory back only when its process ends, and a stage
that dies (out of memory, killed at a time budget) leaves the pipeline's process and the finished stages intact.
Each writes under ``OUT/`` and is skipped when its output exists or resumed from its checkpoints when it was cut
short, so a long pipeline runs as several commands of bounded length (``--stage NAME``). The SFT policy and the
GRPO policy are evaluated on the same bank of held-out initial states: GRPO validates its starting point (the
chosen SFT checkpoint) before its first update and its result after the last one, in one process, with the bank
seed kept apart from the demos' and GRPO's training seeds.

Choosing the SFT checkpoint: GRPO learns only from groups that sometimes succeed, so the recipe takes the
final SFT policy if its held-out success lies in ``sft_band`` and otherwise the latest evaluated checkpoint
inside the band (an earlier checkpoint = a shorter SFT); an SFT run stopped before its end (``--stage select``
after a cut ``sft``) stands for its latest evaluated checkpoint. The choice and why go to ``OUT/sft_choice.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from openarm_vla.pipeline_cfg import PipelineCfg, TrainStage
from openarm_vla.utils.io import atomic_write_json
from openarm_vla.utils.plots import plot_curves
from openarm_vla.utils.run_files import checkpoint_dirs, read_metrics

STAGES = ("show", "demos", "sft", "select", "grpo", "report", "test", "ood")


class Pipeline:
    def __init__(self, recipe: PipelineCfg, root: Path):
        self.r, self.root = recipe, root
        self.out = (root / recipe.output).resolve()
        self.commands: list[str] = []
        self.stage_file = self.out / "stages.json"

    # ------------------------------------------------------------------ helpers
    def _common(self) -> list[str]:
        return ["--device", str(self.r.device), "--seed", str(self.r.seed)]

    def _run(self, stage: str, args: list[str]) -> None:
        cmd = [sys.executable, *args]
        shown = "python " + " ".join(args)
        self.commands.append(shown)
        print(f"\n[pipeline] {stage}: {shown}", flush=True)
        self._record(stage, command=shown)  # before it runs: a stage killed at a time budget still lists it
        t0 = time.time()
        proc = subprocess.run(cmd, cwd=self.root)
        self._record(stage, wall_s=time.time() - t0)
        if proc.returncode != 0:
            sys.exit(f"[pipeline] stage '{stage}' failed (exit {proc.returncode}); see the output above. "
                     f"Run the pipeline again to resume it.")
        print(f"[pipeline] {stage}: done in {time.time() - t0:.0f} s", flush=True)

    def _record(self, stage: str, command: str | None = None, wall_s: float = 0.0, **facts) -> None:
        """OUT/stages.json: per stage, the commands run and their summed wall time (killed ones add none), and any
        ``facts`` the stage reports (the demo loop's speed)."""
        times = json.loads(self.stage_file.read_text()) if self.stage_file.is_file() else {}
        entry = times.setdefault(stage, {"wall_s": 0.0, "commands": []})
        entry["wall_s"] += wall_s
        if command is not None:
            entry["commands"].append(command)
        entry.update(facts)
        atomic_write_json(self.stage_file, times)

    @staticmethod
    def _overrides(stage: TrainStage) -> list[str]:
        from openarm_vla.cli import override_literal

        return [f"{root}.{k}={override_literal(v)}" for root, section in (("agent", stage.agent), ("env", stage.env))
                for k, v in section.items()] + list(stage.args)

    # ------------------------------------------------------------------ stages
    def show(self) -> None:
        """Evaluate and film the shipped policy on held-out starts (the recipe's ``show``; none: skipped)."""
        sh, out = self.r.show, self.out / "show"
        if sh is None or (out / "results.json").is_file():
            return
        self._run("show", ["scripts/evaluate.py", "--task", self.r.task, "--policy", sh.policy, "--num_episodes",
                           str(sh.episodes), "--num_envs", str(sh.num_envs), "--image_size", str(sh.image_size),
                           "--bank_seed", str(self.r.eval.seed), "--video", str(sh.videos), "--output", str(out),
                           "--no_progress", *self._common()])

    def demos(self) -> None:
        d, path = self.r.demos, self.out / "demos.hdf5"
        if path.is_file():
            print(f"[pipeline] demos: {path} exists, skipped", flush=True)
            return
        self._run("demos", ["scripts/generate_demos.py", "--task", self.r.task, "--num_demos", str(d.num_demos),
                            "--num_envs", str(d.num_envs), "--image_size", str(self.r.image_size),
                            "--group_size", str(d.group_size), "--output", str(path), "--no_progress",
                            "--no_states", *self._common(), *d.args])
        from openarm_vla.data.hdf5_format import read_env_args

        self._record("demos", generation=read_env_args(path).get("generation"))  # stages.json travels, the file not

    def sft(self) -> None:
        s, run = self.r.sft, self.out / "sft"
        if (run / "final" / "config.json").is_file():
            print(f"[pipeline] sft: {run / 'final'} exists, skipped", flush=True)
            return
        self._run("sft", ["scripts/train.py", "--algo", "sft", "--task", self.r.task, "--preset", str(s.preset),
                          "--dataset", str(self.out / "demos.hdf5"), "--output", str(run), "--max_iterations",
                          str(s.max_iterations), "--resume", *self._common(), *self._env_args(), *self._bank(),
                          *self._overrides(s)])

    def select(self) -> Path:
        """The SFT checkpoint GRPO starts from (see the module docstring)."""
        run, (lo, hi) = self.out / "sft", tuple(self.r.sft_band)
        evals = [r for r in read_metrics(run / "metrics.jsonl") if "eval/success" in r]
        ckpts = {int(p.name.split("_")[1]): p for p in checkpoint_dirs(run)}
        finished = (run / "final" / "config.json").is_file()
        # the policy each evaluation measured: the final one for the last evaluation of a finished run, else
        # the checkpoint saved at that step (a run cut short continues from its latest evaluated checkpoint)
        measured = [(r, run / "final" if finished and i == len(evals) - 1 else ckpts.get(r["iteration"]))
                    for i, r in enumerate(evals)]
        measured = [(r, p) for r, p in measured if p is not None]
        if not finished and not measured:
            sys.exit(f"[pipeline] select: {run} has neither a final SFT policy nor an evaluated checkpoint (run the sft stage)")
        choice, why = run / "final", "no SFT evaluation was logged; the final SFT policy"
        if measured:
            last, choice = measured[-1]
            what = ("the final SFT policy" if finished else
                    f"the SFT run stopped before its end; its latest evaluated checkpoint (step {last['iteration']})")
            s = last["eval/success"]
            if lo <= s <= hi:
                why = f"{what}: held-out success {s:.3f} lies in [{lo}, {hi}]"
            elif s > hi:
                inside = [(r, p) for r, p in measured[:-1] if lo <= r["eval/success"] <= hi]
                if inside:
                    pick, choice = inside[-1]
                    why = (f"{what}: held-out success {s:.3f} is above {hi}; the latest checkpoint inside [{lo}, {hi}] "
                           f"is step {pick['iteration']} ({pick['eval/success']:.3f}), a shorter SFT")
                else:
                    why = f"{what}: held-out success {s:.3f} is above {hi} and no kept checkpoint is inside"
            else:
                why = f"{what}: held-out success {s:.3f} is below {lo} (no better checkpoint)"
        info = {"checkpoint": str(choice), "why": why, "band": [lo, hi],
                "sft_evaluations": [{k: r[k] for k in ("iteration", "eval/success", "eval/ci_low", "eval/ci_high")} for r in evals]}
        atomic_write_json(self.out / "sft_choice.json", info)
        print(f"[pipeline] select: {choice} ({why})", flush=True)
        return choice

    def _chosen_sft(self) -> str:
        """The checkpoint :meth:`select` chose (its ``sft_choice.json``), choosing now if it has not run."""
        path = self.out / "sft_choice.json"
        return json.loads(path.read_text())["checkpoint"] if path.is_file() else str(self.select())

    def grpo(self) -> None:
        g, run = self.r.grpo, self.out / "grpo"
        if (run / "final" / "config.json").is_file():
            print(f"[pipeline] grpo: {run / 'final'} exists, skipped", flush=True)
            return
        choice = self._chosen_sft()
        envs = ["--num_envs", str(g.num_envs)] if g.num_envs else []
        self._run("grpo", ["scripts/train.py", "--algo", "grpo", "--task", self.r.task, "--init", choice,
                           "--output", str(run), *envs, "--max_iterations", str(g.max_iterations), "--resume",
                           *self._common(), *self._env_args(), *self._bank(), *self._overrides(g)])

    def _env_args(self) -> list[str]:
        size = self.r.image_size
        return [f"env.scene.front_camera.width={size}", f"env.scene.front_camera.height={size}", *self.r.env_args]

    def _bank(self) -> list[str]:
        return [f"agent.eval_seed={self.r.eval.seed}", f"agent.eval_episodes={self.r.eval.episodes}"]

    def report(self) -> dict:
        """OUT/results.json, OUT/curve.png and the clips of the final validation; prints both success rates."""
        grpo = read_metrics(self.out / "grpo" / "metrics.jsonl")
        evals = [r for r in grpo if "eval/success" in r]
        if not evals:
            sys.exit(f"[pipeline] report: no GRPO validation in {self.out / 'grpo' / 'metrics.jsonl'} (run the grpo stage)")
        sft_eval, grpo_eval = evals[0], evals[-1]
        steps = [r for r in grpo if "policy/loss" in r or "rollout/success_rate" in r]
        stages = json.loads(self.stage_file.read_text()) if self.stage_file.is_file() else {}
        stats_file = self.out / "dataset_statistics.json"
        info = next(iter(json.loads(stats_file.read_text()).values())) if stats_file.is_file() else {}

        def side(r: dict) -> dict:
            return {"success": r["eval/success"], "ci_low": r["eval/ci_low"], "ci_high": r["eval/ci_high"],
                    "episodes": r["eval/episodes"]}

        def failures(r: dict) -> dict:
            return {k.split("/")[-1]: v for k, v in r.items() if k.startswith("eval/failures/")}

        env_steps = max([r.get("rollout/env_steps_total", 0) for r in grpo] or [0])
        results = {
            "device": self.r.device_name or _device_name(),
            "demos": info.get("num_trajectories"),
            "sft": {**side(sft_eval), "wall_s": round(stages.get("sft", {}).get("wall_s", 0.0), 1),
                    "checkpoint": json.loads((self.out / "sft_choice.json").read_text()) if (self.out / "sft_choice.json").is_file() else None},
            "grpo": {**side(grpo_eval), "wall_s": round(stages.get("grpo", {}).get("wall_s", 0.0), 1),
                     "iterations": max((r["iteration"] for r in steps), default=0), "env_steps": env_steps},
            "failures": {"sft": failures(sft_eval), "grpo": failures(grpo_eval)},
            "show": self._shown(),
            "bank": {"seed": self.r.eval.seed, "episodes": self.r.eval.episodes},
            "stages": stages,
            "commands": [c for st in stages.values() for c in st["commands"]],
            "recipe": asdict(self.r),
        }
        atomic_write_json(self.out / "results.json", results)
        curve = [{**r, "env_steps": r.get("rollout/env_steps_total", 0)} for r in grpo]
        bands = ("eval/ci_low", "eval/ci_high")
        plot_curves(curve, self.out / "curve.png", [
            (["eval/success", "rollout/success_rate"], "success (held-out greedy; training sampled)", (-0.02, 1.02), bands),
            (["eval/success", "rollout/success_rate"], "success vs env-steps", (-0.02, 1.02), bands, "env_steps"),
        ], title=f"GRPO from SFT: held-out {sft_eval['eval/success']:.2f} -> {grpo_eval['eval/success']:.2f}")
        for clip in sorted((self.out / "grpo" / "videos").glob("*.mp4")):
            if clip.name.startswith(f"iter{grpo_eval['iteration']:06d}_"):
                shutil.copy2(clip, self.out / ("grpo_success.mp4" if "success" in clip.name else "grpo_failure.mp4"))
        s, g = results["sft"], results["grpo"]
        print(f"\n[pipeline] held-out greedy success on {s['episodes']} starts (bank seed {self.r.eval.seed}):\n"
              f"  SFT  : {100 * s['success']:.1f}% (95% CI {100 * s['ci_low']:.1f}-{100 * s['ci_high']:.1f}%)\n"
              f"  GRPO : {100 * g['success']:.1f}% (95% CI {100 * g['ci_low']:.1f}-{100 * g['ci_high']:.1f}%) after "
              f"{g['iterations']} iterations, {g['env_steps']:,} env-steps\n"
              f"  outputs: {self.out} (results.json, curve.png, sft/, grpo/, videos)", flush=True)
        if results["device"] == "cpu":
            print("  (a CPU run: its models train for minutes and are not expected to grasp; it shows every stage "
                  "working end to end. The learning proof is configs/pipelines/h100.yaml on a GPU: ./run.sh h100)",
                  flush=True)
        if results["show"]:
            sh = results["show"]
            print(f"  the shipped policy {sh['policy']}: {sh['successes']}/{sh['num_episodes']} = "
                  f"{100 * sh['success_rate']:.1f}% (95% CI {100 * sh['ci95'][0]:.1f}-{100 * sh['ci95'][1]:.1f}%), "
                  f"videos in {self.out / 'show' / 'videos'}", flush=True)
        return results

    def test(self) -> dict | None:
        """The final report on the test bank (the recipe's ``test``; none: skipped): the chosen SFT policy and the
        GRPO policy, each evaluated once on the same starts, compared start by start (McNemar) in
        OUT/test/comparison.json. An evaluation already written is not run again."""
        t = self.r.test
        if t is None:
            return None
        sft = self._chosen_sft()
        for name, policy in (("sft", sft), ("grpo", str(self.out / "grpo" / "final"))):
            out = self.out / "test" / name
            if not (out / "results.json").is_file():
                self._run("test", ["scripts/evaluate.py", "--task", self.r.task, "--policy", policy, "--bank_seed",
                                   str(t.seed), "--num_episodes", str(t.episodes), "--num_envs", str(t.num_envs),
                                   "--image_size", str(self.r.image_size), "--video", "1", "--output", str(out),
                                   "--no_progress", *self._common(), *self.r.env_args])
        from openarm_vla.eval.compare import paired_comparison

        docs = [json.loads((self.out / "test" / n / "results.json").read_text()) for n in ("sft", "grpo")]
        c = paired_comparison(*docs, names=("sft", "grpo"))
        atomic_write_json(self.out / "test" / "comparison.json", c)
        m = c["mcnemar"]
        print(f"\n[pipeline] test bank ({c['episodes']} starts, seed {c['bank_seed']}): SFT {100 * c['sft']['success']:.1f}% "
              f"[{100 * c['sft']['ci_low']:.1f}, {100 * c['sft']['ci_high']:.1f}], GRPO {100 * c['grpo']['success']:.1f}% "
              f"[{100 * c['grpo']['ci_low']:.1f}, {100 * c['grpo']['ci_high']:.1f}], {100 * c['difference']:+.1f} points, "
              f"McNemar p = {m['p_value']:.3g} ({m['b_only']} starts only GRPO solved, {m['a_only']} only SFT)", flush=True)
        return c

    def ood(self) -> dict | None:
        """The recipe's evaluation suite (``ood``; none: skipped) on the chosen SFT policy and the GRPO policy, named
        sft and grpo, in OUT/ood/ (``scripts/evaluate.py --suite``: resumes split by split; a finished suite, its
        suite.json written, is not run again)."""
        o = self.r.ood
        if o is None:
            return None
        out = self.out / "ood"
        if not (out / "suite.json").is_file():
            sft = self._chosen_sft()
            self._run("ood", ["scripts/evaluate.py", "--suite", o.suite, "--task", self.r.task, "--policy", sft, "--policy",
                              str(self.out / "grpo" / "final"), "--name", "sft", "--name", "grpo", "--num_envs",
                              str(o.num_envs), "--image_size", str(self.r.image_size), "--output", str(out), "--no_progress",
                              *(["--max_episodes", str(o.max_episodes)] if o.max_episodes else []), *self._common(),
                              *self.r.env_args])
        return json.loads((out / "suite.json").read_text())

    def _shown(self) -> dict | None:
        """The shipped policy's evaluation (the ``show`` stage), if it ran."""
        path = self.out / "show" / "results.json"
        if not path.is_file():
            return None
        s = json.loads(path.read_text())["summary"]
        return {k: s[k] for k in ("policy", "successes", "num_episodes", "success_rate", "ci95", "failure_counts")}

    def run(self, stage: str = "all") -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for name in STAGES if stage == "all" else (stage,):
            getattr(self, name)()


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
