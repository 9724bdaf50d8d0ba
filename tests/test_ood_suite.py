"""The OOD suite (openarm_vla.eval.suite): frozen data checked as data, novelty against training values, the table
(hand-computed pooled averages, Wilson CIs and McNemar p), CSV, chart, the collector's layout, evaluate.py's
bad-input lines, and the runner end to end on the base task (resuming without re-evaluating). What needs the
randomized task skips until ``OpenArm-BoxGrasp-DR`` is registered."""

from __future__ import annotations

import copy
import csv
import importlib.util
import io
import json
import math
from types import SimpleNamespace

import pytest
from conftest import ROOT

from openarm_vla.errors import ConfigError
from openarm_vla.eval.bank import PASS_SEED_STRIDE
from openarm_vla.eval.protocol import BANKS
from openarm_vla.eval.suite import (AXES, MIN_EPISODES, OOD, SUITES, Split, Suite, apply_overrides, novelty_problems,
                                    override_problems, suite_problems)
from openarm_vla.eval.suite_run import live_changes
from openarm_vla.eval.suite_table import format_table, plot_table, suite_table, table_csv

DR = "OpenArm-BoxGrasp-DR"


def _dr_registered() -> bool:
    import gymnasium as gym

    from openarm_vla.tasks import TASK_IDS

    return DR in TASK_IDS and DR in gym.registry


needs_dr = pytest.mark.skipif("not _dr_registered()", reason=f"{DR} is not registered (the scene branch of issue 24)")


# ------------------------------------------------------------------------------------ the suite as data


def test_ood_suite_is_valid_frozen_data():
    assert suite_problems(OOD) == [] and SUITES["ood"] is OOD and OOD.task == DR
    names, seeds = [s.name for s in OOD.splits], [s.seed for s in OOD.splits]
    assert len(set(names)) == len(names) and len(set(seeds)) == len(seeds)
    assert not set(seeds) & {b.seed for b in BANKS.values()} and {10_000, 20_000} == {b.seed for b in BANKS.values()}
    assert all(s.episodes >= MIN_EPISODES == 256 for s in OOD.splits)
    per_axis = {a: [s.name for s in OOD.splits if s.axis == a] for a in AXES}
    assert {a: len(v) for a, v in per_axis.items()} == {"id": 1, "vision": 4, "semantic": 4, "execution": 3, "negative": 1}
    assert all(k.startswith("env.variation.") for s in OOD.splits for k in s.overrides)
    with pytest.raises(TypeError):  # frozen: a split's overrides cannot be edited in place
        OOD.split("noise_strong").overrides["env.variation.image_noise_std"] = 0.0
    # no pass of any split's bank draws with a protocol bank's seed or another split's, whatever the env count
    for width in (1, 16, 64, 256):
        seen: dict[int, str] = {}
        for name, seed, n in [(s.name, s.seed, s.episodes) for s in OOD.splits] + [(b.name, b.seed, b.episodes)
                                                                                   for b in BANKS.values()]:
            for p in range(math.ceil(n / width)):
                assert seed + p * PASS_SEED_STRIDE not in seen, (name, seen.get(seed + p * PASS_SEED_STRIDE), width)
                seen[seed + p * PASS_SEED_STRIDE] = name


def test_suite_problems_name_each_fault():
    bad = Suite("bad", "T", (Split("a", "id", 256, 10_000), Split("a", "colour", 100, 5, {"variation.x": 1}),
                             Split("b", "vision", 256, 5)))
    assert suite_problems(bad) == [
        "split 'a': name used twice", "split seed 5: used twice",
        "split 'a': seed 10000 is a protocol bank's (validation / test)",
        "split 'a': axis 'colour' not one of id, vision, semantic, execution, negative",
        "split 'a': 100 episodes, a split needs >= 256", "split 'a': override 'variation.x' is not env.<field>"]


TRAINING = SimpleNamespace(  # contract-like DR values (/work/spec: "DR (training)" column), not the scene branch's
    table_colors=[(0.55, 0.55, 0.58), (0.70, 0.62, 0.50), (0.35, 0.30, 0.25)],
    box_colors={"red": (0.85, 0.2, 0.2), "blue": (0.2, 0.4, 0.85), "green": (0.2, 0.7, 0.3), "yellow": (0.9, 0.8, 0.2),
                "orange": (0.95, 0.5, 0.1), "white": (0.92, 0.92, 0.92)},
    box_sizes=[(0.050, 0.050, 0.050), (0.055, 0.060, 0.055), (0.060, 0.060, 0.060), (0.050, 0.065, 0.060),
               (0.065, 0.065, 0.055), (0.055, 0.070, 0.065)],
    light_intensity=(1500.0, 3500.0), light_color=((0.9, 0.9, 0.9), (1.0, 1.0, 1.0)), light_direction_deg=20.0,
    camera_pos_jitter=0.02, camera_rot_jitter_deg=3.0, image_noise_std=4.0, num_distractors=(0, 3),
    instruction_templates=["pick up the {color} box", "grab the {color} box", "lift the {color} carton"],
    box_x_range=(0.24, 0.34), box_y_range=(-0.10, 0.10), arm_start_offset=0.0, move_box_at_step=0,
    absent_color_instruction=False)


def test_every_shift_leaves_contract_like_training_values():
    assert novelty_problems(OOD, TRAINING) == []
    seen = copy.deepcopy(TRAINING)
    seen.box_colors["teal"] = (0.0, 0.5, 0.5)
    seen.instruction_templates.append("the {color} carton, lift it please")
    seen.light_intensity, seen.image_noise_std, seen.num_distractors = (400.0, 3000.0), 16.0, (0, 4)
    seen.box_x_range, seen.table_colors = (0.24, 0.37), [(0.10, 0.10, 0.45)]  # 0.05 from the ink-blue table
    lines = novelty_problems(OOD, seen)
    assert [line.split(":")[0] for line in lines] == [
        "split 'table_unseen'", "split 'lighting_unseen'", "split 'noise_strong'", "split 'box_colors_unseen'",
        "split 'paraphrases_unseen'", "split 'distractors_4'", "split 'box_outside_region'"]
    assert "env.variation.image_noise_std=16.0 is not outside the training value 16.0" in lines[2]


def test_apply_overrides_copies_and_refuses_unknown_fields():
    cfg = SimpleNamespace(variation=copy.deepcopy(TRAINING), success=SimpleNamespace(hold_steps=10))
    sp = OOD.split("box_colors_unseen")
    apply_overrides(cfg, {**sp.overrides, "env.success.hold_steps": 3})
    assert cfg.variation.box_colors == sp.overrides["env.variation.box_colors"] and cfg.success.hold_steps == 3
    cfg.variation.box_colors["red"] = (1.0, 0.0, 0.0)  # the suite is not changed through the config
    assert "red" not in sp.overrides["env.variation.box_colors"]
    with pytest.raises(ConfigError, match="env config has no field 'colour'"):
        apply_overrides(cfg, {"env.variation.colour": 1})
    assert override_problems(OOD, SimpleNamespace()) == [
        "env.variation: not a field of this task's env config (set by splits " + ", ".join(
            s.name for s in OOD.splits if s.overrides) + ")"]


@needs_dr
def test_ood_suite_against_the_dr_config():
    """Every override is a field of the DR config, every split's config passes the type and range checks, and
    every shifted value lies outside what the DR task trains on."""
    from openarm_vla.checks import problems
    from openarm_vla.tasks.factory import load_env_cfg

    cfg = load_env_cfg(DR)
    assert override_problems(OOD, cfg) == []
    assert novelty_problems(OOD, cfg.variation) == []
    for sp in OOD.splits:
        assert problems(apply_overrides(copy.deepcopy(cfg), sp.overrides), "env") == [], sp.name


# ------------------------------------------------------------------------------------ the table


SPLITS = [{"name": n, "axis": a} for n, a in (("id", "id"), ("v1", "vision"), ("v2", "vision"), ("s1", "semantic"),
                                               ("e1", "execution"), ("neg", "negative"))]
SFT = {"id": 6, "v1": 4, "v2": 2, "s1": 3, "e1": 0, "neg": 0}
GRPO = {"id": 8, "v1": 5, "v2": 4, "s1": 3, "e1": 5, "neg": 1}


def _results(k: int, n: int = 8, first: bool = True) -> dict:
    """n episodes of one bank; the first (or last) k succeed."""
    ok = [i < k for i in range(n)] if first else [i >= n - k for i in range(n)]
    eps = [{"bank_index": i, "success": s, "steps": 50, "failure": "success" if s else "timeout"} for i, s in enumerate(ok)]
    return {"summary": {"bank_seed": 7, "num_episodes": n, "num_envs": 8, "successes": k}, "episodes": eps}


def _hand_table() -> dict:
    res = {("sft", s): _results(k) for s, k in SFT.items()}
    res.update({("grpo", s): _results(k, first=s != "s1") for s, k in GRPO.items()})  # s1: 3 and 3 on other starts
    return suite_table(SPLITS, ["sft", "grpo"], res)


def test_table_pooled_averages_cis_and_mcnemar_hand_computed():
    t = _hand_table()
    assert [(r["policy"], r["split"], r["successes"], r["episodes"]) for r in t["rows"][:6]] == [
        ("sft", s["name"], SFT[s["name"]], 8) for s in SPLITS]
    avg = {(r["policy"], r["axis"]): r for r in t["averages"]}
    assert list(avg) == [(p, a) for p in ("sft", "grpo") for a in ("vision", "semantic", "execution", "ood")]
    # sft vision: (4 + 2) / 16 = 0.375; Wilson, z = 1.959964: z^2/n = 0.240091, denom 1.240091,
    # centre (0.375 + 0.120046) / 1.240091 = 0.399201, half z sqrt(0.375 * 0.625 / 16 + z^2 / 1024) / denom = 0.214389
    v = avg[("sft", "vision")]
    assert (v["successes"], v["episodes"], v["success"]) == (6, 16, 0.375)
    assert (v["ci_low"], v["ci_high"]) == pytest.approx((0.184812, 0.613590), abs=1e-6)
    # sft OOD: vision + semantic + execution = (4 + 2 + 3 + 0) / 32 = 0.28125 (id and the negative control left out):
    # z^2/n = 0.120046, centre (0.28125 + 0.060023) / 1.120046 = 0.304695, half 0.149050
    o = avg[("sft", "ood")]
    assert (o["successes"], o["episodes"], o["success"]) == (9, 32, 0.28125)
    assert (o["ci_low"], o["ci_high"]) == pytest.approx((0.155646, 0.453745), abs=1e-6)
    assert avg[("grpo", "ood")]["success"] == 17 / 32 and avg[("grpo", "execution")]["success"] == 5 / 8
    # exact McNemar on the starts where one policy succeeded: p = min(1, 2 P(X <= min(a_only, b_only)))
    p = {s: c["mcnemar"]["p_value"] for s, c in t["paired"].items()}
    assert p["e1"] == 2 / 2**5 and p["id"] == p["v2"] == 2 / 2**2 and p["v1"] == p["neg"] == 1.0
    assert (t["paired"]["s1"]["mcnemar"]["a_only"], t["paired"]["s1"]["mcnemar"]["b_only"], p["s1"]) == (3, 3, 1.0)
    assert suite_table(SPLITS, ["sft"], {("sft", s): _results(k) for s, k in SFT.items()})["paired"] is None


def test_table_csv_markdown_and_chart(tmp_path):
    t = _hand_table()
    text = table_csv(t)
    lines = text.splitlines()
    assert lines[0] == "policy,split,axis,episodes,successes,success,ci_low,ci_high"
    assert lines[1] == "sft,id,id,8,6,0.750000,0.409275,0.928521"
    assert "sft,average,vision,16,6,0.375000,0.184812,0.613590" in lines
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 * 6 + 2 * 4 and {r["axis"] for r in rows if r["split"] == "average"} == {
        "vision", "semantic", "execution", "ood"}
    md = format_table(t, ["sft", "grpo"])
    assert "| split | axis | sft | grpo | McNemar p |" in md
    assert "| e1 | execution | 0.0 [0.0, 32.4] | 62.5 [30.6, 86.3] | 0.0625 |" in md
    assert "| average ood | ood | 28.1 [15.6, 45.4] | 53.1 [36.4, 69.1] |  |" in md
    png = plot_table(t, ["sft", "grpo"], tmp_path / "suite.png", title="hand-made")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_collect_writes_the_issue_layout(tmp_path):
    t = _hand_table()
    run = tmp_path / "ood"
    run.mkdir()
    (run / "suite.json").write_text(json.dumps({"suite": "ood", "task": DR, "device": "NVIDIA H100 80GB HBM3",
                                                "splits": [{**s, "episodes": 8} for s in SPLITS], **t}))
    spec = importlib.util.spec_from_file_location("gen_collect", ROOT / "benchmarks" / "generalization" / "collect.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--suite", str(run), "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(doc) == {"device", "splits"} and doc["device"] == "NVIDIA H100 80GB HBM3"
    assert list(doc["splits"]) == [s["name"] for s in SPLITS]
    e1 = doc["splits"]["e1"]
    assert set(e1) == {"axis", "episodes", "sft", "grpo"} and (e1["axis"], e1["episodes"]) == ("execution", 8)
    assert e1["grpo"] == pytest.approx({"success": 0.625, "ci_low": 0.305742, "ci_high": 0.863156}, abs=1e-6)
    assert set(e1["sft"]) == {"success", "ci_low", "ci_high"}
    assert (tmp_path / "out" / "suite.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="no policy 'rl' in"):
        mod.main(["--suite", str(run), "--grpo", "rl", "--out", str(tmp_path / "out")])


def test_generalization_recipe_and_its_ood_stage(tmp_path):
    """The recipe loads (task, banks, suite); the ood stage runs evaluate.py --suite on the chosen SFT checkpoint
    and the GRPO policy once (a finished suite is not run again); a suite that does not exist is one line."""
    from openarm_vla.pipeline import STAGES, Pipeline
    from openarm_vla.pipeline_cfg import load_pipeline_cfg

    path = ROOT / "configs" / "pipelines" / "generalization.yaml"
    r = load_pipeline_cfg(path, [f"output={tmp_path / 'run'}", "ood.max_episodes=4"])
    assert (r.name, r.task, r.eval.seed, r.test.seed, r.ood.suite, r.ood.num_envs) == (
        "generalization", DR, 10_000, 20_000, "ood", 256)
    assert r.image_size == 128 and r.grpo.env["group_size"] == 8 and STAGES[-2:] == ("test", "ood")
    p = Pipeline(r, ROOT)
    p.out.mkdir(parents=True)
    (p.out / "sft_choice.json").write_text(json.dumps({"checkpoint": str(p.out / "sft" / "checkpoints" / "iter_001000")}))
    runs = []

    def run(stage, args):
        runs.append((stage, args))
        (p.out / "ood").mkdir()
        (p.out / "ood" / "suite.json").write_text('{"suite": "ood"}')

    p._run = run
    assert p.ood() == {"suite": "ood"} and p.ood() == {"suite": "ood"} and len(runs) == 1
    stage, args = runs[0]
    assert stage == "ood" and " ".join(args) == (
        f"scripts/evaluate.py --suite ood --task {DR} --policy {p.out}/sft/checkpoints/iter_001000 --policy "
        f"{p.out}/grpo/final --name sft --name grpo --num_envs 256 --image_size 128 --output {p.out}/ood --no_progress "
        "--max_episodes 4 --device cuda:0 --seed 0")
    with pytest.raises(ConfigError, match="generalization.yaml: ood.suite: must be one of ood"):
        load_pipeline_cfg(path, ["ood.suite=nope"])


# ------------------------------------------------------------------------------------ the command line


@pytest.mark.parametrize("argv, line", [
    (["--suite", "foo", "--list"], "--suite 'foo': expected one of ood"),
    (["--suite", "ood", "--policy", "expert", "--bank", "test"],
     "--bank: --suite runs each split on its own bank (seed and episodes); drop --bank"),
    (["--suite", "ood", "--policy", "expert", "--num_episodes", "5"],
     "--num_episodes: --suite runs each split on its own bank (seed and episodes); drop --num_episodes"),
    (["--suite", "ood"], "--suite needs at least one --policy"),
    (["--suite", "ood", "--policy", "expert", "--policy", "random", "--name", "a"],
     "1 --name for 2 --policy: give one name per policy, in order"),
    (["--suite", "ood", "--policy", "expert", "--policy", "expert"],
     "policy names ['expert', 'expert'] repeat: give each policy its own --name"),
    (["--suite", "ood", "--policy", "expert", "--name", "a/b"],
     "--name 'a/b': letters, digits, '.', '_' and '-' only (it names a folder)"),
    (["--suite", "ood", "--policy", "expert", "--episodes_scale", "2"], "--episodes_scale=2.0: must be in (0, 1]"),
    (["--suite", "ood", "--policy", "expert", "--max_episodes", "0"], "--max_episodes=0: must be >= 1"),
    (["--suite", "ood", "--policy", "expert", "env.variation.image_noise_std=0"],
     "env.variation.image_noise_std=0: the suite's splits set env.variation.*"),
    (["--policy", "expert", "--policy", "random"], "--policy given 2 times: give one (several only with --suite)"),
    (["--policy", "expert", "--max_episodes", "4"], "--max_episodes: only with --suite"),
])
def test_evaluate_suite_bad_input_is_one_line(tmp_path, script_main, capsys, argv, line):
    assert script_main("evaluate.py", *argv, "--output", str(tmp_path / "o")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"[evaluate] error: {line}"]
    assert not (tmp_path / "o").exists()


def test_evaluate_suite_list(capsys):
    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "scripts" / "evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--suite", "ood", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"suite ood on {DR}:") and all(f"  {s.name} " in out for s in OOD.splits)
    assert "env.variation.num_distractors=(4, 4)" in out


def test_a_suite_naming_a_field_the_task_lacks_is_one_line(tmp_path, script_main, capsys, monkeypatch):
    monkeypatch.setitem(SUITES, "typo", Suite("typo", "OpenArm-BoxGrasp", (
        Split("x", "vision", 256, 31_005, {"env.variation.no_such_field": 1.0}),)))
    assert script_main("evaluate.py", "--suite", "typo", "--policy", "expert", "--output", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["[evaluate] error: env.variation.no_such_field: not a field of this task's env config (set by split x)"]
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------ end to end


def _evaluate(argv: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("evaluate_script", ROOT / "scripts" / "evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(argv) == 0


def test_live_changes_decide_reuse_or_rebuild():
    class Cfg(SimpleNamespace):
        __live_fields__ = ("variation.image_noise_std", "variation.table_colors")

    base = Cfg(variation=SimpleNamespace(image_noise_std=4.0, table_colors=[], box_sizes=[(0.05, 0.05, 0.05)]))
    noise, table = {"env.variation.image_noise_std": 16.0}, {"env.variation.table_colors": [(0.1, 0.1, 0.4)]}
    assert live_changes(base, None, noise) is None  # nothing built yet
    assert live_changes(base, {}, noise) == noise
    assert live_changes(base, noise, table) == {**table, "env.variation.image_noise_std": 4.0}  # back to training
    assert live_changes(base, noise, dict(noise)) == {}
    assert live_changes(base, noise, {"env.variation.box_sizes": [(0.04, 0.04, 0.04)]}) is None  # spawned: rebuild
    assert live_changes(SimpleNamespace(variation=base.variation), {}, noise) is None  # nothing declared live


@pytest.mark.sim
def test_suite_runs_end_to_end_and_resumes(tmp_path, monkeypatch, capsys):
    """Three splits x expert and random, 4 envs at 64 px, 4 of each split's 256 starts: the second changes a value
    the env reads live (its env is kept), the third one it does not (rebuilt); a second run finds every evaluation
    written and builds nothing."""
    from conftest import close_envs

    from openarm_vla.tasks.box_grasp.box_grasp_env_cfg import BoxGraspEnvCfg

    close_envs()  # Isaac Lab holds one simulation per process
    monkeypatch.setattr(BoxGraspEnvCfg, "__live_fields__", ("episode_length_s",), raising=False)
    monkeypatch.setitem(SUITES, "tiny", Suite("tiny", "OpenArm-BoxGrasp", (
        Split("plain", "id", 256, 31_001), Split("short", "vision", 256, 31_003, {"env.episode_length_s": 0.5}),
        Split("held", "execution", 256, 31_002, {"env.success.hold_steps": 5}))))
    out = tmp_path / "suite"
    argv = ["--suite", "tiny", "--policy", "expert", "--policy", "random", "--num_envs", "4", "--image_size", "64",
            "--device", "cpu", "--max_episodes", "4", "--max_steps", "130", "--no_progress", "--output", str(out)]
    _evaluate(argv)
    log = capsys.readouterr().out
    doc = json.loads((out / "suite.json").read_text())
    assert doc["envs_built"] == 2 and doc["device"] == "cpu" and doc["policies"] == {"expert": "expert", "random": "random"}
    assert [(s["name"], s["episodes"], s["seed"]) for s in doc["splits"]] == [
        ("plain", 4, 31_001), ("short", 4, 31_003), ("held", 4, 31_002)]
    for name in ("expert", "random"):
        for split, seed in (("plain", 31_001), ("short", 31_003), ("held", 31_002)):
            res = json.loads((out / name / split / "results.json").read_text())
            assert sorted(e["bank_index"] for e in res["episodes"]) == [0, 1, 2, 3]
            s = res["summary"]
            assert (s["bank_seed"], s["num_envs"], s["split"], s["name"], s["suite"]) == (seed, 4, split, name, "tiny")
            row = next(r for r in doc["rows"] if (r["policy"], r["split"]) == (name, split))
            assert row["successes"] == s["successes"] and row["episodes"] == 4
    assert json.loads((out / "expert" / "held" / "results.json").read_text())["summary"]["overrides"] == {
        "env.success.hold_steps": 5}
    short = [e["steps"] for n in ("expert", "random") for e in json.loads((out / n / "short" / "results.json").read_text())["episodes"]]
    assert max(short) <= 25 < 130 and not any(r["successes"] for r in doc["rows"] if r["split"] == "short")  # 0.5 s
    assert set(doc["paired"]) == {"plain", "short", "held"} and doc["paired"]["plain"]["episodes"] == 4
    assert sum(1 for _ in csv.DictReader(io.StringIO((out / "suite.csv").read_text()))) == 2 * 3 + 2 * 3  # splits, then vision, execution, ood
    assert (out / "suite.png").read_bytes()[:4] == b"\x89PNG"
    assert "[suite] 1/3 plain (id, 4 episodes, bank seed 31001): building the env" in log
    assert "[suite] 2/3 short (vision, 4 episodes, bank seed 31003): the last split's env, set live: env.episode_length_s=0.5" in log
    assert "[suite] 3/3 held (execution, 4 episodes, bank seed 31002): building the env (env.success.hold_steps=5)" in log
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*/results.json")}
    _evaluate(argv)  # resumed: nothing evaluated again
    log = capsys.readouterr().out
    assert "plain (id, 4 episodes, bank seed 31001): done before, not run again" in log and "building" not in log
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/results.json")} == stamps
    again = json.loads((out / "suite.json").read_text())
    assert again["envs_built"] == 0 and again["rows"] == doc["rows"]
    with pytest.raises(SystemExit):  # another env count would pair other starts: refused, nothing overwritten
        _evaluate([*argv[:-1], str(out), "--num_envs", "2"])
    assert "written for (bank seed, episodes, envs) (31001, 4, 4), this run asks (31001, 4, 2)" in capsys.readouterr().err


@pytest.mark.sim
@needs_dr
def test_ood_suite_runs_on_the_dr_task(tmp_path, capsys):
    """Every split's env builds (or is set live) with its overrides and runs (2 starts, 2 envs, 64 px, 20 steps,
    the expert)."""
    from conftest import close_envs

    close_envs()
    out = tmp_path / "ood"
    _evaluate(["--suite", "ood", "--policy", "expert", "--num_envs", "2", "--image_size", "64", "--device", "cpu",
               "--max_episodes", "2", "--max_steps", "20", "--no_progress", "--output", str(out)])
    doc = json.loads((out / "suite.json").read_text())
    assert 1 <= doc["envs_built"] <= len(OOD.splits) and [s["name"] for s in doc["splits"]] == [s.name for s in OOD.splits]
    assert {r["axis"] for r in doc["averages"]} == {"vision", "semantic", "execution", "ood"}
