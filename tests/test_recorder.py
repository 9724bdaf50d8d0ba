"""The demo recorder's episode buffer and background writes, on hand-built rows (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from openarm_vla.data.hdf5_format import DemoWriter, read_episode
from openarm_vla.data.recorder import BackgroundWrites, EpisodeBuffer


def _row(t: int, n: int = 3) -> dict:
    """Step t's rows of n envs: every value says (step, env)."""
    env = torch.arange(n)
    return {"obs": {"rgb": (10 * t + env).to(torch.uint8)[:, None, None].expand(n, 2, 2).clone(),
                    "q": torch.stack([torch.full((n,), float(t)), env.float()], 1)},
            "actions": torch.full((n, 8), float(t))}


def test_episode_buffer_keeps_each_envs_rows_across_growth_and_restarts():
    """Grows by 2 rows at a time past 5 steps; env 1 restarts after step 1, env 2 after step 3: each episode reads
    back exactly its own steps, and a read is a copy (the next rows do not change it)."""
    buf = EpisodeBuffer(3, "cpu", grow_steps=2)
    first = None
    for t in range(6):
        buf.append(_row(t))
        if t == 1:
            buf.clear([1])
            first = buf.episode(0)
        if t == 3:
            buf.clear([2])
    assert buf.capacity == 6 and list(buf.lengths) == [6, 4, 2]
    ep0, ep1, ep2 = buf.episode(0), buf.episode(1), buf.episode(2)
    assert ep0["obs"]["q"][:, 0].tolist() == [0, 1, 2, 3, 4, 5] and ep1["obs"]["q"][:, 0].tolist() == [2, 3, 4, 5]
    assert ep2["obs"]["q"][:, 0].tolist() == [4, 5] and set(ep2["obs"]["q"][:, 1].tolist()) == {2.0}
    assert ep1["obs"]["rgb"][:, 0, 0].tolist() == [21, 31, 41, 51] and ep1["obs"]["rgb"].dtype == np.uint8
    assert ep1["actions"].shape == (4, 8) and ep1["actions"][:, 0].tolist() == [2, 3, 4, 5]
    assert first["obs"]["q"][:, 0].tolist() == [0, 1]  # read at step 1, unchanged by the steps after it


def test_episodes_read_back_together_in_batches_are_each_envs_own_rows():
    """Four envs' episodes (restarts after steps 2 and 4) read back together, in any order, in batches of one
    episode (max_bytes=1), two, or all: each is exactly its env's own steps, with its length."""
    buf = EpisodeBuffer(4, "cpu", grow_steps=3)
    for t in range(7):
        buf.append(_row(t, 4))
        if t == 2:
            buf.clear([1])
        if t == 4:
            buf.clear([3])
    steps = {0: list(range(7)), 1: [3, 4, 5, 6], 2: list(range(7)), 3: [5, 6]}
    row_bytes = 2 * 2 + 2 * 4 + 8 * 4  # rgb uint8 [2, 2], q float32 [2], actions float32 [8]
    for max_bytes in (1, row_bytes * 7 * 2, 1 << 30):
        order = [3, 0, 2, 1]
        for e, ep in zip(order, buf.episodes(order, max_bytes=max_bytes)):
            assert ep["obs"]["q"][:, 0].tolist() == steps[e] and set(ep["obs"]["q"][:, 1].tolist()) == {float(e)}
            assert ep["obs"]["rgb"][:, 0, 0].tolist() == [10 * t + e for t in steps[e]]
            assert ep["actions"].shape == (len(steps[e]), 8)
    assert buf.episodes([]) == []


def test_background_writes_name_in_order_and_raise_the_first_error(tmp_path):
    """Episodes written by the thread land as demo_<index> with their data; a bad episode's error reaches the loop
    at the next submit or at close, and nothing after it is written."""
    path = tmp_path / "d.hdf5"
    with DemoWriter(path, instruction="pick up the box") as w:
        bg = BackgroundWrites(w, depth=2)
        for i in range(4):
            bg.submit(obs={"q": np.full((3, 2), i, np.float32)}, actions=np.full((3, 8), i, np.float32), success=True,
                      demo_id=i)
        bg.close()
    for i in range(4):
        ep = read_episode(path, f"demo_{i}")
        assert ep["actions"].shape == (3, 8) and float(ep["actions"][0, 0]) == i
    with DemoWriter(tmp_path / "e.hdf5", instruction="pick up the box") as w:
        bg = BackgroundWrites(w)
        bg.submit(obs={"q": np.zeros((2, 2), np.float32)}, actions=np.zeros((3, 8), np.float32), demo_id=0)  # 2 != 3 rows
        bg.submit(obs={"q": np.zeros((3, 2), np.float32)}, actions=np.zeros((3, 8), np.float32), demo_id=1)
        with pytest.raises(ValueError, match="expected 3 rows"):
            bg.close()
        assert "demo_1" not in w._data
