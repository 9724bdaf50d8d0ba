"""SFT's demo loading (``DemoDataset.load_arrays``), before/after in one run: a git revision's loader vs the working
tree's, on raw-frame files in the old layout (one HDF5 chunk per frame) and the new one (contiguous).

    python benchmarks/perf/demo_load.py [--rev 70a0342] [--demos 400] [--steps 105] [--image_size 128] [--repeat 2]

The recipe's SFT stage reads 2048 demos (~230 k frames of 128 px, 10.8 GB) before its first step. Synthetic files
of the same per-demo shape are written to a temporary folder (raw frames, as the GPU recipes write them); each loader
reads each file ``--repeat`` times (the first read of a file also faults the page cache in) and the arrays must be
equal. Prints seconds per load and MB/s for every (layout, loader).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
import types
from pathlib import Path

import h5py
import numpy as np

from openarm_vla.data import dataset as current
from openarm_vla.data.hdf5_format import DemoWriter

ROOT = Path(__file__).resolve().parents[2]


def load_revision(rev: str) -> types.ModuleType:
    """The dataset module of ``rev``, its relative imports pointed at the installed package."""
    src = subprocess.run(["git", "show", f"{rev}:exts/openarm_vla/openarm_vla/data/dataset.py"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    mod = types.ModuleType("dataset_before")
    mod.__dict__["__name__"] = "openarm_vla.data.dataset_before"
    src = src.replace("from ..action_space import", "from openarm_vla.action_space import")
    src = src.replace("from .", "from openarm_vla.data.")
    exec(compile(src, f"{rev}:dataset.py", "exec"), mod.__dict__)
    return mod


def write_file(path: Path, demos: int, steps: int, size: int, per_frame_chunks: bool) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8)
    with DemoWriter(path, instruction="pick up the box", image_compression="none") as w:
        for d in range(demos):
            w.write_episode(obs={"front_rgb": np.roll(frames, d, axis=0), "joint_pos": np.zeros((steps, 9))},
                            actions=np.full((steps, 8), d, dtype=np.float32))
    if per_frame_chunks:  # the layout every raw-frame file had before: rewrite the frames chunked per frame
        with h5py.File(path, "a") as f:
            for name in f["data"]:
                obs = f["data"][name]["obs"]
                v = obs["front_rgb"][()]
                del obs["front_rgb"]
                obs.create_dataset("front_rgb", data=v, chunks=(1,) + v.shape[1:])


def seconds(load, repeat: int) -> tuple[float, dict]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = load()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", default="70a0342", help="the revision before the change")
    p.add_argument("--demos", type=int, default=400)
    p.add_argument("--steps", type=int, default=105)
    p.add_argument("--image_size", type=int, default=128)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    before = load_revision(args.rev)
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("per-frame chunks", "contiguous"):
            path = Path(tmp) / f"{layout.replace(' ', '_')}.hdf5"
            write_file(path, args.demos, args.steps, args.image_size, layout == "per-frame chunks")
            results = {}
            for name, mod in (("before", before), ("after", current)):
                s, arrays = seconds(lambda m=mod: m.DemoDataset(path, chunk_size=8).load_arrays(), args.repeat)
                results[name] = arrays
                mb = arrays["image"].nbytes / 1e6
                print(f"[demo_load] {layout:17s} {name:6s} {s:6.2f} s  {mb / s:7.0f} MB/s  ({mb:.0f} MB of frames)")
            a, b = results["before"], results["after"]
            for key in ("image", "actions", "proprio", "episode_end", "instruction"):
                if key in a or key in b:
                    assert np.array_equal(a[key], b[key]), f"{layout}: the loaders disagree on {key}"
            path.unlink()


if __name__ == "__main__":
    main()
