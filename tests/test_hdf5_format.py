"""Isaac Lab recorder HDF5 layout: round trip, attrs, dtypes, compression, atomicity, errors."""

import json

import h5py
import numpy as np
import pytest
import torch

from openarm_vla.data.hdf5_format import (
    ACTION_SPACE,
    DemoFileError,
    DemoWriter,
    list_demos,
    read_env_args,
    read_episode,
    validate_file,
)
from openarm_vla.utils.io import temp_path

H = W = 16


def make_episode(T, seed=0):
    rng = np.random.default_rng(seed)
    root_pose = np.tile(np.array([0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0]), (T, 1))  # xyzw identity quat
    return dict(
        obs={
            "front_rgb": rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8),
            "joint_pos": rng.normal(size=(T, 9)),  # float64 -> stored float32
            "policy": {"last_action": rng.uniform(-1, 1, size=(T, 8)).astype(np.float32)},
        },
        actions=rng.uniform(-1, 1, size=(T, 8)),
        states={"articulation": {"robot": {"joint_position": rng.normal(size=(T, 9)), "root_pose": root_pose}}},
        initial_state={
            "articulation": {"robot": {"joint_position": rng.normal(size=(1, 9)), "root_pose": root_pose[:1]}}
        },
    )


@pytest.fixture
def two_demo_file(tmp_path):
    path = tmp_path / "demos.hdf5"
    eps = [make_episode(5, seed=1), make_episode(3, seed=2)]
    with DemoWriter(path, instruction="pick up the box", env_args={"num_envs": 2}) as w:
        assert w.write_episode(**eps[0], success=True, seed=11, source="scripted", info={"max_height": 0.2}) == "demo_0"
        assert w.write_episode(**eps[1], success=False, seed=None, instruction="lift the red box") == "demo_1"
    return path, eps


def test_round_trip_layout_and_dtypes(two_demo_file):
    path, eps = two_demo_file
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp file left
    with h5py.File(path, "r") as f:
        assert int(f.attrs["format_version"]) == 1
        data = f["data"]
        assert int(data.attrs["total"]) == 8
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "OpenArm-BoxGrasp" and env_args["type"] == 2
        assert env_args["instruction"] == "pick up the box" and env_args["num_envs"] == 2
        assert env_args["action_space"] == ACTION_SPACE
        assert sorted(data.keys()) == ["demo_0", "demo_1"]

        d0, d1 = data["demo_0"], data["demo_1"]
        assert int(d0.attrs["num_samples"]) == 5 and int(d1.attrs["num_samples"]) == 3
        assert int(d0.attrs["seed"]) == 11 and "seed" not in d1.attrs
        assert bool(d0.attrs["success"]) is True and bool(d1.attrs["success"]) is False
        assert d0.attrs["instruction"] == "pick up the box" and d1.attrs["instruction"] == "lift the red box"
        assert d0.attrs["source"] == "scripted" and json.loads(d0.attrs["info"]) == {"max_height": 0.2}

        img = d0["obs/front_rgb"]
        assert img.dtype == np.uint8 and img.shape == (5, H, W, 3)
        assert img.compression == "gzip" and img.compression_opts == 4 and img.chunks == (1, H, W, 3)
        for key in ("actions", "obs/joint_pos", "obs/policy/last_action",
                    "states/articulation/robot/joint_position", "initial_state/articulation/robot/root_pose"):
            assert d0[key].dtype == np.float32, key
            assert d0[key].compression is None, key
        assert isinstance(d0["states/articulation"], h5py.Group)
        assert d0["initial_state/articulation/robot/joint_position"].shape == (1, 9)
        np.testing.assert_array_equal(img[()], eps[0]["obs"]["front_rgb"])
        np.testing.assert_array_equal(d1["actions"][()], eps[1]["actions"].astype(np.float32))

    ep = read_episode(path, 0)
    assert ep["name"] == "demo_0" and ep["attrs"]["num_samples"] == 5 and ep["attrs"]["seed"] == 11
    np.testing.assert_array_equal(ep["obs"]["joint_pos"], eps[0]["obs"]["joint_pos"].astype(np.float32))
    np.testing.assert_array_equal(ep["obs"]["policy"]["last_action"], eps[0]["obs"]["policy"]["last_action"])
    np.testing.assert_array_equal(
        ep["states"]["articulation"]["robot"]["joint_position"],
        eps[0]["states"]["articulation"]["robot"]["joint_position"].astype(np.float32),
    )
    assert read_env_args(path)["env_name"] == "OpenArm-BoxGrasp"


def test_readable_by_isaaclab_handler(two_demo_file):
    from isaaclab.utils.datasets.hdf5_dataset_file_handler import HDF5DatasetFileHandler

    path, eps = two_demo_file
    handler = HDF5DatasetFileHandler()
    handler.open(str(path))
    try:
        assert handler.get_num_episodes() == 2
        assert handler.get_env_name() == "OpenArm-BoxGrasp"
        assert not handler.is_legacy_quaternion_format()
        ep = handler.load_episode("demo_0", device="cpu")
        assert ep.seed == 11 and bool(ep.success) is True and ep.env_id == "OpenArm-BoxGrasp"
        torch.testing.assert_close(ep.data["actions"], torch.tensor(eps[0]["actions"], dtype=torch.float32))
        assert ep.data["obs"]["front_rgb"].dtype == torch.uint8
        assert torch.equal(ep.data["obs"]["front_rgb"], torch.from_numpy(eps[0]["obs"]["front_rgb"]))
        # xyzw root pose must come back unchanged (no legacy wxyz conversion)
        root = ep.get_initial_state()["articulation"]["robot"]["root_pose"]
        torch.testing.assert_close(root, torch.tensor([[0.1, 0.2, 0.3, 0.0, 0.0, 0.0, 1.0]]))
        state1 = ep.get_state(1)["articulation"]["robot"]["joint_position"]
        assert state1.shape == (1, 9)
        assert ep.get_next_action().shape == (8,)
        assert handler.load_episode("demo_1", device="cpu").seed is None
    finally:
        handler.close()


def test_demo_order_is_numeric(tmp_path):
    path = tmp_path / "many.hdf5"
    with DemoWriter(path, instruction="x") as w:
        for i in range(12):
            w.write_episode(obs={}, actions=np.full((1, 8), i, dtype=np.float32))
    assert list_demos(path) == [f"demo_{i}" for i in range(12)]
    assert read_episode(path, "demo_10")["actions"][0, 0] == 10


@pytest.mark.parametrize("compression, expected, chunks", [("lzf", "lzf", (1, H, W, 3)), ("none", None, None)])
def test_image_compression_choice(tmp_path, compression, expected, chunks):
    """Compressed frames one chunk each (a frame reads alone); raw frames contiguous (whole demos read fastest)."""
    path = tmp_path / f"{compression}.hdf5"
    ep = make_episode(4, seed=3)
    with DemoWriter(path, instruction="x", image_compression=compression) as w:
        w.write_episode(**ep)
    with h5py.File(path, "r") as f:
        img = f["data/demo_0/obs/front_rgb"]
        assert img.compression == expected and img.chunks == chunks
    np.testing.assert_array_equal(read_episode(path, 0)["obs"]["front_rgb"], ep["obs"]["front_rgb"])
    with pytest.raises(ValueError, match="image_compression 'zstd'"):
        DemoWriter(tmp_path / "bad.hdf5", image_compression="zstd")
    assert not (tmp_path / "bad.hdf5").exists()


def test_torch_inputs_accepted(tmp_path):
    path = tmp_path / "t.hdf5"
    with DemoWriter(path, instruction="x") as w:
        w.write_episode(
            obs={"front_rgb": torch.zeros(2, 4, 4, 3, dtype=torch.uint8), "joint_pos": torch.ones(2, 9)},
            actions=torch.zeros(2, 8, dtype=torch.float64),
            states={"x": torch.arange(2)},
        )
    ep = read_episode(path, 0)
    assert ep["obs"]["front_rgb"].dtype == np.uint8 and ep["actions"].dtype == np.float32
    assert ep["states"]["x"].tolist() == [0, 1]  # integers are kept lossless


def test_temp_name_until_close_and_exception_leaves_nothing(tmp_path):
    path = tmp_path / "d.hdf5"
    tmp = temp_path(path)
    with pytest.raises(RuntimeError, match="boom"):
        with DemoWriter(path, instruction="x") as w:
            w.write_episode(**make_episode(2))
            assert tmp.exists() and not path.exists()
            raise RuntimeError("boom")
    assert not path.exists() and not tmp.exists()

    # a failed rewrite leaves the previous file intact
    with DemoWriter(path, instruction="x") as w:
        w.write_episode(**make_episode(2))
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with DemoWriter(path, instruction="x") as w:
            w.write_episode(**make_episode(4))
            raise KeyboardInterrupt
    assert path.read_bytes() == before and not tmp.exists()


def test_bad_episode_rejected_without_partial_group(tmp_path):
    path = tmp_path / "d.hdf5"
    with DemoWriter(path, instruction="x") as w:
        ep = make_episode(3)
        ep["obs"]["joint_pos"] = ep["obs"]["joint_pos"][:2]
        with pytest.raises(ValueError, match=r"obs/joint_pos.*expected 3 rows"):
            w.write_episode(**ep)
        with pytest.raises(ValueError, match="must have 8 dims"):
            w.write_episode(obs={}, actions=np.zeros((3, 7)))
        with pytest.raises(ValueError, match="no instruction"):
            with DemoWriter(tmp_path / "other.hdf5") as w2:
                w2.write_episode(obs={}, actions=np.zeros((1, 8)))
        assert not (tmp_path / "other.hdf5").exists() and not temp_path(tmp_path / "other.hdf5").exists()
        w.write_episode(**make_episode(3))
    assert list_demos(path) == ["demo_0"]
    assert validate_file(path)["total"] == 3


def test_validate_file(two_demo_file, tmp_path):
    path, _ = two_demo_file
    summary = validate_file(path)
    assert summary["num_demos"] == 2 and summary["total"] == 8

    with pytest.raises(DemoFileError, match=r"missing\.hdf5: file not found"):
        validate_file(tmp_path / "missing.hdf5")

    bad = tmp_path / "corrupt.hdf5"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DemoFileError, match=r"corrupt\.hdf5: not an HDF5 file or corrupt") as ei:
        validate_file(bad)
    assert "\n" not in str(ei.value)

    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DemoFileError, match=r"truncated\.hdf5: not an HDF5 file or corrupt \(.*truncated file"):
        read_episode(truncated, 0)

    with pytest.raises(DemoFileError, match=r"demos\.hdf5: data/demo_0: missing dataset 'obs/wrist_rgb'"):
        validate_file(path, required_obs=("joint_pos", "wrist_rgb"))
    with pytest.raises(DemoFileError, match=r"expected \[5, 7\]"):
        validate_file(path, action_dim=7)

    nodata = tmp_path / "nodata.hdf5"
    with h5py.File(nodata, "w") as f:
        f.create_group("stuff")
    with pytest.raises(DemoFileError, match=r"nodata\.hdf5: missing group 'data'"):
        validate_file(nodata)

    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
    with pytest.raises(DemoFileError, match=r"data/demo_1: missing dataset 'actions'"):
        validate_file(path)
    with pytest.raises(DemoFileError, match=r"missing episode 'data/demo_7'"):
        read_episode(path, 7)
