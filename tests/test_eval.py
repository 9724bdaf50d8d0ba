"""Evaluation: metrics (Wilson CI against a hand-computed case, failure table), run_episodes'
quotas, first_episodes' latch, and scripts/evaluate.py end to end (results.json, failure table, mp4) in
subprocesses, because Isaac Lab holds one simulation per process."""

import json

import pytest
import torch
from helpers import read_mp4_frames

from openarm_vla.eval.metrics import failure_table, format_failure_table, mcnemar, summarize, wilson_interval

CATS = ("success", "miss_grasp", "wrong_position", "timeout", "dropped", "knocked_off", "wrong_object")


def test_wilson_hand_computed():
    # k=8, n=10, z=1.96: p=0.8, z^2/n=0.38416, denom=1.38416, centre=(0.8+0.19208)/1.38416=0.716738,
    # half=1.96*sqrt(0.016+0.009604)/1.38416=0.226581 -> [0.490157, 0.943319]
    lo, hi = wilson_interval(8, 10, z=1.96)
    assert lo == pytest.approx(0.490157, abs=1e-5)
    assert hi == pytest.approx(0.943319, abs=1e-5)
    lo, hi = wilson_interval(0, 3)
    assert lo == 0.0 and hi == pytest.approx(0.561497, abs=1e-5)  # z^2/(n+z^2) for k=0
    assert wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(4, 3)


def test_mcnemar_hand_computed():
    """Exact McNemar: only discordant starts count; p = min(1, 2 P(X <= min(b, c))), X ~ Bin(b + c, 1/2)."""
    # 5 starts only b solved, none only a: p = 2 * 0.5^5 = 0.0625 (never below 0.05 with five discordant pairs)
    m = mcnemar([False] * 5, [True] * 5)
    assert (m["a_only"], m["b_only"], m["p_value"]) == (0, 5, 0.0625)
    # a_only 2, b_only 10, both 3: n = 12, P(X <= 2) = (1 + 12 + 66) / 4096, p = 158 / 4096
    a = [True, True] + [False] * 10 + [True] * 3
    b = [False, False] + [True] * 10 + [True] * 3
    m = mcnemar(a, b)
    assert (m["a_only"], m["b_only"], m["both"], m["neither"]) == (2, 10, 3, 0)
    assert m["p_value"] == pytest.approx(158 / 4096, abs=1e-15)
    assert mcnemar(b, a)["p_value"] == m["p_value"]  # two-sided: symmetric
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0  # no discordant start
    assert mcnemar([True, False, True], [False, True, True])["p_value"] == 1.0  # min(1, 2 * 3/4)
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar([True], [True, False])


def test_paired_comparison_and_its_script(tmp_path, script_main, capsys):
    """Two evaluations of one bank pair up by bank_index; another bank, or another env count, is refused."""
    from openarm_vla.errors import ConfigError
    from openarm_vla.eval.compare import paired_comparison

    def results(successes, seed=20000, envs=256):
        eps = [{"bank_index": i, "success": s, "steps": 100, "failure": "success" if s else "timeout"}
               for i, s in enumerate(successes)]
        return {"summary": {"bank_seed": seed, "num_episodes": len(eps), "num_envs": envs}, "episodes": eps[::-1]}

    sft = results([True, True] + [False] * 10 + [True] * 3)
    grpo = results([False, False] + [True] * 10 + [True] * 3)
    c = paired_comparison(sft, grpo, names=("sft", "grpo"))
    assert c["episodes"] == 15 and c["sft"]["successes"] == 5 and c["grpo"]["successes"] == 13
    assert c["difference"] == pytest.approx(8 / 15) and c["mcnemar"]["p_value"] == pytest.approx(158 / 4096)
    assert (c["grpo"]["ci_low"], c["grpo"]["ci_high"]) == pytest.approx(wilson_interval(13, 15))
    with pytest.raises(ConfigError, match="not on the same starts: bank_seed 20000 vs 10000"):
        paired_comparison(sft, results([True] * 15, seed=10000))
    with pytest.raises(ConfigError, match="num_envs 256 vs 64"):
        paired_comparison(sft, results([True] * 15, envs=64))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(sft))
    b.write_text(json.dumps(grpo))
    import importlib.util
    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("compare_policies", ROOT / "scripts" / "compare_policies.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(a), str(b), "--names", "sft", "grpo", "--output", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "grpo - sft: +53.3 points; McNemar: 10 starts only grpo solved, 2 only sft, exact p = 0.0386" in out
    assert json.loads((tmp_path / "c.json").read_text())["mcnemar"]["b_only"] == 10
    assert script_main("compare_policies.py", str(a), str(tmp_path / "missing.json")) == 2
    assert "missing.json: not a readable results.json" in capsys.readouterr().err


def test_trainers_refuse_to_validate_on_the_test_bank(tmp_path, script_main, capsys):
    assert script_main("train.py", "--algo", "sft", "--device", "cpu", "--dataset", str(tmp_path / "x.hdf5"),
                       "agent.eval_seed=20000", "--output", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["[train] error: agent.eval_seed=20000: that is the test bank's seed, which only the final report "
                   "may use (validate on the validation bank, seed 10000, or another)"]
    assert not (tmp_path / "o").exists()
    assert script_main("evaluate.py", "--policy", "random", "--bank", "test", "--bank_seed", "3", "--output",
                       str(tmp_path / "e")) == 2


def test_failure_table_and_summary():
    eps = [{"success": True, "steps": 100, "failure": "success"},
           {"success": False, "steps": 400, "failure": "timeout"},
           {"success": False, "steps": 400, "failure": "timeout"},
           {"success": False, "steps": 250, "failure": "dropped"}]
    t = failure_table(eps, CATS)
    assert list(t) == list(CATS)
    assert t == {"success": 1, "miss_grasp": 0, "wrong_position": 0, "timeout": 2, "dropped": 1, "knocked_off": 0,
                 "wrong_object": 0}
    s = summarize(eps, CATS)
    assert s["num_episodes"] == 4 and s["successes"] == 1 and s["success_rate"] == 0.25
    assert s["mean_steps"] == 287.5 and s["mean_steps_success"] == 100
    assert sum(s["failure_counts"].values()) == 4
    assert "| timeout | 2 | 50.0% |" in format_failure_table(t)


class FakeEnv:
    """Env 0 finishes every 2 steps, env 1 every 3 (auto-reset), failure code 3 (timeout)."""

    num_envs = 2
    device = "cpu"

    def __init__(self):
        self.t = torch.zeros(2, dtype=torch.long)
        self.period = torch.tensor([2, 3])

    def reset(self):
        self.t.zero_()
        return {"x": torch.zeros(2)}, {}

    def step(self, actions):
        self.t += 1
        done = (self.t % self.period == 0).nonzero().flatten()
        eps = None
        if len(done):
            eps = {"env_ids": done, "success": done == 0, "steps": self.period[done], "max_lift": torch.zeros(len(done)),
                   "gripper": torch.zeros(len(done)), "failure": torch.where(done == 0, 0, 3)}
        return {"x": torch.zeros(2)}, None, None, None, {"episodes": eps}


class ResetRecorder:
    resets: list

    def __init__(self):
        self.resets = []

    def __call__(self, obs):
        return torch.zeros(2, 8)

    def reset(self, env_ids=None):
        self.resets.append(None if env_ids is None else env_ids.tolist())


def test_run_episodes_quota_and_resets():
    from openarm_vla.rollout import run_episodes

    pol = ResetRecorder()
    recs = run_episodes(FakeEnv(), pol, 5, progress=False)
    # quota 3 for env 0, 2 for env 1: the faster env 0 does not crowd out env 1
    assert [r["env_id"] for r in recs].count(0) == 3 and [r["env_id"] for r in recs].count(1) == 2
    assert all(r["failure"] == ("success" if r["env_id"] == 0 else "timeout") for r in recs)
    assert pol.resets[0] is None and [0] in pol.resets and [1] in pol.resets


def test_first_episodes_latches_the_first_finish():
    """Env 0 finishes at step 2 (then again at 4, 6: auto-resets that must not count), env 1 at step 3."""
    from openarm_vla.rollout import first_episodes

    env, pol, seen = FakeEnv(), ResetRecorder(), []
    out = first_episodes(env, pol, env.reset()[0], on_step=lambda step, active: seen.append(active.tolist()))
    assert out.finish_step.tolist() == [2, 3] and out.success.tolist() == [True, False] and out.steps == 3
    assert [r["steps"] for r in out.records] == [2, 3]
    assert seen == [[True, True], [True, True], [False, True]]  # env 0 no longer counts at step 3
    # only env 1 asked for, and a step cap: env 1 is cut at 2 steps (unfinished: finish_step = the cap)
    out = first_episodes(env, pol, env.reset()[0], env_ids=torch.tensor([1]), max_steps=2)
    assert out.finish_step.tolist() == [0, 2] and out.records == [None, None] and not out.success.any()


def _run_eval(run_script, tmp_path, policy, extra=()):
    out = tmp_path / policy.replace(":", "_").replace("/", "_")
    return run_script("evaluate.py", "--policy", policy, "--output", str(out), *extra), out


def test_clips_show_a_success_and_a_failure_first(tmp_path):
    """Two filmed envs, env 1 finishing first: each env's frames go to its own clip, in order of finish, and the
    clips shown lead with a success and a failure (not the first failures of env 0)."""
    from types import SimpleNamespace

    from openarm_vla.eval.video import EpisodeVideo, pick_clips, write_clips

    film = EpisodeVideo([0, 1], episodes=2)
    outcome = {(0, 0): "dropped", (0, 1): "timeout", (1, 0): "success", (1, 1): "success"}
    done = {0: 0, 1: 0}
    for t in range(1, 9):
        rgb = torch.stack([torch.full((4, 4, 3), 10 * e + t, dtype=torch.uint8) for e in (0, 1, 2)])
        ends = [e for e in (0, 1) if t % (e + 2) == 0 and done[e] < 2]  # env 0 ends at t = 2, 4; env 1 at 3, 6
        eps = [{"env_id": e, "success": outcome[e, done[e]] == "success", "failure": outcome[e, done[e]]} for e in ends]
        for e in ends:
            done[e] += 1
        film(SimpleNamespace(obs={"policy": {"front_rgb": rgb}}, episodes=eps))
    assert film.finished
    assert [(c["env_id"], c["failure"]) for c in film.clips] == [(0, "dropped"), (1, "success"), (0, "timeout"), (1, "success")]
    assert [c["frames"][:, 0, 0, 0].tolist() for c in film.clips] == [[1, 2], [11, 12, 13], [3, 4], [14, 15, 16]]
    picked = pick_clips(film.clips, 3)
    assert [c["failure"] for c in picked] == ["success", "dropped", "success"]
    assert pick_clips(film.clips, 0) == []
    paths = write_clips(picked[:2], tmp_path, fps=10)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["episode_0_success.mp4", "episode_1_dropped.mp4"]
    assert read_mp4_frames(paths[0]) == 3


def test_evaluate_missing_checkpoint(tmp_path, script_main, capsys):
    assert script_main("evaluate.py", "--policy", str(tmp_path / "nope"), "--output", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint directory not found" in err[0]


def test_evaluate_wrong_action_dim(tmp_path, script_main, capsys):
    from openarm_vla.vla import ByteTokenizer, OpenVLAForActionPrediction, get_preset, save_checkpoint

    ck = tmp_path / "ck7"
    save_checkpoint(OpenVLAForActionPrediction(get_preset("tiny", action_dim=7)), ck, ByteTokenizer())
    assert script_main("evaluate.py", "--policy", str(ck), "--output", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "action_dim 7" in err and "needs 8" in err


@pytest.mark.sim
@pytest.mark.parametrize("policy", ["random", "preset:tiny"])
def test_evaluate_script(tmp_path, policy, run_script):
    n_eps = 3
    r, out = _run_eval(run_script, tmp_path, policy, ["--num_episodes", str(n_eps), "--num_envs", "2", "--image_size", "64",
                                          "--max_steps", "15", "--video", "1", "--device", "cpu", "--no_progress"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    s, eps = res["summary"], res["episodes"]
    assert len(eps) == n_eps == s["num_episodes"]
    assert sum(s["failure_counts"].values()) == n_eps
    assert s["failure_counts"]["success"] == s["successes"] == sum(e["success"] for e in eps)
    assert set(s["failure_counts"]) == set(CATS)
    assert 0.0 <= s["ci95"][0] <= s["success_rate"] <= s["ci95"][1] <= 1.0
    assert all(1 <= e["steps"] <= 15 and e["failure"] in CATS for e in eps)
    assert sorted(e["env_id"] for e in eps) == [0, 0, 1]
    assert s["policy"] == policy and s["env_steps_per_s"] > 0 and s["wall_time_s"] > 0
    assert "| outcome | episodes | share |" in r.stdout
    (video,) = (out / "videos").glob("episode_0_*.mp4")
    assert video.name in {f"episode_0_{c}.mp4" for c in CATS} and s["videos"] == [str(video)]
    assert read_mp4_frames(video) > 0
