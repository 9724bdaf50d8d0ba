"""Dataset statistics: hand-computed values, OpenVLA file layout, atomic write, load errors."""

import json
import math

import numpy as np
import pytest
import torch

from openarm_vla.data.hdf5_format import DemoFileError, DemoWriter
from openarm_vla.data.statistics import (
    StatisticsKeyError,
    compute_action_stats,
    load_dataset_statistics,
    write_dataset_statistics,
)


def test_compute_action_stats_hand_values():
    # column 0 is 0..4, column 1 is 10..50 (step 10), split over two trajectories
    a1 = np.array([[0.0, 10.0], [1.0, 20.0]])
    a2 = torch.tensor([[2.0, 30.0], [3.0, 40.0], [4.0, 50.0]])
    s = compute_action_stats([a1, a2])
    assert s["num_transitions"] == 5 and s["num_trajectories"] == 2
    assert s["mean"] == pytest.approx([2.0, 30.0])
    assert s["std"] == pytest.approx([math.sqrt(2.0), 10 * math.sqrt(2.0)])  # population std (ddof=0)
    assert s["min"] == [0.0, 10.0] and s["max"] == [4.0, 50.0]
    # np.quantile linear interpolation: position q * (n - 1) = 0.04 and 3.96
    assert s["q01"] == pytest.approx([0.04, 10.4])
    assert s["q99"] == pytest.approx([3.96, 49.6])
    assert all(isinstance(v, float) for v in s["q01"])
    json.dumps(s)  # plain JSON types

    with pytest.raises(ValueError, match="no transitions"):
        compute_action_stats([])
    with pytest.raises(ValueError, match="dim mismatch"):
        compute_action_stats([np.zeros((2, 2)), np.zeros((2, 3))])


def _write(path, actions_list, success_list):
    with DemoWriter(path, instruction="pick up the box") as w:
        for i, (a, ok) in enumerate(zip(actions_list, success_list)):
            T = len(a)
            w.write_episode(
                obs={"joint_pos": np.full((T, 9), float(i)), "front_rgb": np.zeros((T, 2, 2, 3), np.uint8)},
                actions=a,
                success=ok,
            )


def test_write_dataset_statistics_layout(tmp_path):
    h5 = tmp_path / "run" / "demos.hdf5"
    h5.parent.mkdir()
    a0 = np.linspace(-1, 1, 8 * 4).reshape(4, 8)
    a1 = np.full((2, 8), 0.5)
    _write(h5, [a0, a1], [True, False])

    out = write_dataset_statistics(h5)
    assert out == h5.parent / "dataset_statistics.json"
    assert [p.name for p in h5.parent.iterdir() if ".tmp" in p.name] == []
    content = json.loads(out.read_text())
    assert list(content) == ["openarm_box_grasp"]
    entry = content["openarm_box_grasp"]
    assert entry["num_transitions"] == 6 and entry["num_trajectories"] == 2
    both = np.concatenate([a0, a1]).astype(np.float32).astype(np.float64)
    for k, ref in [("q01", np.quantile(both, 0.01, axis=0)), ("q99", np.quantile(both, 0.99, axis=0)),
                   ("mean", both.mean(0)), ("std", both.std(0)), ("min", both.min(0)), ("max", both.max(0))]:
        np.testing.assert_allclose(entry["action"][k], ref, rtol=1e-6, err_msg=k)
    assert entry["action"]["mask"] == [True] * 8
    # proprio: joint_pos rows are 0 (4 steps) and 1 (2 steps)
    assert entry["proprio"]["mean"] == pytest.approx([2 / 6] * 9)
    assert entry["proprio"]["max"] == [1.0] * 9

    ok_only = write_dataset_statistics(h5, key="succ", out_path=tmp_path / "s.json", success_only=True)
    e2 = load_dataset_statistics(ok_only, key="succ")
    assert e2["num_trajectories"] == 1 and e2["num_transitions"] == 4
    assert e2["proprio"]["max"] == [0.0] * 9

    # load by directory, default key
    assert load_dataset_statistics(h5.parent)["action"]["q99"] == entry["action"]["q99"]


def test_statistics_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*dataset statistics file not found"):
        load_dataset_statistics(tmp_path / "nowhere" / "dataset_statistics.json")
    p = tmp_path / "dataset_statistics.json"
    p.write_text(json.dumps({"other_ds": {"action": {"q01": [0], "q99": [1]}}}))
    msg = r"no statistics for dataset key 'openarm_box_grasp' \(available: other_ds\)"
    with pytest.raises(StatisticsKeyError, match=msg):
        load_dataset_statistics(p)
    assert load_dataset_statistics(p, key=None)["action"]["q99"] == [1]
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_dataset_statistics(p)

    h5 = tmp_path / "d.hdf5"
    _write(h5, [np.zeros((2, 8))], [False])
    with pytest.raises(DemoFileError, match="no successful episodes"):
        write_dataset_statistics(h5, success_only=True)
    with pytest.raises(DemoFileError, match=r"d\.hdf5: data/demo_0: missing dataset 'obs/eef_pos'"):
        write_dataset_statistics(h5, proprio_key="eef_pos")
    assert p.read_text() == "{not json"  # failed computations leave the existing file untouched
