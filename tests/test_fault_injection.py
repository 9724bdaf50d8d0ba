"""Fault injection: SFT and GRPO (tiny, CPU) killed with SIGKILL at chosen and at random moments, several times per
run (in start-up before any checkpoint, in the first iteration, in the middle of a checkpoint write, anywhere), each
time restarted with the same command and ``--resume`` until the run exits 0. The result must be the uninterrupted
run's: the same final weights (hash), one metrics row per iteration and evaluation, the same metrics; no
leftover of a killed write survives; and a truncated newest checkpoint is named and skipped on resume."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import TINY_ENV, popen_train



def _popen(args: list[str], log: Path, forced: bool = False) -> subprocess.Popen:
    return popen_train(args, log, forced, append=True)


def _temp_checkpoint(run: Path) -> Path | None:
    root = run / "checkpoints"
    try:
        return next((p for p in root.iterdir() if p.name.startswith(".iter_") and ".tmp" in p.name), None)
    except FileNotFoundError:
        return None


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled every millisecond); False if it ended first."""
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            return False
        assert time.time() < deadline, "the moment to kill never came"
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return True


def _run_with_kills(args: list[str], run: Path, log: Path, moments: list, forced: bool = False) -> list[str]:
    """Start the run, kill it at each moment in turn (each a (name, ready) pair; a run that ended first skips it),
    then resume until it exits 0. Returns the names of the kills that happened."""
    killed = []
    for name, ready in moments:
        proc = _popen([*args, "--output", str(run), "--resume"], log, forced)
        if _kill_when(proc, ready):
            killed.append(name)
        else:
            assert proc.returncode == 0, log.read_text()[-3000:]
            return killed
    for _ in range(3):
        proc = _popen([*args, "--output", str(run), "--resume"], log, forced)
        if proc.wait(timeout=900) == 0:
            return killed
    raise AssertionError("the run never finished:\n" + log.read_text()[-3000:])


def _weights_hash(directory: Path) -> str:
    return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _after_start(seconds: float):
    """A moment ``seconds`` after the attempt started (the clock starts at the first poll, right after Popen)."""
    def ready():
        if not hasattr(ready, "t"):
            ready.t = time.time()
        return time.time() - ready.t >= seconds
    return ready


@pytest.fixture
def synthetic_demos(tmp_path) -> Path:
    """Demos with random frames, written without a simulator (SFT without evaluation needs no env)."""
    import numpy as np

    from openarm_vla.data.hdf5_format import DemoWriter
    from openarm_vla.data.statistics import write_dataset_statistics

    path = tmp_path / "demos.hdf5"
    rng = np.random.default_rng(0)
    with DemoWriter(path, instruction="pick up the box") as w:
        for _ in range(6):
            w.write_episode(obs={"front_rgb": rng.integers(0, 255, (30, 32, 32, 3), dtype=np.uint8),
                                 "joint_pos": rng.uniform(-1, 1, (30, 8))}, actions=rng.uniform(-1, 1, (30, 8)), success=True)
    write_dataset_statistics(path)
    return path


def test_sft_killed_at_any_moment_resumes_to_the_uninterrupted_result(synthetic_demos, tmp_path):
    args = ["--algo", "sft", "--preset", "tiny", "--device", "cpu", "--dataset", str(synthetic_demos), "--max_iterations",
            "60", "agent.batch_size=32", "agent.lr=2e-3", "agent.warmup_steps=5", "agent.log_every=5",
            "agent.save_every=10", "agent.keep_last=2", "agent.eval_episodes=0", "agent.augment.enabled=true", *TINY_ENV]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert _popen([*args, "--output", str(ref)], tmp_path / "ref.log").wait(timeout=900) == 0
    rng = random.Random(7)
    moments = [
        ("start-up, before any checkpoint", _after_start(1.0)),
        ("first iterations, before any checkpoint", lambda: (run / "metrics.jsonl").is_file()
         and (run / "metrics.jsonl").stat().st_size > 0 and not (run / "checkpoints").is_dir()),
        ("mid checkpoint write", lambda: _temp_checkpoint(run) is not None),
        ("at random", _after_start(rng.uniform(2, 12))),
        ("mid checkpoint write, again", lambda: _temp_checkpoint(run) is not None),
        ("at random, again", _after_start(rng.uniform(2, 12))),
    ]
    killed = _run_with_kills(args, run, tmp_path / "run.log", moments)
    log = (tmp_path / "run.log").read_text()
    assert {"start-up, before any checkpoint", "mid checkpoint write"} <= set(killed), (killed, log[-2000:])
    assert "no checkpoint in" in log and "starting from the beginning" in log  # --resume before the first checkpoint
    assert "left by a killed write" in log  # the half-written checkpoint of the mid-write kill was removed
    assert _temp_checkpoint(run) is None and not list(run.glob(".*.tmp*"))
    assert _weights_hash(run / "final") == _weights_hash(ref / "final")
    got, want = _records(run), _records(ref)
    assert [r["iteration"] for r in got] == [r["iteration"] for r in want] == list(range(5, 65, 5))
    for a, b in zip(got, want):
        assert a["sft/loss"] == b["sft/loss"] and a["sft/grad_norm"] == b["sft/grad_norm"], (a, b)

    # a damaged newest checkpoint: named and skipped, the run goes on from the one before and ends the same
    newest = sorted((run / "checkpoints").iterdir())[-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])
    (run / "final").rename(tmp_path / "final_before")  # pretend the run stopped before its end
    proc = _popen([*args, "--output", str(run), "--resume"], tmp_path / "damaged.log")
    assert proc.wait(timeout=900) == 0
    text = (tmp_path / "damaged.log").read_text()
    assert f"skipped {newest}: model.safetensors is 4096 bytes, the manifest says" in text, text[-2000:]
    assert _weights_hash(run / "final") == _weights_hash(ref / "final")


@pytest.mark.sim
def test_grpo_killed_at_any_moment_resumes_to_the_uninterrupted_result(synthetic_demos, tmp_path):
    """GRPO (env 0 of group (0, 1) forced to succeed: mixed groups, real updates) killed in start-up, in its first
    iteration, mid checkpoint and at random; the resumed run ends with the uninterrupted run's weights."""
    sft = tmp_path / "sft"
    sft_args = ["--algo", "sft", "--preset", "tiny", "--device", "cpu", "--dataset", str(synthetic_demos),
                "--max_iterations", "5", "agent.eval_episodes=0", "agent.proprio=false", "agent.action_frame=delta", *TINY_ENV]
    assert _popen([*sft_args, "--output", str(sft)], tmp_path / "sft.log").wait(timeout=900) == 0
    args = ["--algo", "grpo", "--num_envs", "4", "--device", "cpu", "--init", str(sft / "final"), "--max_iterations", "4",
            "env.group_size=2", "agent.eval_episodes=2", "agent.eval_every=2", "agent.max_rollout_steps=16",
            "agent.max_rounds=1", "agent.batch_size=2", "agent.micro_batch_size=4", "agent.lr=1e-4", "agent.save_every=1",
            "agent.keep_last=2", "agent.eval_videos=0", *TINY_ENV]
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert _popen([*args, "--output", str(ref)], tmp_path / "ref.log", forced=True).wait(timeout=900) == 0
    rng = random.Random(11)
    moments = [
        ("start-up, before any checkpoint", _after_start(3.0)),
        ("first iteration", lambda: (run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").stat().st_size > 0
         and not (run / "checkpoints").is_dir()),
        ("mid checkpoint write", lambda: _temp_checkpoint(run) is not None),
        ("at random", _after_start(rng.uniform(20, 60))),
    ]
    killed = _run_with_kills(args, run, tmp_path / "run.log", moments, forced=True)
    assert {"start-up, before any checkpoint", "mid checkpoint write"} <= set(killed), killed
    assert _temp_checkpoint(run) is None
    assert _weights_hash(run / "final") == _weights_hash(ref / "final")
    got, want = _records(run), _records(ref)
    assert [r["iteration"] for r in got] == [r["iteration"] for r in want] == [0, 1, 2, 3, 4, 4]
    for a, b in zip(got, want):
        for key in ("policy/loss", "policy/grad_norm", "eval/success", "rollout/success_rate"):
            assert a.get(key) == b.get(key), (a["iteration"], key, a.get(key), b.get(key))
