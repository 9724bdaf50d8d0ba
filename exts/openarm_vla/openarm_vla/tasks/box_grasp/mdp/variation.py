"""Scene variation (domain randomization) of the box-grasp task: what is drawn per GRPO group at reset, how it
reaches the simulator and the renderer, and the per-env instruction it implies.

:class:`SceneVariationCfg` is the env config's ``variation`` field (``env.variation.<field>``); every field's
default is "off" (the base task ``OpenArm-BoxGrasp`` draws nothing and renders as before). The reset event
:class:`SceneVariation` draws one value per group (``env.group_size`` consecutive envs share every draw), on the
env's device, batched, and applies it:

- table / target / distractor colours: written into Newton's per-shape colour buffer (``model.shape_color``, the
  buffer Isaac Lab's ``randomize_visual_shape`` writer fills and the Newton Warp renderer reads each frame),
  with the writer's linear -> sRGB conversion, so palettes are in PreviewSurface ``diffuse_color`` units;
- camera pose jitter: the front camera's per-env world pose (``Camera.set_world_poses``);
- light and image noise: on the policy image (:func:`policy_image`). The Newton Warp renderer ignores USD
  lights: it shades with ambient light and ONE white directional light shared by every env, of fixed
  intensity, colour and direction. Light intensity and colour are therefore emulated per env as a gain and
  tint of the rendered image (intensity / 2500 x colour); light direction cannot vary per env:
  ``light_direction_deg`` tilts the one light for the whole run (:func:`turn_light`). Pixel noise is drawn
  per env and step (not shared in a group);
- distractors: ``distractor_slots`` extra boxes spawned (``num_distractors[1]`` by default), fixed to the world
  between resets (obstacles with no degrees of freedom: :mod:`..fixed_cuboid`); an episode places
  ``num_distractors`` of them on the table, apart from the target, and parks the rest under the table (out of
  the camera's view, out of the arm's reach). Each has a colour name other than the target's. The gripper
  closing on one ends the episode as ``wrong_object`` (:mod:`.success`).

What was drawn is per-env state (:meth:`SceneVariation.state` / :meth:`SceneVariation.restore`), which
:mod:`..scene_state` carries in ``state["variation"]``: group resets and evaluation banks reproduce visuals
and instruction.
"""

from __future__ import annotations

import functools
import math

import torch

from isaaclab.envs.mdp import image_rgb
from isaaclab.managers import ManagerTermBase, SceneEntityCfg
from isaaclab.utils import configclass
from isaaclab.utils.math import quat_from_euler_xyz, quat_mul, sample_uniform

from .events import env_id_tensor, grasp_monitor

MAX_DISTRACTORS = 4
"""Distractor boxes spawned in a scene with distractors (``distractor_<i>``); an episode uses 0..num_distractors."""
NOMINAL_LIGHT = 2500.0
"""The light intensity the base scene's images correspond to (gain 1)."""
DEFAULT_INSTRUCTION = "pick up the box"
"""The base task's one instruction (``BoxGraspEnvCfg.instruction``), and the "off" value of the templates."""
PARK_Z = -0.4
"""Where a parked distractor's bottom is [m] (env frame): under the table top, touching nothing."""


TABLE_CLEARANCE = 0.001
"""Gap under a distractor on the table [m]: fixed boxes touching the table would add contacts that hold nothing."""


def parked_distractor_pos(slot: int, size) -> tuple[float, float, float]:
    """Where distractor ``slot`` (edge lengths ``size``) waits under the table while unused (env frame) [m]."""
    return (0.08 + 0.14 * slot, 0.0, PARK_Z + size[2] / 2)


@configclass
class SceneVariationCfg:
    """What the DR task randomizes (the env config's ``variation`` field); defaults are "off"."""

    table_colors: list[tuple[float, float, float]] = []
    """Table RGB palette drawn per group per episode ([] = the fixed grey)."""
    box_colors: dict[str, tuple[float, float, float]] = {}
    """Named box colours the target and distractors draw from ({} = the six fixed carton variants)."""
    box_sizes: list[tuple[float, float, float]] | None = None
    """Box edge lengths: the target's variants (per group, fixed when the scene is built) and distractor slot
    i's size (``box_sizes[i % len]``); None = the task's ``BOX_SIZES`` (the env config writes them in)."""
    light_intensity: tuple[float, float] = (NOMINAL_LIGHT, NOMINAL_LIGHT)
    """Light intensity range (emulated: image gain = intensity / 2500; see the module doc)."""
    light_color: tuple[tuple[float, float, float], tuple[float, float, float]] = ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0))
    """Light colour low / high per channel (emulated: image tint)."""
    light_direction_deg: float = 0.0
    """Tilt of the light direction [deg] (:func:`turn_light`). The Newton Warp renderer has one directional light
    shared by every env, so this is a fixed tilt for the whole run (an unseen light direction), not a per-group
    jitter, and not part of the per-env state."""
    camera_pos_jitter: float = 0.0
    """+- metres per axis added to the front camera's position, per group per episode."""
    camera_rot_jitter_deg: float = 0.0
    """+- degrees per axis (roll, pitch, yaw in the camera's own frame)."""
    image_noise_std: float = 0.0
    """Gaussian pixel noise on the policy image, uint8 units."""
    num_distractors: tuple[int, int] = (0, 0)
    """Inclusive range of distractor boxes on the table per episode (at most MAX_DISTRACTORS)."""
    distractor_slots: int = 0
    """Distractor boxes spawned (0: ``num_distractors[1]``); an episode parks the ones it does not use under the
    table. More than the range needs only for an evaluation that raises ``num_distractors`` live."""
    distractor_min_separation: float = 0.10
    """Least centre distance between any two boxes on the table [m]."""
    distractor_x_range: tuple[float, float] = (0.18, 0.42)
    distractor_y_range: tuple[float, float] = (-0.20, 0.20)
    """Where distractors are placed (env frame) [m]."""
    instruction_templates: list[str] = [DEFAULT_INSTRUCTION]
    """Paraphrases the instruction is drawn from; ``{color}`` is the named colour, ``{size}`` "small"/"large"."""
    box_x_range: tuple[float, float] | None = None
    box_y_range: tuple[float, float] | None = None
    """Where the target is placed (env frame); None = the task's ``BOX_WORKSPACE`` (the env config writes it in)."""
    arm_start_offset: float = 0.0
    """+- radians added to each arm joint's start angle (per env)."""
    move_box_at_step: int = 0
    """> 0: the target is moved once, to a new place in its region, at this control step."""
    absent_color_instruction: bool = False
    """Negative control: the instruction names a colour of ``box_colors`` that no box in the scene has."""

    __checks__ = {
        "table_colors": "in [0, 1]", "light_intensity": "> 0", "light_color": "in [0, 1]",
        "light_direction_deg": ("in [0, 180]", "a tilt of the renderer's one light, shared by every env"),
        "camera_pos_jitter": "in [0, 0.2]", "camera_rot_jitter_deg": "in [0, 30]", "image_noise_std": "in [0, 100]",
        "num_distractors": (f"in [0, {MAX_DISTRACTORS}]", "distractor boxes on the table"),
        "distractor_slots": (f"in [0, {MAX_DISTRACTORS}]", "distractor boxes spawned (0: num_distractors[1])"),
        "distractor_min_separation": "in [0.05, 0.3]", "instruction_templates": "non-empty",
        "arm_start_offset": "in [0, 0.5]", "move_box_at_step": ">= 0",
        "box_sizes": ("in [0.02, 0.12]", "box edges [m] the gripper can take"),
        "box_x_range": ("in [0.0, 0.7]", "on the table"), "box_y_range": ("in [-0.5, 0.5]", "on the table"),
        "distractor_x_range": ("in [0.0, 0.7]", "on the table"), "distractor_y_range": ("in [-0.5, 0.5]", "on the table"),
    }
    __rules__ = (
        ("num_distractors[0] <= num_distractors[1]", "an inclusive range"),
        ("distractor_slots == 0 or distractor_slots >= num_distractors[1]", "a slot for every distractor drawn"),
        ("light_intensity[0] <= light_intensity[1]", "a range low..high"),
        ("box_x_range is None or box_x_range[0] <= box_x_range[1]", "a range low..high"),
        ("box_y_range is None or box_y_range[0] <= box_y_range[1]", "a range low..high"),
        ("len(box_colors) >= 2 or num_distractors[1] == 0", "distractors need a colour name other than the target's"),
        ("len(box_colors) >= num_distractors[1] + 2 or not absent_color_instruction",
         "the absent colour must differ from the target's and every distractor's"),
        ("len(box_colors) > 0 or not absent_color_instruction", "the absent colour is a name of box_colors"),
        ("len(box_colors) > 0 or '{color}' not in str(instruction_templates)", "templates naming {color} need box_colors"),
    )

    def varies_light(self) -> bool:
        """Whether the emulated light (image gain and tint) can differ from the base scene's."""
        return (tuple(self.light_intensity) != (NOMINAL_LIGHT, NOMINAL_LIGHT)
                or tuple(map(tuple, self.light_color)) != ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)))

    def slots(self) -> int:
        """Distractor boxes the scene spawns."""
        return self.distractor_slots or self.num_distractors[1]

    def draws_anything(self) -> bool:
        """Whether an episode draws anything beyond the base task's box pose (then the task has the event)."""
        return bool(self.table_colors or self.box_colors or self.camera_pos_jitter > 0 or self.camera_rot_jitter_deg > 0
                    or self.image_noise_std > 0 or self.num_distractors[1] > 0 or self.varies_light()
                    or list(self.instruction_templates) != [DEFAULT_INSTRUCTION] or self.absent_color_instruction
                    or self.light_direction_deg > 0)


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """The conversion Isaac Lab's Newton colour writers apply (the renderer stores shape colours in sRGB)."""
    c = c.clamp(0.0, 1.0)
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp(min=1e-12).pow(1.0 / 2.4) - 0.055)


def _clear_spot(cand: torch.Tensor, taken: list[torch.Tensor], min_sep: float) -> torch.Tensor:
    """Per env, the first of the candidate spots ``cand`` [n, tries, 2] at least ``min_sep`` from every spot of
    ``taken`` (each [n, 2]; a far-away point stands for none), else the one farthest from them: [n, 2]."""
    clear = torch.stack([(cand - t[:, None]).norm(dim=-1) for t in taken], dim=0).min(dim=0).values
    ok = clear >= min_sep
    pick = torch.where(ok.any(dim=1), ok.float().argmax(dim=1), clear.argmax(dim=1))
    return cand[torch.arange(len(cand), device=cand.device), pick]


class ShapeColors:
    """The Newton shapes of one asset per env (by prim path), and a batched write of one colour per env.

    What Isaac Lab's ``VisualShapeColorWriter`` does, for any asset: that writer finds shapes through an
    articulation view of bodies, and the table is a static shape with no body."""

    def __init__(self, env, asset_prim: str):
        import re

        from isaaclab_newton.physics import NewtonManager

        self._manager = NewtonManager
        pattern = re.compile(rf".*/env_(\d+)/{re.escape(asset_prim)}(/.*)?$")
        pairs = [(int(m.group(1)), s) for s, label in enumerate(NewtonManager.get_model().shape_label)
                 if (m := pattern.match(str(label)))]
        if not pairs:
            raise RuntimeError(f"no Newton shapes found for {asset_prim!r}: cannot colour it")
        self.env_of_shape = torch.tensor([p[0] for p in pairs], dtype=torch.long, device=env.device)
        self.shape_ids = torch.tensor([p[1] for p in pairs], dtype=torch.long, device=env.device)

    def write(self, colors: torch.Tensor, env_ids: torch.Tensor) -> None:
        """``colors`` [len(env_ids), 3] linear RGB for the shapes of ``env_ids``."""
        import warp as wp

        per_env = torch.full((int(self.env_of_shape.max()) + 1, 3), -1.0, device=colors.device)
        per_env[env_ids] = colors
        sel = per_env[self.env_of_shape, 0] >= 0
        buf = wp.to_torch(self._manager.get_model().shape_color)  # a view: writes reach the renderer
        buf[self.shape_ids[sel]] = _linear_to_srgb(per_env[self.env_of_shape[sel]]).to(buf.dtype)


def light_directions(camera) -> torch.Tensor:
    """[lights, 3] the direction each light of the camera's Newton Warp renderer travels: a view of the renderer's
    own array (writes reach it, also inside a captured CUDA graph)."""
    import warp as wp

    sensor = getattr(getattr(camera, "_renderer", None), "newton_sensor", None)
    ctx = getattr(sensor, "_SensorTiledCamera__render_context", None)  # newton keeps it private
    if ctx is None or ctx.lights_orientation is None:
        raise RuntimeError("light_direction_deg: the camera's renderer is not the Newton Warp renderer with its "
                           "default light; set env.variation.light_direction_deg=0")
    return wp.to_torch(ctx.lights_orientation)


def turn_light(camera, degrees: float) -> torch.Tensor:
    """Tilt the Newton Warp renderer's one directional light by ``degrees`` in its vertical plane, toward (and
    past) straight down: the table, lit at 35 deg elevation by default, is lit from overhead at 55 deg. Every env,
    for the life of the renderer. Returns the directions before (``light_directions(camera).copy_(it)`` undoes)."""
    d = light_directions(camera)
    before = d.clone()
    down = torch.tensor([0.0, 0.0, -1.0], device=d.device, dtype=d.dtype)
    u = down - (d @ down)[:, None] * d  # in the plane of d and the vertical, orthogonal to d, toward down
    u = u / u.norm(dim=1, keepdim=True).clamp(min=1e-9)
    a = math.radians(degrees)
    d.copy_(math.cos(a) * d + math.sin(a) * u)
    return before


class SceneVariation(ManagerTermBase):
    """Reset event: draw the episode's variation per group, apply it, and keep it as per-env state.

    :meth:`restore` queues rows of a captured state; the next reset of those envs applies them instead of
    drawing (``scene_state.reset_to_states`` restores a state through a reset)."""

    STATE_KEYS = ("table_rgb", "target_color", "named_color", "distractor_color", "num_distractors",
                  "instruction", "camera_offset", "light")

    def __init__(self, cfg, env):
        super().__init__(cfg, env)
        v: SceneVariationCfg = env.cfg.variation
        n, dev = env.num_envs, env.device
        self.v = v
        for t in v.instruction_templates:  # a placeholder other than {color} / {size} would fail mid-run
            try:
                t.format(color="c", size="s")
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(f"env.variation.instruction_templates: {t!r} is not a template with only "
                                 f"{{color}} and {{size}} ({type(e).__name__}: {e})") from None
        self.num_slots = v.slots()
        self.values = {
            "table_rgb": torch.zeros(n, 3, device=dev),
            "target_color": torch.full((n,), -1, dtype=torch.long, device=dev),
            "named_color": torch.full((n,), -1, dtype=torch.long, device=dev),
            "distractor_color": torch.full((n, MAX_DISTRACTORS), -1, dtype=torch.long, device=dev),
            "num_distractors": torch.zeros(n, dtype=torch.long, device=dev),
            "instruction": torch.zeros(n, dtype=torch.long, device=dev),
            "camera_offset": torch.zeros(n, 6, device=dev),
            "light": torch.tensor([[NOMINAL_LIGHT, 1.0, 1.0, 1.0]], device=dev).repeat(n, 1),
        }
        self.resets = 0
        """Resets applied so far (a version of :attr:`values`)."""
        self._instructions: tuple | None = None
        self._pending: dict | None = None
        self._pending_mask = torch.zeros(n, dtype=torch.bool, device=dev)
        self.table = ShapeColors(env, "Table") if v.table_colors else None
        self.box = ShapeColors(env, "Box") if v.box_colors else None
        self.distractors = [ShapeColors(env, f"Distractor_{i}") for i in range(self.num_slots)] if v.box_colors else []
        sizes = env.cfg.events.reset_box.params["sizes"]
        slot_sizes = [sizes[i % len(sizes)] for i in range(self.num_slots)]
        self.slot_size = torch.tensor(slot_sizes, device=dev).reshape(-1, 3)
        self.park_pos = torch.tensor([parked_distractor_pos(i, size) for i, size in enumerate(slot_sizes)],
                                     device=dev).reshape(-1, 3)
        """Where each slot waits under the table while unused (env frame), as spawned."""
        self.camera = env.scene.sensors.get("front_camera")
        self._camera_moved = False
        if self.camera is not None:
            cam_cfg = self.camera.cfg.offset
            self.cam_pos = torch.tensor(cam_cfg.pos, device=dev, dtype=torch.float32)
            self.cam_quat = torch.tensor(cam_cfg.rot, device=dev, dtype=torch.float32)  # world convention, xyzw
            if v.light_direction_deg:
                turn_light(self.camera, v.light_direction_deg)

    # the palettes are read from the config at each reset: the fields of BoxGraspEnvCfg.__live_fields__ may change
    # between evaluations without rebuilding the env (where the scene has what they need: see _check_live)

    @property
    def names(self) -> list[str]:
        """Colour names of ``box_colors``; the state's colour indices point into this list."""
        return list(self.v.box_colors)

    def _palette(self) -> torch.Tensor:
        return torch.tensor([self.v.box_colors[k] for k in self.names], device=self._env.device).reshape(-1, 3)

    def _check_live(self) -> None:
        """A live config change that needs scene parts the env was built without is an error, not a silent no-op."""
        v = self.v
        missing = [what for what, bad in (
            ("table_colors (no table colour writer)", v.table_colors and self.table is None),
            ("box_colors (no box colour writers)", v.box_colors and self.box is None),
            (f"num_distractors up to {v.num_distractors[1]} ({self.num_slots} slots)", v.num_distractors[1] > self.num_slots),
        ) if bad]
        if missing:
            raise RuntimeError(f"env.variation changed after the env was built without what it needs: {', '.join(missing)}; "
                               "rebuild the env with these values")

    # ------------------------------------------------------------------ state

    def state(self, env_ids: torch.Tensor) -> dict:
        return {k: self.values[k][env_ids].clone() for k in self.STATE_KEYS}

    def restore(self, rows: dict, env_ids: torch.Tensor) -> None:
        """Make the next reset of ``env_ids`` apply ``rows`` (a :meth:`state` slice) instead of a draw."""
        if self._pending is None:
            self._pending = {k: v.clone() for k, v in self.values.items()}
        for k in self.STATE_KEYS:
            if k in rows:
                self._pending[k][env_ids] = rows[k].to(self.values[k].device, self.values[k].dtype)
        self._pending_mask[env_ids] = True

    # ------------------------------------------------------------------ drawing

    def _draw(self, env_ids: torch.Tensor) -> None:
        """One draw per group among ``env_ids``; every member of a group gets its group's values."""
        env, v, dev = self._env, self.v, self._env.device
        self._check_live()
        groups, member = torch.unique(env_ids // int(env.cfg.group_size), return_inverse=True)
        g = len(groups)
        val = self.values
        if v.table_colors:
            table = torch.tensor(v.table_colors, device=dev).reshape(-1, 3)
            val["table_rgb"][env_ids] = table[torch.randint(len(table), (g,), device=dev)][member]
        k = len(self.names)
        n_d = torch.randint(int(v.num_distractors[0]), int(v.num_distractors[1]) + 1, (g,), device=dev)
        val["num_distractors"][env_ids] = n_d[member]
        if k:
            target = torch.randint(k, (g,), device=dev)
            dcol = (target[:, None] + 1 + torch.randint(max(k - 1, 1), (g, MAX_DISTRACTORS), device=dev)) % k
            named = target
            if v.absent_color_instruction:
                present = torch.zeros(g, k, dtype=torch.bool, device=dev)
                present[torch.arange(g, device=dev), target] = True
                used = torch.arange(MAX_DISTRACTORS, device=dev)[None] < n_d[:, None]
                present.scatter_(1, torch.where(used, dcol, target[:, None]), True)
                # a uniform choice among the absent names: the highest random score among them
                score = torch.rand(g, k, device=dev).masked_fill(present, -1.0)
                named = score.argmax(dim=1)
            val["target_color"][env_ids] = target[member]
            val["distractor_color"][env_ids] = dcol[member]
            val["named_color"][env_ids] = named[member]
        val["instruction"][env_ids] = torch.randint(len(v.instruction_templates), (g,), device=dev)[member]
        deg = math.radians(v.camera_rot_jitter_deg)
        off = torch.cat([sample_uniform(-v.camera_pos_jitter, v.camera_pos_jitter, (g, 3), dev),
                         sample_uniform(-deg, deg, (g, 3), dev)], dim=1)
        val["camera_offset"][env_ids] = off[member]
        lo, hi = (torch.tensor(c, dtype=torch.float32, device=dev) for c in v.light_color)
        light = torch.cat([sample_uniform(*v.light_intensity, (g, 1), dev), sample_uniform(lo, hi, (g, 3), dev)], dim=1)
        val["light"][env_ids] = light[member]

    # ------------------------------------------------------------------ applying

    def _apply(self, env_ids: torch.Tensor) -> None:
        val = self.values
        if self.table is not None:
            self.table.write(val["table_rgb"][env_ids], env_ids)
        if self.box is not None:
            palette = self._palette()
            self.box.write(palette[val["target_color"][env_ids]], env_ids)
            for i, writer in enumerate(self.distractors):
                writer.write(palette[val["distractor_color"][env_ids, i]], env_ids)
        if self.num_slots:
            self._place_distractors(env_ids)
        v = self.v
        if self.camera is not None and (self._camera_moved or v.camera_pos_jitter > 0 or v.camera_rot_jitter_deg > 0
                                        or bool(val["camera_offset"][env_ids].any())):
            self._camera_moved = True
            off = val["camera_offset"][env_ids]
            pos = self._env.scene.env_origins[env_ids] + self.cam_pos + off[:, :3]
            rot = quat_from_euler_xyz(off[:, 3], off[:, 4], off[:, 5])
            quat = quat_mul(self.cam_quat.expand(len(env_ids), 4), rot)
            self.camera.set_world_poses(pos, quat, env_ids=env_ids, convention="world")

    def _place_distractors(self, env_ids: torch.Tensor, tries: int = 32) -> None:
        """Active slots at random table spots at least ``distractor_min_separation`` from the target and from
        each other (best of ``tries`` candidates: the one farthest from the rest); the others parked (:data:`PARK_Z`)."""
        env, v, dev = self._env, self.v, self._env.device
        n = len(env_ids)
        origins = env.scene.env_origins[env_ids]
        taken = [env.scene["box"].data.root_pos_w.torch[env_ids, :2] - origins[:, :2]]
        active = torch.arange(self.num_slots, device=dev)[None] < self.values["num_distractors"][env_ids, None]
        for i in range(self.num_slots):
            cand = torch.stack([sample_uniform(*v.distractor_x_range, (n, tries), dev),
                                sample_uniform(*v.distractor_y_range, (n, tries), dev)], dim=-1)
            xy = _clear_spot(cand, taken, v.distractor_min_separation)
            size = self.slot_size[i]
            yaw = sample_uniform(-math.pi / 4, math.pi / 4, (n,), dev)
            park = self.park_pos[i]
            on_table = active[:, i]
            xy = torch.where(on_table[:, None], xy, park[:2].expand(n, 2))
            z = torch.where(on_table, size[2] / 2 + TABLE_CLEARANCE, park[2])
            yaw = torch.where(on_table, yaw, torch.zeros_like(yaw))
            taken.append(torch.where(on_table[:, None], xy, torch.full_like(xy, 1e3)))
            zero = torch.zeros_like(yaw)
            pose = torch.cat([torch.cat([xy, z[:, None]], dim=1) + origins, quat_from_euler_xyz(zero, zero, yaw)], dim=1)
            obj = env.scene[f"distractor_{i}"]
            obj.write_root_pose_to_sim_index(root_pose=pose, env_ids=env_ids)

    def __call__(self, env, env_ids):
        env_ids = env_id_tensor(env, env_ids)
        self.resets += 1
        self._draw(env_ids)
        if self._pending is not None:
            restored = self._pending_mask[env_ids]
            ids = env_ids[restored]
            for k in self.STATE_KEYS:
                self.values[k][ids] = self._pending[k][ids]
            self._pending_mask[ids] = False
            if not self._pending_mask.any():
                self._pending = None
        self._apply(env_ids)


def scene_variation(env) -> SceneVariation | None:
    """The task's variation event term, or None where the task draws nothing (the base task)."""
    manager = getattr(env, "event_manager", None)  # built after the observation manager
    if manager is None or "scene_variation" not in manager.active_terms.get("reset", ()):
        return None
    return manager.get_term_cfg("scene_variation").func


def size_words(env) -> list[str]:
    """"small" / "large" per env: the target's volume against the median of the size palette."""
    from .events import box_variant_sizes

    sizes = torch.tensor(env.cfg.events.reset_box.params["sizes"])
    median = sizes.prod(dim=1).median()
    vol = box_variant_sizes(env).prod(dim=1).cpu()
    return ["small" if x <= median else "large" for x in vol.tolist()]


def instructions(env) -> list[str]:
    """The current episode's instruction per env (the base task: ``env.cfg.instruction`` for all)."""
    term = scene_variation(env)
    if term is None or list(term.v.instruction_templates) == [DEFAULT_INSTRUCTION]:
        return [env.cfg.instruction] * env.num_envs
    templates = term.v.instruction_templates
    key = (term.resets, tuple(templates), tuple(term.names))
    if term._instructions is None or term._instructions[0] != key:  # the policy asks every step: format once per reset
        idx = term.values["instruction"].tolist()
        named = term.values["named_color"].tolist()
        sizes = size_words(env) if any("{size}" in t for t in templates) else [""] * env.num_envs
        term._instructions = (key, [" ".join(templates[i].format(color=term.names[c] if c >= 0 else "", size=s).split())
                                    for i, c, s in zip(idx, named, sizes)])
    return list(term._instructions[1])


def shade(img: torch.Tensor, gain: torch.Tensor | None, noise_std: float) -> torch.Tensor:
    """uint8 images [N, H, W, 3] times a per-env RGB ``gain`` [N, 3] (None: 1), plus Gaussian pixel noise of
    ``noise_std`` (uint8 units), rounded and clamped to [0, 255]: a new tensor (one float copy, then in place)."""
    x = img.float()
    if gain is not None:
        x.mul_(gain[:, None, None, :])
    if noise_std > 0:
        x.add_(torch.randn_like(x), alpha=noise_std)
    return x.round_().clamp_(0, 255).to(img.dtype)


@functools.cache
def _fused_shade():
    return torch.compile(shade, dynamic=False)


def shade_batch(img: torch.Tensor, gain: torch.Tensor | None, noise_std: float) -> torch.Tensor:
    """:func:`shade` as one fused kernel on the GPU (torch.compile; the eager ops pass over the whole batch about
    eight times: float copy, gain, noise, round, clamp, cast), eager on the CPU, where compiling costs more than it
    saves. The same values without noise; the noise is drawn by another generator."""
    return (_fused_shade() if img.is_cuda else shade)(img, gain, noise_std)


class policy_image(image_rgb):
    """The camera image the policy sees in the DR task: Isaac Lab's ``image_rgb`` term, then the per-env light
    gain and tint and Gaussian pixel noise the variation drew; uint8 as the base term (HWC, unnormalized:
    the transform assumes ``normalize=False`` and ``channel_first=False``, the task's settings)."""

    def __call__(self, env, sensor_cfg=SceneEntityCfg("front_camera"), data_type: str = "rgb", normalize: bool = False,
                 mean: float | None = None, channel_first: bool = False, frame_stack: int = 1, *,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        img = super().__call__(env, sensor_cfg, data_type, normalize, mean, channel_first, frame_stack, out=out)
        term = scene_variation(env)
        if term is None:
            return img
        v = term.v
        lit = v.varies_light()
        if v.image_noise_std == 0 and not lit:  # decided from the config: no host sync in the step
            return img
        light = term.values["light"]
        x = shade_batch(img, light[:, :1] / NOMINAL_LIGHT * light[:, 1:] if lit else None, v.image_noise_std)
        if out is None:  # img may be a view of the camera's buffer: never written in place
            return x
        out.copy_(x)
        return out


def move_box_once(env, env_ids, step: int, x_range, y_range, tries: int = 32):
    """Interval event run every control step: envs at episode step ``step`` get their target moved to a new
    place in its region (the OOD "box moved mid-episode" shift), resting at the same height, clear of the
    distractors on the table (the candidate farthest from them where none is ``distractor_min_separation`` away)."""
    ids = torch.nonzero(env.episode_length_buf == step).flatten()
    if not len(ids):
        return
    n, dev = len(ids), env.device
    origins = env.scene.env_origins[ids]
    cand = torch.stack([sample_uniform(*x_range, (n, tries), dev), sample_uniform(*y_range, (n, tries), dev)], dim=-1)
    term = scene_variation(env)
    if term is not None and term.num_slots:
        used = torch.arange(term.num_slots, device=dev)[None] < term.values["num_distractors"][ids, None]
        taken = [torch.where(used[:, i:i + 1], env.scene[f"distractor_{i}"].data.root_pos_w.torch[ids, :2] - origins[:, :2],
                             torch.full((n, 2), 1e3, device=dev)) for i in range(term.num_slots)]
        xy = _clear_spot(cand, taken, term.v.distractor_min_separation)
    else:
        xy = cand[:, 0]
    box = env.scene["box"]
    pos = box.data.root_pos_w.torch[ids].clone()
    pos[:, :2] = xy + origins[:, :2]
    pos[:, 2] = grasp_monitor(env).rest_z[ids] + 0.001 + origins[:, 2]
    quat = box.data.root_quat_w.torch[ids].clone()
    box.write_root_pose_to_sim_index(root_pose=torch.cat([pos, quat], dim=1), env_ids=ids)
    box.write_root_velocity_to_sim_index(root_velocity=torch.zeros(n, 6, device=dev), env_ids=ids)


def offset_arm_start(env, env_ids, max_offset: float, asset_name: str = "robot"):
    """Reset event: add U(-max_offset, max_offset) rad to each arm joint's start angle (within its limits)."""
    from openarm_vla.robots import openarm_spec as spec

    from .observations import _joint_ids

    env_ids = env_id_tensor(env, env_ids)
    robot = env.scene[asset_name]
    ids = _joint_ids(robot, tuple(spec.ARM_JOINTS))
    q = robot.data.joint_pos.torch[env_ids][:, ids].clone()
    q = q + sample_uniform(-max_offset, max_offset, q.shape, env.device)
    lo = torch.tensor(spec.ARM_LOWER, device=env.device)
    hi = torch.tensor(spec.ARM_UPPER, device=env.device)
    q = torch.maximum(torch.minimum(q, hi), lo)
    full = robot.data.joint_pos.torch[env_ids].clone()
    full[:, ids] = q
    robot.write_joint_position_to_sim_index(position=full, env_ids=env_ids)
    robot.set_joint_position_target_index(target=full, env_ids=env_ids)


__all__ = ["MAX_DISTRACTORS", "PARK_Z", "parked_distractor_pos", "SceneVariationCfg", "SceneVariation", "scene_variation",
           "instructions", "policy_image", "shade", "move_box_once", "offset_arm_start"]
