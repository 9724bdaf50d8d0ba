"""DemoDataset: exact windows, end-of-episode padding, normalization, workers, LRU, errors."""

import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from openarm_vla.data.dataset import DemoDataset
from openarm_vla.data.hdf5_format import DemoFileError, DemoWriter
from openarm_vla.data.statistics import write_dataset_statistics

H, W = 4, 6


def act(d, t):
    """Action of demo d at step t: distinct, exactly representable in float32."""
    return np.float32(d * 100 + t) + np.arange(8, dtype=np.float32) / 8


def write_demos(path, lengths, first_demo=0, success=None):
    with DemoWriter(path, instruction="pick up the box", action_dim=None) as w:
        for i, T in enumerate(lengths):
            d = first_demo + i
            w.write_episode(
                obs={
                    "front_rgb": np.stack([np.full((H, W, 3), 10 * d + t, np.uint8) for t in range(T)]),
                    "joint_pos": np.stack([np.full(9, d + t / 10) for t in range(T)]),
                },
                actions=np.stack([act(d, t) for t in range(T)]),
                success=True if success is None else success[i],
                instruction="lift the box" if d == 1 else None,
            )
    return path


@pytest.fixture
def demo_file(tmp_path):
    return write_demos(tmp_path / "two.hdf5", [3, 5])


def test_windows_and_padding_exact(demo_file):
    ds = DemoDataset(demo_file, chunk_size=4)
    assert len(ds) == 8 and ds.num_demos == 2
    expected_locs = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    for i, (d, t) in enumerate(expected_locs):
        item = ds[i]
        assert (item["demo_index"], item["t"]) == (d, t)
        T = 3 if d == 0 else 5
        steps = [min(t + k, T - 1) for k in range(4)]  # repeat the last action past the end
        np.testing.assert_array_equal(item["actions"].numpy(), np.stack([act(d, s) for s in steps]))
        assert item["action_pad_mask"].tolist() == [t + k >= T for k in range(4)]
        assert item["actions"].dtype == torch.float32 and item["actions"].shape == (4, 8)
        assert item["image"].dtype == torch.uint8 and item["image"].shape == (H, W, 3)
        assert torch.all(item["image"] == 10 * d + t)
        assert item["proprio"].dtype == torch.float32
        np.testing.assert_allclose(item["proprio"].numpy(), np.full(9, d + t / 10, np.float32))
        assert item["instruction"] == ("lift the box" if d == 1 else "pick up the box")
    assert ds[2]["action_pad_mask"].tolist() == [False, True, True, True]
    assert ds[-1]["t"] == 4 and ds[-1]["demo_index"] == 1
    with pytest.raises(IndexError):
        ds[8]
    assert ds.demo_info(1) == {"path": str(demo_file), "name": "demo_1", "length": 5, "success": True,
                               "instruction": "lift the box"}


def test_chunk_longer_than_episode_and_no_proprio(demo_file):
    ds = DemoDataset(demo_file, chunk_size=6, proprio_key=None)
    item = ds[0]
    assert "proprio" not in item
    assert item["action_pad_mask"].tolist() == [False] * 3 + [True] * 3
    np.testing.assert_array_equal(item["actions"][3:].numpy(), np.stack([act(0, 2)] * 3))


def test_multiple_files_success_filter_and_lru(tmp_path):
    a = write_demos(tmp_path / "a.hdf5", [3, 5])
    b = write_demos(tmp_path / "b.hdf5", [2, 4], first_demo=2, success=[False, True])
    ds = DemoDataset([a, b], chunk_size=2, max_open_files=1)
    assert len(ds) == 3 + 5 + 2 + 4 and ds.num_demos == 4
    item = ds[8]  # first step of b/demo_0 (demo 2)
    assert item["demo_index"] == 2 and item["t"] == 0
    np.testing.assert_array_equal(item["actions"].numpy(), np.stack([act(2, 0), act(2, 1)]))
    for i in (0, 9, 1, 12):  # alternate files; never more than one handle open
        ds[i]
        assert len(ds._handles) == 1

    ok = DemoDataset([a, b], chunk_size=2, success_only=True)
    assert ok.num_demos == 3 and len(ok) == 3 + 5 + 4
    assert ok.demo_info(2)["name"] == "demo_1" and ok.demo_info(2)["path"] == str(b)
    assert torch.all(ok[8]["image"] == 30)  # b/demo_1 holds demo 3 (image value 10 * 3 + t)


def test_whole_dataset_in_memory_equals_the_items(tmp_path):
    """``load_arrays`` (SFT's in-memory path) holds, row for row, what the items serve: two files, a skipped
    failed demo, demos of different lengths and instructions; normalized actions as the items normalize them."""
    a = write_demos(tmp_path / "a.hdf5", [3, 5])
    b = write_demos(tmp_path / "b.hdf5", [2, 4], first_demo=2, success=[False, True])
    write_dataset_statistics(a)
    for normalize in (False, True):
        ds = DemoDataset([a, b], chunk_size=2, success_only=True, normalize=normalize)
        arr = ds.load_arrays()
        assert arr["image"].shape == (len(ds), H, W, 3) and arr["image"].dtype == np.uint8
        assert arr["actions"].dtype == np.float32 and arr["proprio"].dtype == np.float32
        assert arr["instructions"] == ["lift the box", "pick up the box"]
        for i in range(len(ds)):
            item = ds[i]
            d, t = item["demo_index"], item["t"]
            np.testing.assert_array_equal(arr["image"][i], item["image"].numpy())
            np.testing.assert_array_equal(arr["actions"][i], item["actions"][0].numpy())
            np.testing.assert_array_equal(arr["proprio"][i], item["proprio"].numpy())
            assert arr["episode_end"][i] == i - t + ds.demo_info(d)["length"] - 1
            assert arr["instructions"][arr["instruction"][i]] == item["instruction"]
    assert "proprio" not in DemoDataset(a, chunk_size=2, proprio_key=None).load_arrays()


def test_normalization_with_stats(tmp_path):
    h5 = tmp_path / "n.hdf5"
    rng = np.random.default_rng(0)
    with DemoWriter(h5, instruction="x") as w:
        for T in (20, 30):
            w.write_episode(obs={"front_rgb": np.zeros((T, 2, 2, 3), np.uint8), "joint_pos": np.zeros((T, 9))},
                            actions=rng.uniform(-0.5, 0.7, size=(T, 8)))
    write_dataset_statistics(h5)
    raw = DemoDataset(h5, chunk_size=3)
    norm = DemoDataset(h5, chunk_size=3, normalize=True)
    all_actions = np.concatenate([raw[i]["actions"][:1].numpy() for i in range(len(raw))])
    q01, q99 = np.quantile(all_actions, 0.01, axis=0), np.quantile(all_actions, 0.99, axis=0)
    for i in (0, 25, 49):
        a = raw[i]["actions"].numpy()
        expected = np.clip(2 * (a - q01) / (q99 - q01) - 1, -1, 1)
        np.testing.assert_allclose(norm[i]["actions"].numpy(), expected, atol=1e-5)
    assert float(norm[0]["actions"].abs().max()) <= 1.0
    with pytest.raises(FileNotFoundError, match="dataset statistics file not found"):
        DemoDataset(h5, normalize=True, stats_path=tmp_path / "missing.json")


def test_dataloader_two_workers_and_pickle(demo_file):
    ds = DemoDataset(demo_file, chunk_size=4)
    ds[0]  # open a handle in the parent before forking workers
    loader = DataLoader(ds, batch_size=3, num_workers=2, shuffle=False)
    batches = list(loader)
    assert [b["actions"].shape[0] for b in batches] == [3, 3, 2]
    actions = torch.cat([b["actions"] for b in batches])
    images = torch.cat([b["image"] for b in batches])
    assert torch.equal(actions, torch.stack([ds[i]["actions"] for i in range(len(ds))]))
    assert images.shape == (8, H, W, 3) and images.dtype == torch.uint8
    assert sum((b["instruction"] for b in batches), []) == ["pick up the box"] * 3 + ["lift the box"] * 5
    assert torch.cat([b["t"] for b in batches]).tolist() == [0, 1, 2, 0, 1, 2, 3, 4]

    clone = pickle.loads(pickle.dumps(ds))  # what spawn-started workers receive
    assert len(clone._handles) == 0
    assert torch.equal(clone[5]["actions"], ds[5]["actions"])


def test_errors_name_file_demo_and_key(demo_file, tmp_path):
    with pytest.raises(DemoFileError, match=r"nope\.hdf5: file not found"):
        DemoDataset(tmp_path / "nope.hdf5")
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(DemoFileError, match=r"bad\.hdf5: not an HDF5 file or corrupt"):
        DemoDataset([demo_file, bad])
    with pytest.raises(DemoFileError, match=r"two\.hdf5: data/demo_0: missing dataset 'obs/wrist_rgb'"):
        DemoDataset(demo_file, image_key="wrist_rgb")
    with pytest.raises(DemoFileError, match=r"expected \[3, 7\]"):
        DemoDataset(demo_file, action_dim=7)

    ds = DemoDataset(demo_file)
    with h5py.File(demo_file, "a") as f:  # the file changes after the index was built
        del f["data/demo_1/obs/front_rgb"]
    with pytest.raises(DemoFileError, match=r"two\.hdf5: data/demo_1: missing 'obs/front_rgb'"):
        ds[4]
    assert ds[0]["t"] == 0

    noinstr = tmp_path / "noinstr.hdf5"
    with h5py.File(noinstr, "w") as f:  # a bare Isaac Lab recorder file: no instruction anywhere
        f.create_group("data").attrs["env_args"] = '{"env_name": "X", "type": 2}'
        g = f.create_group("data/demo_0")
        g.attrs["num_samples"] = 2
        g["actions"] = np.zeros((2, 8), np.float32)
        g["obs/front_rgb"] = np.zeros((2, 2, 2, 3), np.uint8)
        g["obs/joint_pos"] = np.zeros((2, 9), np.float32)
    with pytest.raises(DemoFileError, match=r"noinstr\.hdf5: data/demo_0: no instruction"):
        DemoDataset(noinstr)
    assert DemoDataset(noinstr, instruction="grab it")[1]["instruction"] == "grab it"
