"""Frozen evaluation suites: named splits of a task, each a fixed bank of starts under fixed config overrides.

The ``ood`` suite is RL4VLA's generalization protocol on OpenArm: the randomized task ``OpenArm-BoxGrasp-DR`` as
trained (``id``), then one shift at a time along three axes -- vision (what the camera sees), semantic (what the
instruction and the objects mean), execution (where things are and how they move) -- and a negative control whose
instruction names a colour absent from the scene (success should fall to about 0). Each split is data: a bank seed
(kept apart from the protocol's validation and test seeds, :mod:`openarm_vla.eval.protocol`), a number of episodes
and overrides of ``env.variation.*`` applied as Python values on top of the task's config (a dict or a list
replaces the training value, it is not merged with it). ``python scripts/evaluate.py --suite ood --list`` prints
them. A split that shifts a field must leave the training distribution on it (:func:`novelty_problems`): the
runner refuses a suite whose "unseen" values the task was trained on.

Changing a split's values or seed makes a different suite: add a new one rather than editing ``ood``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from openarm_vla.errors import ConfigError

AXES = ("id", "vision", "semantic", "execution", "negative")
"""A split's axis; the OOD average is over vision, semantic and execution."""
OOD_AXES = ("vision", "semantic", "execution")
MIN_EPISODES = 256


@dataclass(frozen=True)
class Split:
    name: str
    axis: str
    episodes: int
    seed: int
    overrides: Mapping[str, object] = field(default_factory=dict)
    """``env.<dotted field>`` -> value, set on the task's env config before the env is built (read-only; the
    values are copied onto a config, never handed out)."""
    about: str = ""

    def __post_init__(self):
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))


@dataclass(frozen=True)
class Suite:
    name: str
    task: str
    splits: tuple[Split, ...]
    about: str = ""

    def split(self, name: str) -> Split:
        return next(s for s in self.splits if s.name == name)


V = "env.variation."

UNSEEN_TABLE_COLORS = [(0.08, 0.30, 0.12), (0.45, 0.05, 0.08), (0.10, 0.10, 0.40), (0.95, 0.85, 0.20)]
"""Felt green, wine red, ink blue, bright yellow tables (the training table is grey, or the DR task's palette)."""
UNSEEN_BOX_COLORS = {"magenta": (0.85, 0.10, 0.65), "teal": (0.00, 0.50, 0.50), "olive": (0.45, 0.45, 0.05),
                     "lavender": (0.70, 0.60, 0.95), "maroon": (0.40, 0.02, 0.10)}
UNSEEN_TEMPLATES = ["could you raise the {color} one off the table", "I need the {color} package up in the air",
                    "get hold of the {color} cube and hold it up", "the {color} carton, lift it please"]
UNSEEN_BOX_SIZE = (0.040, 0.040, 0.040)
"""A 4 cm cube: 1 cm under the smallest training edge, well inside the gripper's 8.8 cm opening."""

OOD = Suite("ood", "OpenArm-BoxGrasp-DR", (
    Split("id", "id", 256, 30_000, {}, "the randomized task as trained"),
    Split("table_unseen", "vision", 256, 30_001, {V + "table_colors": UNSEEN_TABLE_COLORS},
          "table colours outside the training palette (colours only: the contract has no table textures)"),
    Split("lighting_unseen", "vision", 256, 30_002,
          {V + "light_intensity": (500.0, 900.0), V + "light_color": ((1.0, 0.55, 0.35), (1.0, 0.65, 0.45)),
           V + "light_direction_deg": 60.0},
          "a dim, warm key light from directions up to 60 deg off"),
    Split("camera_shifted", "vision", 256, 30_003,
          {V + "camera_pos_jitter": 0.06, V + "camera_rot_jitter_deg": 9.0},
          "camera jitter 3x the training one per axis (a draw stays inside the training box with p = 1/27)"),
    Split("noise_strong", "vision", 256, 30_004, {V + "image_noise_std": 16.0}, "4x the training pixel noise"),
    Split("box_colors_unseen", "semantic", 256, 30_005, {V + "box_colors": UNSEEN_BOX_COLORS},
          "target and distractors in colours (names and RGB) never trained on"),
    Split("paraphrases_unseen", "semantic", 256, 30_006, {V + "instruction_templates": UNSEEN_TEMPLATES},
          "instruction phrasings never trained on"),
    Split("distractors_4", "semantic", 256, 30_007, {V + "num_distractors": (4, 4)},
          "four distractors (training: 0-3)"),
    Split("box_size_unseen", "semantic", 256, 30_008, {V + "box_sizes": [UNSEEN_BOX_SIZE]},
          "every box a 4 cm cube"),
    Split("box_outside_region", "execution", 256, 30_009, {V + "box_x_range": (0.36, 0.41)},
          "the box 2-7 cm beyond the far edge of the training region"),
    Split("arm_start_offset", "execution", 256, 30_010, {V + "arm_start_offset": 0.15},
          "+-0.15 rad on every arm joint's start"),
    Split("box_moved", "execution", 256, 30_011, {V + "move_box_at_step": 40},
          "the target jumps to a new place in its region at control step 40 (the expert grasps at ~100)"),
    Split("absent_color", "negative", 256, 30_012, {V + "absent_color_instruction": True},
          "the instruction names a colour no box has: success should be about 0"),
), "RL4VLA's protocol on OpenArm: in distribution, vision, semantic, execution, and a negative control")

SUITES = {s.name: s for s in (OOD,)}


def suite(name: str) -> Suite:
    if name not in SUITES:
        raise ConfigError(f"--suite {name!r}: expected one of {', '.join(SUITES)}")
    return SUITES[name]


def describe(s: Suite) -> str:
    """The suite as a person reads it (``evaluate.py --suite NAME --list``)."""
    lines = [f"suite {s.name} on {s.task}: {s.about}"]
    for sp in s.splits:
        lines.append(f"  {sp.name:<20} {sp.axis:<9} {sp.episodes} episodes, bank seed {sp.seed}: {sp.about}")
        lines += [f"      {k}={v!r}" for k, v in sp.overrides.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- checks


def suite_problems(s: Suite, protocol_seeds: tuple[int, ...] | None = None) -> list[str]:
    """Why ``s`` is not a valid frozen suite (empty when it is): names, axes, episodes, seeds, override keys."""
    from .protocol import BANKS

    reserved = protocol_seeds if protocol_seeds is not None else tuple(b.seed for b in BANKS.values())
    bad = []
    names = [sp.name for sp in s.splits]
    seeds = [sp.seed for sp in s.splits]
    bad += [f"split {n!r}: name used twice" for n in sorted({n for n in names if names.count(n) > 1})]
    bad += [f"split seed {x}: used twice" for x in sorted({x for x in seeds if seeds.count(x) > 1})]
    for sp in s.splits:
        where = f"split {sp.name!r}"
        if sp.axis not in AXES:
            bad.append(f"{where}: axis {sp.axis!r} not one of {', '.join(AXES)}")
        if sp.episodes < MIN_EPISODES:
            bad.append(f"{where}: {sp.episodes} episodes, a split needs >= {MIN_EPISODES}")
        if sp.seed in reserved:
            bad.append(f"{where}: seed {sp.seed} is a protocol bank's (validation / test)")
        bad += [f"{where}: override {k!r} is not env.<field>" for k in sp.overrides if not k.startswith("env.")]
    return bad


def override_problems(s: Suite, env_cfg) -> list[str]:
    """Override keys of ``s``'s splits that ``env_cfg`` lacks (the contract's field names): one line per missing
    field, naming the splits that set it."""
    missing: dict[str, list[str]] = {}
    for sp in s.splits:
        for key in sp.overrides:
            node, path = env_cfg, key.removeprefix("env.").split(".")
            for i, part in enumerate(path):
                if not hasattr(node, part):
                    missing.setdefault(".".join(["env", *path[: i + 1]]), []).append(sp.name)
                    break
                node = getattr(node, part)
    return [f"{k}: not a field of this task's env config (set by split{'s' if len(v) > 1 else ''} {', '.join(dict.fromkeys(v))})"
            for k, v in missing.items()]


def apply_overrides(env_cfg, overrides: Mapping[str, object]):
    """Set each ``env.a.b`` of ``overrides`` on ``env_cfg`` (in place; copies, so the suite stays frozen)."""
    import copy

    for key, value in overrides.items():
        *parents, leaf = key.removeprefix("env.").split(".")
        node = env_cfg
        for part in parents:
            node = getattr(node, part)
        if not hasattr(node, leaf):
            raise ConfigError(f"override {key}: env config has no field {leaf!r}")
        setattr(node, leaf, copy.deepcopy(value))
    return env_cfg


def _far(colors, others, tol: float = 0.15) -> bool:
    return all(math.dist(c, o) >= tol for c in colors for o in others)


def _above(new, old) -> bool:
    return float(new) > float(old)


def _boxes_apart(new, old) -> bool:
    """Two per-channel boxes (low, high) share no point."""
    return any(n_hi < o_lo or n_lo > o_hi for n_lo, n_hi, o_lo, o_hi in zip(*new, *old))


GREY_TABLE = (0.55, 0.55, 0.58)
NOVEL: dict[str, Callable[[object, object], bool]] = {
    "table_colors": lambda new, old: _far(new, list(old) or [GREY_TABLE]),
    "box_colors": lambda new, old: not (set(new) & set(old)) and _far(list(new.values()), list(old.values())),
    "box_sizes": lambda new, old: all(max(abs(a - b) for a, b in zip(n, o)) >= 0.005 for n in new for o in old),
    "light_intensity": lambda new, old: new[1] < old[0] or new[0] > old[1],
    "light_color": _boxes_apart,
    "light_direction_deg": _above,
    "camera_pos_jitter": _above,
    "camera_rot_jitter_deg": _above,
    "image_noise_std": _above,
    "num_distractors": lambda new, old: new[0] > old[1],
    "instruction_templates": lambda new, old: not (set(new) & set(old)),
    "box_x_range": lambda new, old: new[1] < old[0] or new[0] > old[1],
    "box_y_range": lambda new, old: new[1] < old[0] or new[0] > old[1],
    "arm_start_offset": _above,
    "move_box_at_step": lambda new, old: int(old) == 0 and int(new) > 0,
    "absent_color_instruction": lambda new, old: bool(new) and not bool(old),
}
"""Per ``env.variation`` field: is the split's value outside the training value? Colours >= 0.15 RGB apart, sizes
>= 5 mm apart on some edge, ranges disjoint, magnitudes larger, new names and phrasings."""


def novelty_problems(s: Suite, variation) -> list[str]:
    """Splits (other than ``id``) whose shifted ``env.variation`` fields lie inside the training values of
    ``variation`` (the task's :class:`SceneVariationCfg`), one line each."""
    bad = []
    for sp in s.splits:
        for key, value in sp.overrides.items():
            fld = key.removeprefix(V)
            if sp.axis == "id" or fld == key or fld not in NOVEL or not hasattr(variation, fld):
                continue
            old = getattr(variation, fld)
            if not NOVEL[fld](value, old):
                bad.append(f"split {sp.name!r}: {key}={value!r} is not outside the training value {old!r}")
    return bad
