"""SFT's demo loading (``DemoDataset.load_arrays``), before/after in one run: the loader of 70a0342 (kept here) vs
the working tree's, on raw-frame files in the old layout (one HDF5 chunk per frame) and the new one (contiguous).

    python benchmarks/perf/demo_load.py [--demos 400] [--steps 105] [--image_size 128] [--repeat 2]

The recipe's SFT stage reads 2048 demos (~230 k frames of 128 px, 10.8 GB) before its first step. Synthetic files
of the same per-demo shape are written to a temporary folder (raw frames, as the GPU recipes write them); each loader
reads each file ``--repeat`` times (the first read of a file also faults the page cache in) and the arrays must be
equal. Prints the seconds to write each layout (the demo stage's writer thread) and, per (layout, loader), seconds
per load and MB/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from openarm_vla.data import dataset as current
from openarm_vla.data.hdf5_format import DemoWriter


def load_arrays_before(ds: current.DemoDataset) -> dict:
    """``DemoDataset.load_arrays`` as it was at 70a0342: each demo sliced into its own arrays, all joined at the end."""
    images, props, acts, ends, instr = [], [], [], [], []
    instructions = sorted(set(ds._demo_instr))
    for d in range(ds.num_demos):
        fi, name, n = int(ds._demo_file[d]), ds._demo_name[d], int(ds._demo_len[d])
        grp = ds._file(fi)["data"][name]
        images.append(np.asarray(grp["obs"][ds.image_key][:n]))
        acts.append(np.asarray(grp["actions"][:n], dtype=np.float32))
        if ds.proprio_key is not None:
            props.append(np.asarray(grp["obs"][ds.proprio_key][:n], dtype=np.float32))
        ends.append(np.full(n, int(ds._ends[d]) - 1, dtype=np.int64))
        instr.append(np.full(n, instructions.index(ds._demo_instr[d]), dtype=np.int64))
    out = {"image": np.concatenate(images), "actions": np.concatenate(acts), "episode_end": np.concatenate(ends),
           "instruction": np.concatenate(instr), "instructions": instructions}
    if props:
        out["proprio"] = np.concatenate(props)
    return out


class PerFrameChunkWriter(DemoWriter):
    """The writer as it was at 70a0342 for raw frames: one HDF5 chunk per frame."""

    def _write_tree(self, parent, key, tree):
        grp = parent.create_group(key)
        for k, v in tree.items():
            if isinstance(v, dict):
                self._write_tree(grp, k, v)
            elif v.dtype == np.uint8 and v.ndim == 4:
                grp.create_dataset(k, data=v, chunks=(1,) + v.shape[1:])
            else:
                grp.create_dataset(k, data=v)


def write_file(path: Path, demos: int, steps: int, size: int, per_frame_chunks: bool) -> float:
    """Write the file; return the seconds (file closed, data handed to the OS)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8)
    writer = PerFrameChunkWriter if per_frame_chunks else DemoWriter
    t0 = time.perf_counter()
    with writer(path, instruction="pick up the box", image_compression="none") as w:
        for d in range(demos):
            w.write_episode(obs={"front_rgb": np.roll(frames, d, axis=0), "joint_pos": np.zeros((steps, 9))},
                            actions=np.full((steps, 8), d, dtype=np.float32))
    return time.perf_counter() - t0


def seconds(load, repeat: int) -> tuple[float, dict]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = load()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demos", type=int, default=400)
    p.add_argument("--steps", type=int, default=105)
    p.add_argument("--image_size", type=int, default=128)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("per-frame chunks", "contiguous"):
            path = Path(tmp) / f"{layout.replace(' ', '_')}.hdf5"
            w = write_file(path, args.demos, args.steps, args.image_size, layout == "per-frame chunks")
            with h5py.File(path) as f:
                chunks = f["data/demo_0/obs/front_rgb"].chunks
            assert (chunks is not None) == (layout == "per-frame chunks"), chunks
            print(f"[demo_load] {layout:17s} write  {w:6.2f} s")
            results = {}
            loaders = {"before": lambda: load_arrays_before(current.DemoDataset(path, chunk_size=8)),
                       "after": lambda: current.DemoDataset(path, chunk_size=8).load_arrays()}
            for name, load in loaders.items():
                s, arrays = seconds(load, args.repeat)
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
