"""The main job on the embedded default (configs/quickstart.yaml): env -> expert episodes -> demos -> VLA.

    ./run.sh                       # or: python scripts/quickstart.py [key=value ...]

Each stage is one of the project's CLIs run as its own process (Isaac Lab holds one simulation per
process); results land under ``output``: results.json files, mp4 videos, a PNG of the camera, the demo
HDF5 with its statistics. Later stages (SFT, GRPO) join here as they land.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from openarm_vla.utils.config import parse_cli

ROOT = Path(__file__).resolve().parents[1]


def run(stage: str, args: list[str]) -> None:
    print(f"\n[quickstart] {stage}: {' '.join(args)}", flush=True)
    t0 = time.time()
    proc = subprocess.run([sys.executable, *args], cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(f"[quickstart] stage '{stage}' failed (exit {proc.returncode}); see the output above")
    print(f"[quickstart] {stage}: done in {time.time() - t0:.0f} s", flush=True)


def save_png_from_video(video: Path, png: Path) -> None:
    import imageio.v3 as iio

    frame = next(iter(iio.imiter(video)))
    iio.imwrite(png, frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cfg, _ = parse_cli(default_config=ROOT / "configs" / "quickstart.yaml", parser=parser)
    out = ROOT / cfg.output
    out.mkdir(parents=True, exist_ok=True)
    common = ["--task", cfg.task, "--device", str(cfg.device), "--num_envs", str(cfg.env.num_envs),
              "--image_size", str(cfg.env.image_size)]

    run("scripted expert", ["scripts/evaluate.py", *common, "--policy", "expert", "--num_episodes", str(cfg.expert.episodes),
                            "--video", str(cfg.expert.videos), "--output", str(out / "expert")])
    videos = sorted((out / "expert" / "videos").glob("*.mp4"))
    if videos:
        save_png_from_video(videos[0], out / "front_camera.png")

    run("demonstrations", ["scripts/generate_demos.py", *common, "--num_demos", str(cfg.demos.num_demos),
                           "--output", str(out / "demos.hdf5")])

    run("VLA in the env", ["scripts/evaluate.py", *common, "--policy", cfg.vla.policy, "--num_episodes", str(cfg.vla.episodes),
                           "--max_steps", str(cfg.vla.max_steps), "--output", str(out / "vla")])

    expert = json.loads((out / "expert" / "results.json").read_text())["summary"]
    vla = json.loads((out / "vla" / "results.json").read_text())["summary"]
    print("\n[quickstart] summary")
    print(f"  scripted expert : success {expert['success_rate']:.0%} over {expert['num_episodes']} episodes")
    print(f"  {cfg.vla.policy:<15} : success {vla['success_rate']:.0%} over {vla['num_episodes']} episodes (untrained)")
    print(f"  outputs         : {out} (results.json, videos/*.mp4, front_camera.png, demos.hdf5)")


if __name__ == "__main__":
    main()
