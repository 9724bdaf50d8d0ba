"""The pipeline's SFT checkpoint choice (select) and its stage log, on hand-made run directories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT

from openarm_vla.pipeline import Pipeline
from openarm_vla.pipeline_cfg import PipelineCfg, load_pipeline_cfg
from openarm_vla.utils.manifest import MANIFEST_FILE, verify_manifest
from openarm_vla.utils.run_files import STATE_FILE


def _pipeline(tmp_path, evals: dict[int, float], ckpts=(), finished=True) -> Pipeline:
    sft = tmp_path / "out" / "sft"
    sft.mkdir(parents=True)
    rows = [{"iteration": it, "sft/loss": 1.0} for it in evals] + [
        {"iteration": it, "eval/success": s, "eval/ci_low": s / 2, "eval/ci_high": s * 2} for it, s in evals.items()]
    (sft / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for it in ckpts:
        (sft / "checkpoints" / f"iter_{it:06d}").mkdir(parents=True)
        (sft / "checkpoints" / f"iter_{it:06d}" / STATE_FILE).write_bytes(b"")
        (sft / "checkpoints" / f"iter_{it:06d}" / MANIFEST_FILE).write_text('{"files": {}}')
    (sft / "checkpoints" / "iter_000900").mkdir(parents=True)  # torn write: no state file, never chosen
    if finished:
        (sft / "final").mkdir()
        (sft / "final" / "config.json").write_text("{}")
    return Pipeline(PipelineCfg(output="out", sft_band=(0.05, 0.70)), tmp_path)


def test_final_policy_inside_the_band(tmp_path):
    p = _pipeline(tmp_path, {500: 0.02, 1000: 0.30}, ckpts=(500, 1000))
    assert p.select() == p.out / "sft" / "final"
    info = json.loads((p.out / "sft_choice.json").read_text())
    assert "final SFT policy" in info["why"] and [e["iteration"] for e in info["sft_evaluations"]] == [500, 1000]


def test_above_the_band_takes_the_latest_checkpoint_inside(tmp_path):
    p = _pipeline(tmp_path, {500: 0.10, 1000: 0.40, 1500: 0.90}, ckpts=(500, 1000, 1500))
    assert p.select() == p.out / "sft" / "checkpoints" / "iter_001000"
    assert "step 1000 (0.400), a shorter SFT" in json.loads((p.out / "sft_choice.json").read_text())["why"]


def test_below_the_band_keeps_the_final_policy(tmp_path):
    p = _pipeline(tmp_path, {500: 0.01, 1000: 0.03}, ckpts=(500,))
    assert p.select() == p.out / "sft" / "final"
    assert "below 0.05" in json.loads((p.out / "sft_choice.json").read_text())["why"]


def test_a_run_cut_short_stands_for_its_latest_evaluated_checkpoint(tmp_path):
    # evaluated at 500, 1000 and 1500, but 1500's checkpoint was never written: 1000 is the latest measured
    p = _pipeline(tmp_path, {500: 0.04, 1000: 0.14, 1500: 0.20}, ckpts=(500, 1000), finished=False)
    assert p.select() == p.out / "sft" / "checkpoints" / "iter_001000"
    why = json.loads((p.out / "sft_choice.json").read_text())["why"]
    assert "stopped before its end" in why and "step 1000" in why and "0.140 lies in [0.05, 0.7]" in why


def test_a_run_cut_before_any_evaluation_is_one_line(tmp_path):
    p = _pipeline(tmp_path, {}, ckpts=(250,), finished=False)
    with pytest.raises(SystemExit, match=r"neither a final SFT policy nor an evaluated checkpoint \(run the sft stage\)"):
        p.select()


def test_stage_log_lists_a_command_before_it_runs(tmp_path):
    p = _pipeline(tmp_path, {})
    p._record("sft", command="python scripts/train.py --algo sft")  # what _run writes first
    assert json.loads(p.stage_file.read_text()) == {"sft": {"wall_s": 0.0, "commands": ["python scripts/train.py --algo sft"]}}
    p._record("sft", wall_s=12.5)
    assert json.loads(p.stage_file.read_text())["sft"]["wall_s"] == 12.5


def test_recipes_load_typed_and_bad_keys_or_values_are_one_line(tmp_path):
    """Every shipped pipeline recipe loads into the typed schema; a misspelt key, a wrong type or a value out of
    range is a ConfigError naming the key."""
    from pathlib import Path

    from openarm_vla.errors import ConfigError

    root = Path(__file__).resolve().parents[1] / "configs" / "pipelines"
    recipes = sorted(root.glob("*.yaml"))
    assert {p.stem for p in recipes} >= {"quickstart", "h100", "mini"}
    for path in recipes:
        cfg = load_pipeline_cfg(path)
        assert isinstance(cfg, PipelineCfg) and cfg.sft.max_iterations >= 1 and cfg.name == path.stem
    quick = load_pipeline_cfg(root / "quickstart.yaml", ["grpo.max_iterations=3", "demos.num_demos=8"])
    assert (quick.grpo.max_iterations, quick.demos.num_demos, quick.grpo.env["group_size"]) == (3, 8, 2)
    # the main job shows the shipped policy: it is in the repo, whole (manifest), the mini preset, at the show's size
    shipped = Path(__file__).resolve().parents[1] / load_pipeline_cfg(root / "quickstart.yaml").show.policy
    assert verify_manifest(shipped) is None and (shipped / "PROVENANCE.md").is_file()
    config = json.loads((shipped / "config.json").read_text())["vla_config"]
    assert (config["name"], config["image_size"]) == ("mini", load_pipeline_cfg(root / "quickstart.yaml").show.image_size)
    shown = load_pipeline_cfg(root / "quickstart.yaml", ["show={policy: assets/policies/x, episodes: 4}"]).show
    assert (shown.policy, shown.episodes, shown.num_envs) == ("assets/policies/x", 4, 8)
    for bad, match in ((["sft.max_iterations=abc"], r"quickstart.yaml: sft.max_iterations: Value 'abc'"),
                       (["sftt.preset=tiny"], r"quickstart.yaml: sftt: Key 'sftt' not in 'PipelineCfg'"),
                       (["sft_band=[0.5,0.2]"], r"quickstart.yaml: sft_band: must be two rates"),
                       (["demos.num_demos=0"], r"demos.num_demos: must be >= 1")):
        with pytest.raises(ConfigError, match=match):
            load_pipeline_cfg(root / "quickstart.yaml", bad)
    with pytest.raises(ConfigError, match="recipe not found: .*nope.yaml .have: .*quickstart"):
        load_pipeline_cfg(root / "nope.yaml")
    # a variant states what it changes (extends: NAME, a recipe beside it); the shipped variants extend h100
    h100, mastery = load_pipeline_cfg(root / "h100.yaml"), load_pipeline_cfg(root / "mastery.yaml")
    assert (mastery.grpo.max_iterations, mastery.test.seed, h100.test) == (40, 20000, None)
    assert mastery.grpo.agent == {**h100.grpo.agent, "eval_every": 8} and mastery.sft == h100.sft and mastery.demos == h100.demos
    (tmp_path / "base.yaml").write_text("name: base\nsft:\n  max_iterations: 7\n  agent: {lr: 0.001, batch_size: 8}\n")
    (tmp_path / "v.yaml").write_text("extends: base\nname: v\nsft:\n  agent: {lr: 0.002}\n")
    v = load_pipeline_cfg(tmp_path / "v.yaml")
    assert (v.name, v.sft.max_iterations, v.sft.agent) == ("v", 7, {"lr": 0.002, "batch_size": 8})
    (tmp_path / "w.yaml").write_text("extends: gone\n")
    with pytest.raises(ConfigError, match=r"recipe not found: .*gone.yaml \(extended by w.yaml\)"):
        load_pipeline_cfg(tmp_path / "w.yaml")
    (tmp_path / "base.yaml").write_text("extends: v\n")
    with pytest.raises(ConfigError, match=r"base.yaml: extends v: a cycle \(v -> base -> v\)"):
        load_pipeline_cfg(tmp_path / "v.yaml")
    # a training stage's agent / env sections become the trainer's overrides, values as Hydra literals
    p = Pipeline(quick, tmp_path)
    assert p._overrides(quick.grpo)[:2] == ["agent.num_groups=4", "agent.max_rounds=2"]
    assert "env.group_size=2" in p._overrides(quick.grpo)


def test_demos_stage_records_the_demo_loops_speed(tmp_path, monkeypatch):
    """The demos stage copies the dataset's own record of its generation speed into stages.json (the file that comes
    back from a GPU machine; the dataset does not)."""
    from openarm_vla.data.hdf5_format import DemoWriter

    recipe = load_pipeline_cfg(ROOT / "configs" / "pipelines" / "quickstart.yaml", [f"output={tmp_path / 'out'}"])
    p = Pipeline(recipe, ROOT)
    p.out.mkdir(parents=True)

    def fake_generate(stage, args):  # what generate_demos.py leaves: a dataset whose env_args say how fast it was made
        p._record(stage, command="python " + " ".join(args), wall_s=3.0)
        with DemoWriter(p.out / "demos.hdf5", instruction="pick up the box",
                        env_args={"generation": {"env_steps_per_s": 1234.5}}) as w:
            w.write_episode(obs={"joint_pos": np.zeros((2, 8), np.float32)}, actions=np.zeros((2, 8), np.float32))

    monkeypatch.setattr(p, "_run", fake_generate)
    p.demos()
    demos = json.loads(p.stage_file.read_text())["demos"]
    assert demos["generation"] == {"env_steps_per_s": 1234.5} and demos["wall_s"] == 3.0


@pytest.mark.sim
def test_show_stage_evaluates_and_films_a_policy(tmp_path):
    """The show stage runs scripts/evaluate.py on the recipe's policy over held-out starts and writes
    OUT/show/results.json and its clips; the report carries its summary."""
    from openarm_vla.vla import ByteTokenizer, OpenVLAForActionPrediction, get_preset, save_checkpoint

    save_checkpoint(OpenVLAForActionPrediction(get_preset("tiny")), tmp_path / "policy", ByteTokenizer())
    recipe = load_pipeline_cfg(ROOT / "configs" / "pipelines" / "quickstart.yaml", [
        f"output={tmp_path / 'out'}", "device=cpu", f"show={{policy: {tmp_path / 'policy'}, episodes: 2, num_envs: 2, "
        "image_size: 32, videos: 1}"])
    p = Pipeline(recipe, ROOT)
    p.out.mkdir(parents=True)
    p.show()
    shown = p._shown()
    assert shown["num_episodes"] == 2 and 0.0 <= shown["success_rate"] <= 1.0 and shown["policy"] == str(tmp_path / "policy")
    assert list((p.out / "show" / "videos").glob("*.mp4"))
    assert "python scripts/evaluate.py" in json.loads(p.stage_file.read_text())["show"]["commands"][0]


@pytest.mark.sim
def test_test_stage_evaluates_both_final_policies_once_and_pairs_them(tmp_path):
    """The test stage: the chosen SFT policy and the GRPO policy on the same test-bank starts, each once (a second
    call runs nothing), compared start by start in OUT/test/comparison.json."""
    from openarm_vla.vla import ByteTokenizer, OpenVLAForActionPrediction, get_preset, save_checkpoint

    recipe = load_pipeline_cfg(ROOT / "configs" / "pipelines" / "quickstart.yaml", [
        f"output={tmp_path / 'out'}", "device=cpu", "image_size=32", "test={episodes: 2, num_envs: 2, seed: 20000}"])
    p = Pipeline(recipe, ROOT)
    for seed, where in ((0, p.out / "sft" / "final"), (1, p.out / "grpo" / "final")):
        import torch

        torch.manual_seed(seed)
        save_checkpoint(OpenVLAForActionPrediction(get_preset("tiny")), where, ByteTokenizer())
    (p.out / "sft_choice.json").write_text(json.dumps({"checkpoint": str(p.out / "sft" / "final")}))
    c = p.test()
    assert c["episodes"] == 2 and c["bank_seed"] == 20000 and set(c) >= {"sft", "grpo", "difference", "mcnemar"}
    saved = json.loads((p.out / "test" / "comparison.json").read_text())
    assert saved["mcnemar"] == c["mcnemar"] and 0.0 <= saved["mcnemar"]["p_value"] <= 1.0
    assert len(json.loads(p.stage_file.read_text())["test"]["commands"]) == 2
    p.test()  # evaluated once: nothing runs again
    assert len(json.loads(p.stage_file.read_text())["test"]["commands"]) == 2


def test_mastery_collect_writes_the_issue_schema_from_test_bank_numbers(tmp_path):
    """benchmarks/mastery/collect.py: runs' test-bank comparisons (and a compute-matched control) become the
    results.json layout the mastery report uses; runs on different banks are refused."""
    import importlib.util
    import subprocess
    import sys

    from openarm_vla.eval.compare import paired_comparison

    def evaluation(successes, seed=20000):
        eps = [{"bank_index": i, "success": s, "steps": 90, "failure": "success" if s else "timeout"}
               for i, s in enumerate(successes)]
        return {"summary": {"bank_seed": seed, "num_episodes": len(eps), "num_envs": 4, "successes": sum(successes),
                            "success_rate": sum(successes) / len(eps)}, "episodes": eps}

    runs = []
    for seed, n_grpo in ((0, 7), (1, 6)):
        run = tmp_path / f"run{seed}"
        (run / "test" / "grpo").mkdir(parents=True)
        sft, grpo = evaluation([True, False, False, False, False, False, False, False]), evaluation([True] * n_grpo + [False] * (8 - n_grpo))
        (run / "test" / "grpo" / "results.json").write_text(json.dumps(grpo))
        (run / "test" / "comparison.json").write_text(json.dumps(paired_comparison(sft, grpo, names=("sft", "grpo"))))
        (run / "results.json").write_text(json.dumps({"recipe": {"seed": seed}, "demos": 2048, "device": "H100",
                                                      "bank": {"seed": 10000, "episodes": 256},
                                                      "grpo": {"iterations": 12, "env_steps": 10**7, "wall_s": 600.0}}))
        (run / "grpo").mkdir()
        (run / "grpo" / "metrics.jsonl").write_text("".join(json.dumps({"iteration": i, "eval/success": 0.2 + 0.05 * i}) + "\n"
                                                            for i in (0, 4, 8, 12)))
        runs.append(run)
    control = tmp_path / "control"
    control.mkdir()
    (control / "results.json").write_text(json.dumps(evaluation([True, True] + [False] * 6)))
    spec = importlib.util.spec_from_file_location("collect", ROOT / "benchmarks" / "mastery" / "collect.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "mastery"
    assert mod.main(["--runs", *map(str, runs), "--compute_matched", str(control), "--what", "SFT x4 steps",
                     "--wall_s", "600", "--out", str(out)]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["test_bank"] == {"seed": 20000, "episodes": 8} and r["validation_bank"] == {"seed": 10000, "episodes": 256}
    assert [x["seed"] for x in r["runs"]] == [0, 1] and r["runs"][0]["grpo"]["success"] == 7 / 8
    assert set(r["runs"][0]["grpo"]) >= {"success", "ci_low", "ci_high", "iterations", "env_steps", "wall_s"}
    assert r["grpo_mean_success"] == pytest.approx((7 / 8 + 6 / 8) / 2) and 0 < r["runs"][0]["mcnemar_p"] < 1
    assert r["sft_compute_matched"]["success"] == 0.25 and r["sft_compute_matched"]["what"] == "SFT x4 steps"
    assert (out / "curve.png").stat().st_size > 1000
    bad = json.loads((runs[1] / "results.json").read_text())
    bad["bank"]["seed"] = 10001
    (runs[1] / "results.json").write_text(json.dumps(bad))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "mastery" / "collect.py"), "--runs", *map(str, runs),
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode != 0 and "not evaluated on the same banks" in r.stderr


def test_pipeline_speed_figures_from_a_runs_files(tmp_path, script_main, capsys):
    """The speed figures of a run, hand-computed: GRPO medians over iterations after the first (iteration 1 and a
    skipped update left out), chunks/s = chunks / update seconds, SFT's median logged rate, the demo loop's rate
    from stages.json, the summed stage times; the copied layout (grpo_metrics.jsonl) reads the same."""
    from openarm_vla.perf import SPEED_FIELDS, pipeline_speed

    run = tmp_path / "run"
    (run / "grpo").mkdir(parents=True)
    (run / "sft").mkdir()
    (run / "stages.json").write_text(json.dumps({
        "demos": {"wall_s": 100.0, "commands": [], "generation": {"env_steps_per_s": 5000.0}},
        "sft": {"wall_s": 200.0, "commands": []}, "grpo": {"wall_s": 300.5, "commands": []}}))
    (run / "results.json").write_text(json.dumps({"device": "cuda:0"}))
    sft = [{"iteration": 25 * i, "perf/samples_per_s": v} for i, v in enumerate([1000.0, 3000.0, 2000.0], 1)]
    grpo = [{"iteration": 1, "perf/iteration_s": 90.0, "perf/env_steps_per_s": 1.0, "policy/chunks": 10, "perf/update_s": 1.0},
            {"iteration": 2, "perf/iteration_s": 50.0, "perf/env_steps_per_s": 30000.0, "policy/chunks": 40000, "perf/update_s": 20.0},
            {"iteration": 2, "eval/success": 0.5},
            {"iteration": 3, "policy/skipped": 1, "perf/env_steps_per_s": 99.0},
            {"iteration": 4, "perf/iteration_s": 40.0, "perf/env_steps_per_s": 40000.0, "policy/chunks": 45000, "perf/update_s": 15.0},
            {"iteration": 5, "perf/iteration_s": 44.0, "perf/env_steps_per_s": 35000.0, "policy/chunks": 36000, "perf/update_s": 16.0}]
    (run / "sft" / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in sft))
    (run / "grpo" / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in grpo))
    want = {"device": "cuda:0", "rollout_env_steps_per_s": 35000.0, "update_chunks_per_s": 2250.0,  # 2000, 3000, 2250
            "sft_samples_per_s": 2000.0, "demo_env_steps_per_s": 5000.0, "grpo_iteration_s": 44.0, "pipeline_s": 600.5}
    assert pipeline_speed(run) == want and set(want) == {"device", *SPEED_FIELDS}
    copied = tmp_path / "copied"
    copied.mkdir()
    for name in ("stages.json", "results.json"):
        (copied / name).write_text((run / name).read_text())
    (copied / "sft_metrics.jsonl").write_text((run / "sft" / "metrics.jsonl").read_text())
    (copied / "grpo_metrics.jsonl").write_text((run / "grpo" / "metrics.jsonl").read_text())
    assert pipeline_speed(copied) == want
    assert pipeline_speed(tmp_path)["pipeline_s"] is None  # no run there: every figure None

    import importlib.util

    spec = importlib.util.spec_from_file_location("script_benchmark", ROOT / "scripts" / "benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    benchmark.main(["--pipeline", f"before={run}", "--pipeline", str(copied), "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "| update_chunks_per_s | 2,250.0 | 2,250.0 |" in out and "| figure | before | copied |" in out
    assert json.loads((tmp_path / "r.json").read_text())["runs"]["before"]["grpo_iteration_s"] == 44.0
    assert script_main("benchmark.py", "--pipeline", f"x={tmp_path / 'nope'}") == 2
    assert "--pipeline: neither a pipeline run (stages.json) nor stage benchmarks" in capsys.readouterr().err


def test_stage_speed_figures_from_stage_benchmarks(tmp_path, capsys):
    """The same figures from profile_stages.py's outputs, hand-computed: GRPO medians over the --plain iterations
    after the first, SFT's unprofiled rate, the demo loop's rate; a missing file leaves its figures None."""
    from openarm_vla.perf import SPEED_FIELDS, stage_speed

    its = [{"perf/iteration_s": 90.0, "perf/env_steps_per_s": 1.0, "policy/chunks": 10, "perf/update_s": 1.0},
           {"perf/iteration_s": 50.0, "perf/env_steps_per_s": 30000.0, "policy/chunks": 40000, "perf/update_s": 20.0},
           {"perf/iteration_s": 40.0, "perf/env_steps_per_s": 40000.0, "policy/chunks": 45000, "perf/update_s": 15.0},
           {"perf/iteration_s": 44.0, "perf/env_steps_per_s": 35000.0, "policy/chunks": 36000, "perf/update_s": 16.0}]
    (tmp_path / "profile_grpo.json").write_text(json.dumps({"device": "H", "timings": {"iterations": its}}))
    (tmp_path / "profile_sft.json").write_text(json.dumps({"device": "H", "timings": {"samples_per_s (unprofiled)": 2818.2}}))
    want = {"device": "H", "rollout_env_steps_per_s": 35000.0, "update_chunks_per_s": 2250.0, "sft_samples_per_s": 2818.2,
            "demo_env_steps_per_s": None, "grpo_iteration_s": 44.0, "pipeline_s": None}
    assert stage_speed(tmp_path) == want and set(want) == {"device", *SPEED_FIELDS}
    (tmp_path / "profile_demos.json").write_text(json.dumps({"device": "H", "timings": {"env_steps_per_s": 4030.3}}))
    assert stage_speed(tmp_path)["demo_env_steps_per_s"] == 4030.3
    import importlib.util

    spec = importlib.util.spec_from_file_location("script_benchmark", ROOT / "scripts" / "benchmark.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    benchmark.main(["--pipeline", f"after={tmp_path}"])
    assert "| grpo_iteration_s | 44.0 |" in capsys.readouterr().out
