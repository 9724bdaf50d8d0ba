"""SFT and GRPO on the real env with the tiny preset (CPU): SFT's loss falls on generated demos, GRPO runs two
iterations with dynamic sampling exercised, both resume after SIGKILL and reproduce the uninterrupted run, the
metrics file has the documented keys, bad input gets one line."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, VISION
from helpers import TINY_ENV, popen_train

GRPO_KEYS = {"rollout/success_rate", "rollout/kept_groups", "rollout/rounds", "rollout/mean_finish_step", "policy/loss",
             "policy/entropy", "policy/approx_kl", "policy/clip_frac_low", "policy/clip_frac_high", "policy/grad_norm",
             "policy/lr", "perf/rollout_s", "perf/rollout_policy_s", "perf/update_s", "perf/env_steps_per_s"}
EVAL_KEYS = {"eval/success", "eval/ci_low", "eval/ci_high"}


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _popen(args: list[str], log: Path, forced: bool = False) -> subprocess.Popen:
    return popen_train(args, log, forced, append=False)


def _run(args, log: Path, forced=False, timeout=900) -> None:
    proc = _popen(args, log, forced)
    assert proc.wait(timeout=timeout) == 0, log.read_text()[-4000:]


def _kill_after(args, log: Path, marker: Path, forced=False, timeout=900) -> None:
    """Start a run and SIGKILL it once ``marker`` exists (mid-run: the next iteration is under way)."""
    proc = _popen(args, log, forced)
    deadline = time.time() + timeout
    while not marker.exists():
        assert proc.poll() is None, "the run ended before it could be killed:\n" + log.read_text()[-3000:]
        assert time.time() < deadline
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    """Four scripted-expert demos recorded from the shared vision env (in-process, through DemoRecorder)."""
    from conftest import make_env

    from openarm_vla.data.hdf5_format import DemoWriter
    from openarm_vla.data.recorder import DemoRecorder
    from openarm_vla.data.statistics import write_dataset_statistics
    from openarm_vla.policies import make_policy
    from openarm_vla.rollout import step_loop

    path = tmp_path_factory.mktemp("demos") / "demos.hdf5"
    env = make_env(**VISION)
    with DemoWriter(path, instruction=env.cfg.instruction) as w:
        rec = DemoRecorder(env, w, num_demos=4, max_episodes=12)
        obs, _ = env.reset(seed=0)  # the same demos whichever tests ran before on the shared env
        rec.begin(obs)
        step_loop(env, make_policy("expert", env), obs, rec)
    assert rec.written == 4
    write_dataset_statistics(path)
    return path


SFT_ARGS = ["--algo", "sft", "--preset", "tiny", "--device", "cpu", "agent.batch_size=64", "agent.lr=2e-3",
            "agent.warmup_steps=5", "agent.min_lr=2e-3", "agent.log_every=5", "agent.eval_episodes=0",
            "agent.augment.enabled=false", "agent.proprio=true", "agent.action_frame=delta", *TINY_ENV]


@pytest.mark.sim
def test_sft_loss_falls_and_resumes_after_sigkill(demos, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = [*SFT_ARGS, "--dataset", str(demos), "--max_iterations", "40", "agent.save_every=10"]
    _run([*args, "--output", str(a)], tmp_path / "a.log")
    recs = _records(a)
    assert [r["iteration"] for r in recs] == list(range(5, 45, 5))
    assert {"sft/loss", "sft/token_acc", "sft/lr", "sft/grad_norm", "perf/samples_per_s"} <= set(recs[0])
    # a random model predicts ~uniform bins, log(256) = 5.55 nats; 40 steps learn at least the per-dim marginals
    losses = [r["sft/loss"] for r in recs]
    late = sum(losses[-3:]) / 3
    assert late < math.log(256) - 0.35 and late < losses[0] - 0.1, losses
    assert (a / "curve.png").stat().st_size > 1000 and list((a / "tb").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (a / "checkpoints").iterdir()) == ["iter_000020", "iter_000030", "iter_000040"]
    from openarm_vla.policies.vla import checkpoint_vla

    vla = checkpoint_vla(a / "final", num_envs=2, device="cpu")  # what evaluate.py --policy DIR/final loads
    assert vla.stats is not None and len(vla.stats["q01"]) == 8  # actions are un-normalized with the demos' bounds

    _kill_after([*args, "--output", str(b)], tmp_path / "b.log", b / "checkpoints" / "iter_000020")
    assert not (b / "final").exists()
    _run([*args, "--output", str(b), "--resume"], tmp_path / "b2.log")
    rb = _records(b)
    assert [r["iteration"] for r in rb] == list(range(5, 45, 5))  # each step once: later lines were dropped on resume
    for ra_, rb_ in zip(recs, rb):
        assert rb_["sft/loss"] == pytest.approx(ra_["sft/loss"], rel=1e-6, abs=1e-7), (ra_["iteration"], ra_, rb_)


GRPO_ARGS = ["--algo", "grpo", "--num_envs", "4", "--device", "cpu", "env.group_size=2", "agent.eval_episodes=4",
             "agent.max_rollout_steps=24", "agent.max_rounds=2", "agent.batch_size=2", "agent.micro_batch_size=6",
             "agent.lr=1e-4", "agent.warmup_steps=3", "agent.save_every=1", "agent.eval_videos=1", *TINY_ENV]


@pytest.mark.sim
def test_grpo_dynamic_sampling_metrics_and_resume_after_sigkill(demos, tmp_path):
    # an SFT checkpoint to start from (a few steps; GRPO's start point, not a good policy)
    sft = tmp_path / "sft"
    _run([*SFT_ARGS, "--dataset", str(demos), "--max_iterations", "5", "--output", str(sft)], tmp_path / "sft.log")
    a, b = tmp_path / "a", tmp_path / "b"
    args = [*GRPO_ARGS, "--init", str(sft / "final"), "--max_iterations", "2"]
    _run([*args, "--output", str(a)], tmp_path / "a.log", forced=True)
    recs = _records(a)
    assert [r["iteration"] for r in recs] == [0, 1, 2, 2]  # validation before, two iterations, final validation
    assert EVAL_KEYS <= set(recs[0]) and EVAL_KEYS <= set(recs[-1])
    assert recs[0]["perf/eval_s"] > 0 and recs[-1]["perf/eval_s"] > 0  # the validations' wall time, attributed
    for r in recs[1:3]:
        assert GRPO_KEYS <= set(r), sorted(GRPO_KEYS - set(r))
        # env 0 of group (0, 1) succeeds at step 5, group (2, 3) never: each round keeps one of its two groups, so
        # dynamic sampling rolls out a second round to fill B = 2
        assert r["rollout/kept_groups"] == 2 and r["rollout/rounds"] == 2
        assert r["rollout/success_rate"] == pytest.approx(2 / 8)
        assert r["policy/trajectories"] == 4 and r["policy/grad_norm"] > 0 and r["adv/std"] > 0
        assert r["policy/ratio_dev_first_minibatch"] < 1e-5  # recomputed old log-probs == the first forward's
        assert 0 < r["perf/rollout_policy_s"] < r["perf/rollout_s"]  # the policy's share; the rest is the env
    # 4 trajectories / batch_size 2 = 2 optimizer steps per iteration, warm-up over 3: the last step of iteration 1
    # ran at 2/3 of the LR, iteration 2 at the full LR (after a resume too: the scheduler is in the checkpoint)
    assert [r["policy/lr"] for r in recs[1:3]] == pytest.approx([2e-4 / 3, 1e-4])
    assert (a / "curve.png").stat().st_size > 1000 and list((a / "videos").glob("*.mp4"))
    assert (a / "final" / "config.json").is_file()

    _kill_after([*args, "--output", str(b)], tmp_path / "b.log", b / "checkpoints" / "iter_000001", forced=True)
    _run([*args, "--output", str(b), "--resume"], tmp_path / "b2.log", forced=True)
    rb = _records(b)
    assert [r["iteration"] for r in rb] == [0, 1, 2, 2]  # ends at the same iteration count, no line twice
    for key in sorted(GRPO_KEYS | {"policy/entropy", "adv/mean"}):
        if key.startswith("perf/"):
            continue
        assert rb[2][key] == pytest.approx(recs[2][key], rel=1e-5, abs=1e-6), key  # the resumed next iteration

    # the checkpoint of iteration 1 as a resumable export (bf16 shards, no optimizer moments: what travels between
    # machines) and the metrics file in another run directory: --resume there continues the run and its draws;
    # AdamW starts afresh and its LR warms up again (2 of 3 warm-up steps in iteration 2)
    d = tmp_path / "d"
    export = [sys.executable, "scripts/export_policy.py", "--resumable", str(a / "checkpoints" / "iter_000001"),
              str(d / "checkpoints" / "iter_000001"), "--max_shard_mb", "1"]
    out = subprocess.run(export, cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "exts" / "openarm_vla")})
    assert out.returncode == 0 and "resumable" in out.stdout, out.stdout + out.stderr
    assert len(list((d / "checkpoints" / "iter_000001").glob("*.safetensors"))) > 1  # shards
    (d / "metrics.jsonl").write_text((a / "metrics.jsonl").read_text())  # travels beside it; resume drops later rows
    _run([*args, "--output", str(d), "--resume"], tmp_path / "d.log", forced=True)
    assert "without the optimizer's moments: AdamW starts afresh" in (tmp_path / "d.log").read_text()
    rd = _records(d)
    assert [r["iteration"] for r in rd] == [0, 1, 2, 2]
    assert rd[1]["policy/loss"] == recs[1]["policy/loss"]
    assert rd[2]["policy/lr"] == pytest.approx(1e-4 * 2 / 3)
    assert rd[2]["rollout/success_rate"] == recs[2]["rollout/success_rate"] and rd[2]["policy/grad_norm"] > 0

    # agent.parallel=fsdp in one process (a group of one, no torchrun): FSDP2's code path on one device, rollouts on
    # its unsharded replica, gives the plain run's numbers (fp32 on the CPU)
    c = tmp_path / "c"
    _run([*args, "agent.parallel=fsdp", "--output", str(c)], tmp_path / "c.log", forced=True)
    rc = _records(c)
    assert [r["iteration"] for r in rc] == [0, 1, 2, 2] and "world_size: 1" in (c / "config.yaml").read_text()
    assert "[dist] fsdp over 1 process(es)" in (tmp_path / "c.log").read_text()
    for key in sorted(GRPO_KEYS | {"policy/entropy", "adv/mean", "eval/success"}):
        for i in (1, 2, 3):
            if key in recs[i] and not key.startswith("perf/"):
                assert rc[i][key] == pytest.approx(recs[i][key], rel=1e-4, abs=1e-6), (i, key)


@pytest.fixture
def synthetic_demos(tmp_path) -> Path:
    """A valid demo file written without a simulator (random frames), for the error paths."""
    import numpy as np

    from openarm_vla.data.hdf5_format import DemoWriter

    path = tmp_path / "synthetic.hdf5"
    rng = np.random.default_rng(0)
    with DemoWriter(path, instruction="pick up the box") as w:
        for _ in range(2):
            w.write_episode(obs={"front_rgb": rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8),
                                 "joint_pos": rng.uniform(-1, 1, (6, 8))}, actions=rng.uniform(-1, 1, (6, 8)), success=True)
    return path


def test_bad_input_gets_one_line(tmp_path, script_main, capsys, synthetic_demos):
    demos = synthetic_demos
    def err(*args) -> str:
        assert script_main("train.py", *args, "--device", "cpu", "--output", str(tmp_path / "o")) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    assert "needs demonstrations: --dataset" in err("--algo", "sft")
    assert "nope.hdf5: file not found" in err("--algo", "sft", "--dataset", str(tmp_path / "nope.hdf5"))
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"not hdf5")
    assert "bad.hdf5: not an HDF5 file or corrupt" in err("--algo", "sft", "--dataset", str(bad))
    from openarm_vla.data.hdf5_format import DemoWriter

    seven = tmp_path / "seven.hdf5"  # a 7-DoF robot's demos
    with DemoWriter(seven, instruction="x", action_dim=None) as w:
        w.write_episode(obs={"front_rgb": torch.zeros(3, 8, 8, 3, dtype=torch.uint8)}, actions=torch.zeros(3, 7), success=True)
    assert "seven.hdf5: data/demo_0: 'actions' has shape (3, 7), expected [3, 8]" in err("--algo", "sft", "--dataset", str(seven))
    assert "--num_envs=6, env.group_size=4: need num_envs % group_size == 0" in err(
        "--algo", "grpo", "--num_envs", "6", "env.group_size=4", "agent.eval_episodes=0")
    assert "not a checkpoint directory" in err("--algo", "grpo", "--init", str(tmp_path))
    from openarm_vla.vla import ByteTokenizer, OpenVLAForActionPrediction, get_preset, save_checkpoint

    ck = tmp_path / "ck7"
    save_checkpoint(OpenVLAForActionPrediction(get_preset("tiny", action_dim=7)), ck, ByteTokenizer())
    assert "action_dim 7, but the env needs 8" in err("--algo", "grpo", "--init", str(ck))
    save_checkpoint(OpenVLAForActionPrediction(get_preset("tiny")), tmp_path / "ck", ByteTokenizer())
    assert "a 'tiny' model, but agent.preset is 'small'" in err("--algo", "sft", "--init", str(tmp_path / "ck"),
                                                                 "--preset", "small", "--dataset", str(demos))
    assert "agent has no 'lrr'" in err("--algo", "grpo", "agent.lrr=1")
    assert "need '{instruction}' in prompt_template" in err("--algo", "sft", "--dataset", str(demos),
                                                            "agent.prompt_template='pick it up'")
    assert "the checkpoint has prompt_template='In: What action" in err(
        "--algo", "grpo", "--init", str(tmp_path / "ck"), "agent.prompt_template='{instruction}'", "agent.eval_episodes=0")
    assert "--dataset does not apply to --algo grpo" in err("--algo", "grpo", "--dataset", str(demos))


def test_nan_loss_stops_and_names_the_last_good_checkpoint(tmp_path):
    from openarm_vla.errors import TrainError
    from openarm_vla.train.checkpoints import check_finite, save_training_checkpoint
    from openarm_vla.vla import ByteTokenizer, OpenVLAForActionPrediction, get_preset

    check_finite(torch.tensor(1.0), 3, tmp_path)
    with pytest.raises(TrainError, match="non-finite loss .* at iteration 3; stopped, no checkpoint was written yet"):
        check_finite(torch.tensor(float("nan")), 3, tmp_path)
    model = OpenVLAForActionPrediction(get_preset("tiny"))
    for it in (1, 2, 3, 4):
        save_training_checkpoint(tmp_path, it, model, ByteTokenizer(), {}, {"x": it}, keep_last=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["iter_000003", "iter_000004"]
    with pytest.raises(TrainError, match="the last good checkpoint is .*iter_000004"):
        check_finite(torch.tensor(float("inf")), 5, tmp_path)


def test_sft_watch_names_the_first_non_finite_step_and_prompts_come_from_one_table(tmp_path):
    """SFT's loop reads no loss per step: FiniteWatch keeps the first non-finite step on the device and stops the
    run there when the loop checks (before a log or a checkpoint), later non-finite steps not overwriting it; the
    prompt table gives each row the ids and mask its instruction tokenizes to (padded to the table's longest)."""
    from types import SimpleNamespace

    from openarm_vla.errors import TrainError
    from openarm_vla.train.checkpoints import check_finite
    from openarm_vla.train.sft import FiniteWatch, PromptTable
    from openarm_vla.vla import ByteTokenizer, OpenVLAForActionPrediction, VLARunner, get_preset

    run = SimpleNamespace(check_finite=lambda loss, step: check_finite(loss, step, tmp_path))
    watch = FiniteWatch("cpu")
    watch.see(torch.tensor(1.5), 1)
    watch.check(run)  # all finite: no stop
    watch.see(torch.tensor(float("nan")), 2)
    watch.see(torch.tensor(float("inf")), 3)
    watch.see(torch.tensor(0.5), 4)
    with pytest.raises(TrainError, match=r"non-finite loss \(nan\) at iteration 2; stopped, no checkpoint"):
        watch.check(run)
    runner = VLARunner(OpenVLAForActionPrediction(get_preset("tiny")), ByteTokenizer(), num_envs=1)
    table = PromptTable(runner, ["pick up the box", "grab the small red carton"])
    ids, mask = table.rows(torch.tensor([1, 0, 1]))
    want_ids, want_mask = runner.prompt_ids(["grab the small red carton", "pick up the box", "grab the small red carton"])
    assert torch.equal(ids, want_ids) and torch.equal(mask, want_mask)


def _torchrun(args: list[str], log: Path, nproc: int = 2, forced: bool = False, timeout: int = 900) -> None:
    """``torchrun --nproc_per_node=N scripts/train.py ...`` on the CPU (gloo)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMNI_KIT_ACCEPT_EULA": "YES",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "exts" / "openarm_vla"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    script = ["scripts/train.py", *args]
    if forced:  # torchrun runs a file: the forced-success entry point goes in one
        entry = log.with_suffix(".py")
        entry.write_text(f"import helpers\nhelpers.run_train_forced({args!r}, env_ids=(0,), at_step=5)\n")
        script = [str(entry)]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--standalone", *script]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, timeout=timeout)
    assert proc.returncode == 0, log.read_text()[-4000:]


@pytest.mark.sim
def test_torchrun_two_processes_ddp_and_fsdp_sft_grpo_and_resume(demos, tmp_path):
    """2 processes (gloo): SFT and GRPO under DDP and under FSDP2 give the same numbers (the same seeds, so the
    same batches and rollouts: FSDP's sharded gradient reduction is the DDP all-reduce, and GRPO's gradient is the
    sum over ranks in both), and GRPO under FSDP with compiled decoder layers the same as without; rank 0 alone
    writes; resume needs the world size the run was written with."""
    sft_ddp, sft_fsdp = tmp_path / "sft_ddp", tmp_path / "sft_fsdp"
    sft = [*SFT_ARGS, "agent.save_every=5", "--dataset", str(demos), "--max_iterations", "10"]
    _torchrun([*sft, "agent.parallel=ddp", "--output", str(sft_ddp)], tmp_path / "sft_ddp.log")
    _torchrun([*sft, "agent.parallel=fsdp", "--output", str(sft_fsdp)], tmp_path / "sft_fsdp.log")
    ddp, fsdp = _records(sft_ddp), _records(sft_fsdp)
    assert [r["iteration"] for r in ddp] == [r["iteration"] for r in fsdp] == [5, 10]  # rank 0 alone writes
    for a, b in zip(ddp, fsdp):
        assert b["sft/loss"] == pytest.approx(a["sft/loss"], rel=1e-5)
        assert b["sft/grad_norm"] == pytest.approx(a["sft/grad_norm"], rel=1e-4)
    assert ddp[0]["perf/samples_per_s"] > 0 and (sft_fsdp / "final" / "config.json").is_file()
    from openarm_vla.vla.checkpoint import read_state_dict

    # FSDP's export: the fp32 weights gathered from the shards, the same as DDP's replica holds
    w_ddp, w_fsdp = (read_state_dict(r / "final", device="cpu")[0] for r in (sft_ddp, sft_fsdp))
    assert w_ddp.keys() == w_fsdp.keys() and all(w_fsdp[k].dtype == w_ddp[k].dtype for k in w_ddp)
    for k in w_ddp:  # per tensor (Adam amplifies rounding where a gradient is ~0; bf16 would show as ~1e-3)
        assert float((w_fsdp[k] - w_ddp[k]).norm()) <= 1e-4 * float(w_ddp[k].norm()) + 1e-6, k
    state = torch.load(sft_fsdp / "checkpoints" / "iter_000010" / "trainer_state.pt", weights_only=False)
    assert len(state["rng"]) == 2 and state["optimizer"]["state"]  # one RNG state per rank; the whole optimizer
    # resuming a 2-process run with 1 process is refused with one line
    r = subprocess.run([sys.executable, "scripts/train.py", *SFT_ARGS, "--dataset", str(demos), "--max_iterations", "15",
                        "--output", str(sft_fsdp), "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2 and "written by a run of 2 process(es); resume it with torchrun --nproc_per_node=2" in r.stderr
    _torchrun([*SFT_ARGS, "agent.parallel=fsdp", "--dataset", str(demos), "--max_iterations", "15", "--output",
               str(sft_fsdp), "--resume"], tmp_path / "sft_fsdp2.log")
    assert [r["iteration"] for r in _records(sft_fsdp)] == [5, 10, 15]

    # GRPO: one group per rank (envs 0, 1), env 0 forced to succeed -> one mixed group per rank, 2 in all. One
    # chunk per micro-batch: the ranks' first mini-batches hold trajectories of different lengths, so under FSDP
    # the rank with fewer micro-batches pads with zero-weight forwards
    # no LR warm-up here: it shrinks the first steps, and GRPO's loss, a cancellation to ~0 of O(1) per-token terms,
    # would then be mostly fp32 rounding (DDP 5.2229e-05 vs FSDP 5.2214e-05 with agent.warmup_steps=3)
    grpo = [*GRPO_ARGS, "--init", str(sft_fsdp / "final"), "--num_envs", "2", "agent.eval_episodes=2",
            "agent.max_rounds=1", "agent.micro_batch_size=1", "agent.warmup_steps=0"]
    runs = {}
    # fsdp_compiled: agent.compile under FSDP (the sharded layers and the rollout replica compiled; fp32 on the CPU)
    for kind, extra in (("ddp", []), ("fsdp", []), ("fsdp_compiled", ["agent.compile=true"])):
        runs[kind] = tmp_path / f"grpo_{kind}"
        _torchrun([*grpo, "--max_iterations", "1", f"agent.parallel={kind.split('_')[0]}", *extra, "--output",
                   str(runs[kind])], tmp_path / f"grpo_{kind}.log", forced=True)
    a, b, c = ([r for r in _records(runs[k]) if "policy/loss" in r][0] for k in ("ddp", "fsdp", "fsdp_compiled"))
    assert a["rollout/kept_groups"] == 2 and a["policy/trajectories"] == 4 and a["policy/grad_norm"] > 0
    assert a["rollout/success_rate"] == pytest.approx(0.5) and a["policy/optimizer_steps"] == 2
    for key in ("policy/grad_norm", "policy/approx_kl", "policy/entropy"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-9), key
        assert c[key] == pytest.approx(b[key], rel=1e-4, abs=1e-9), key
    assert "[grpo] compiled the model's rollout and update passes" in (tmp_path / "grpo_fsdp_compiled.log").read_text()
    # the loss is a cancellation: per-token terms of size |A| = 0.71 with advantages summing to zero leave ~2e-4, and
    # each term carries fp32 rounding (~1e-7). Over three runs of this test (its demos, hence its rollouts, depend on
    # the tests before it) DDP and FSDP differed by 4e-9 / 1.9e-8 / 3.0e-8 absolute, 2.4e-5 / 9.1e-5 / 1.2e-4 relative:
    # compared on the scale of its terms. An error in the objective shows at the loss's own scale, and in grad_norm.
    assert b["policy/loss"] == pytest.approx(a["policy/loss"], rel=1e-4, abs=1e-6)
    assert c["policy/loss"] == pytest.approx(b["policy/loss"], rel=1e-4, abs=1e-6)
    assert _records(runs["fsdp"])[-1]["eval/success"] == _records(runs["ddp"])[-1]["eval/success"]
    _torchrun([*grpo, "--max_iterations", "2", "agent.parallel=fsdp", "--output", str(runs["fsdp"]), "--resume"],
              tmp_path / "grpo_fsdp2.log", forced=True)
    assert [r["iteration"] for r in _records(runs["fsdp"]) if "policy/loss" in r or "policy/skipped" in r] == [1, 2]
    assert (runs["fsdp"] / "checkpoints" / "iter_000002").is_dir() and (runs["fsdp"] / "final" / "config.json").is_file()


@pytest.mark.sim
def test_torchrun_groups_that_do_not_divide_get_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMNI_KIT_ACCEPT_EULA": "YES"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                        "scripts/train.py", "--algo", "grpo", "--preset", "tiny", "--device", "cpu", "agent.num_groups=3",
                        "--output", str(tmp_path / "g")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "[train] error: agent.num_groups=3, 2 processes (WORLD_SIZE): need num_groups % world_size == 0 " \
           "(a group never spans ranks)" in r.stdout + r.stderr


def test_a_from_scratch_model_takes_the_agents_prompt_template_else_its_presets():
    from openarm_vla.tasks.factory import load_cfgs
    from openarm_vla.train.model_init import build_model
    from openarm_vla.vla import get_preset
    from openarm_vla.vla.config import INSTRUCTION_PROMPT, OPENVLA_PROMPT

    _, agent = load_cfgs("OpenArm-BoxGrasp", "sft_cfg_entry_point",
                         overrides=["agent.preset=tiny", "agent.prompt_template='do this: {instruction}'"])
    model, _, _ = build_model(agent, "cpu")
    assert model.config.prompt_template == "do this: {instruction}"
    _, agent = load_cfgs("OpenArm-BoxGrasp", "sft_cfg_entry_point", overrides=["agent.preset=tiny"])
    assert build_model(agent, "cpu")[0].config.prompt_template == OPENVLA_PROMPT
    assert get_preset("small").prompt_template == INSTRUCTION_PROMPT  # from scratch: no template words to pay for
    assert get_preset("openvla-oft-7b").prompt_template == OPENVLA_PROMPT  # what the published weights saw
