"""The schema of a pipeline recipe (``configs/pipelines/*.yaml``): what each stage of the main job runs.

A recipe is YAML checked against these dataclasses (OmegaConf structured configs: a misspelt key or a value of the
wrong type is one error naming it); ``key=value`` on the command line overrides it. The ``agent`` and ``env``
mappings of a training stage are the trainer's own ``agent.…`` / ``env.…`` overrides, checked by the trainer's
configclasses when the stage runs. Training recipes (``configs/train/*.yaml``, ``scripts/train.py --recipe``) are
those overrides alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from openarm_vla.errors import ConfigError


@dataclass
class ShowStage:
    """Evaluate and film a shipped policy before anything is trained (the CPU job's working policy)."""

    policy: str = "assets/policies/box_grasp_mini"
    episodes: int = 16
    num_envs: int = 8
    image_size: int = 64
    videos: int = 2


@dataclass
class DemosStage:
    num_demos: int = 2048
    num_envs: int = 2080
    group_size: int = 1
    """Consecutive envs sharing a box variant (1: neighbours differ)."""
    args: list[str] = field(default_factory=list)
    """More ``generate_demos.py`` flags, e.g. ``[--image_compression, none]``."""


@dataclass
class TrainStage:
    max_iterations: int = 100
    preset: Optional[str] = None
    """SFT: the VLA preset trained from scratch."""
    num_envs: Optional[int] = None
    """GRPO: envs per round (a multiple of the env's group size)."""
    agent: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


@dataclass
class BankCfg:
    """The validation bank: the held-out starts every choice is made on (the SFT checkpoint, GRPO's periodic
    evaluation), seed apart from the demos' and GRPO's (:mod:`openarm_vla.eval.protocol`)."""

    episodes: int = 256
    seed: int = 10_000


@dataclass
class TestStage:
    """The test bank: both final policies evaluated once on its starts, then compared start by start."""

    episodes: int = 1024
    seed: int = 20_000
    num_envs: int = 256


@dataclass
class OodStage:
    """Both final policies on every split of a frozen suite (:mod:`openarm_vla.eval.suite`), in OUT/ood/."""

    suite: str = "ood"
    num_envs: int = 256
    max_episodes: Optional[int] = None
    """Smoke runs: at most this many of each split's episodes."""


@dataclass
class PipelineCfg:
    name: str = "pipeline"
    output: str = "runs/pipeline"
    device: str = "auto"
    device_name: Optional[str] = None
    """What results.json names the machine (default: the GPU's name, or cpu)."""
    task: str = "OpenArm-BoxGrasp"
    seed: int = 0
    image_size: int = 128
    env_args: list[str] = field(default_factory=list)
    show: Optional[ShowStage] = None
    demos: DemosStage = field(default_factory=DemosStage)
    sft: TrainStage = field(default_factory=TrainStage)
    sft_band: tuple[float, float] = (0.05, 0.70)
    """GRPO starts from the final SFT policy if its held-out success lies here, else from the latest evaluated
    checkpoint inside (GRPO learns only from groups that sometimes succeed)."""
    grpo: TrainStage = field(default_factory=TrainStage)
    eval: BankCfg = field(default_factory=BankCfg)
    test: Optional[TestStage] = None
    """The final report on the test bank (off: the validation bank's numbers are the report's)."""
    ood: Optional[OodStage] = None
    """An evaluation suite on both final policies (off: none)."""

    def __post_init__(self):
        """Ranges the types cannot say (the trainers check their own ``agent`` / ``env`` values)."""
        lo_hi = tuple(self.sft_band)
        checks = {
            "sft_band": (len(lo_hi) == 2 and 0.0 <= lo_hi[0] <= lo_hi[-1] <= 1.0, "two rates 0 <= low <= high <= 1"),
            "image_size": (self.image_size >= 8, ">= 8 pixels"),
            "demos.num_demos": (self.demos.num_demos >= 1, ">= 1"), "demos.num_envs": (self.demos.num_envs >= 1, ">= 1"),
            "demos.group_size": (self.demos.group_size >= 1, ">= 1"),
            "sft.max_iterations": (self.sft.max_iterations >= 1, ">= 1"),
            "grpo.max_iterations": (self.grpo.max_iterations >= 1, ">= 1"),
            "grpo.num_envs": (self.grpo.num_envs is None or self.grpo.num_envs >= 1, ">= 1"),
            "eval.episodes": (self.eval.episodes >= 1, ">= 1"),
        }
        if self.test is not None:
            checks.update({"test.episodes": (self.test.episodes >= 1, ">= 1"), "test.num_envs": (self.test.num_envs >= 1, ">= 1"),
                           "test.seed": (self.test.seed != self.eval.seed, "another seed than eval.seed (the validation bank)")})
        if self.ood is not None:
            from openarm_vla.eval.suite import SUITES

            checks.update({"ood.suite": (self.ood.suite in SUITES, f"one of {', '.join(SUITES)}"),
                           "ood.num_envs": (self.ood.num_envs >= 1, ">= 1"),
                           "ood.max_episodes": (self.ood.max_episodes is None or self.ood.max_episodes >= 1, ">= 1")})
        if self.show is not None:
            checks.update({"show.episodes": (self.show.episodes >= 1, ">= 1"), "show.num_envs": (self.show.num_envs >= 1, ">= 1")})
        for key, (ok, allowed) in checks.items():
            if not ok:
                raise ConfigError(f"{key}: must be {allowed}")


def recipe_path(name: str, root: str | os.PathLike) -> Path:
    """A recipe by name (``configs/pipelines/NAME.yaml``) or by path."""
    if name.endswith((".yaml", ".yml")):
        return Path(name)
    return Path(root) / "configs" / "pipelines" / f"{name}.yaml"


def _recipe_yaml(p: Path, seen: tuple[Path, ...] = ()):
    """The YAML of recipe ``p``, over the recipe it names with ``extends: NAME`` (a file beside it; its values
    first, this one's win, lists replaced whole), so that a variant states only what it changes."""
    from omegaconf import OmegaConf

    if not p.is_file():
        have = sorted(q.stem for q in p.parent.glob("*.yaml")) if p.parent.is_dir() else []
        where = f" (extended by {seen[-1].name})" if seen else ""
        raise ConfigError(f"recipe not found: {p}{where}" + (f" (have: {', '.join(have)})" if have else ""))
    data = OmegaConf.load(p)
    base = data.pop("extends", None)
    if base is None:
        return data
    base_path = p.parent / (base if str(base).endswith((".yaml", ".yml")) else f"{base}.yaml")
    if base_path.resolve() in [q.resolve() for q in (*seen, p)]:
        raise ConfigError(f"{p.name}: extends {base}: a cycle ({' -> '.join(q.stem for q in (*seen, p, base_path))})")
    return OmegaConf.merge(_recipe_yaml(base_path, (*seen, p)), data)


def load_pipeline_cfg(path: str | os.PathLike, overrides: list[str] = ()) -> PipelineCfg:
    """The recipe at ``path`` (and the one it ``extends``) with ``key=value`` overrides, as a checked
    :class:`PipelineCfg`."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    p = Path(path)
    data = _recipe_yaml(p)
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(PipelineCfg), data, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(cfg)
    except ConfigError as e:
        raise ConfigError(f"{p.name}: {e}") from None
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        msg = " ".join(str(e).split("\n")[0].split())
        raise ConfigError(f"{p.name}: {key + ': ' if key else ''}{msg}") from None
