"""Contact fidelity on the CPU: a steady grasp of every box variant neither sinks into the pads (<= 3 mm) nor
slides in the hand (<= 5 mm over 2 s in the air); the same for the scripted expert's own grasps.

One env per box variant (6 envs, groups of 1, variants in turn), the scene without its camera. The GPU
benchmark of the same measurements at 4096 envs is ``benchmarks/contact/measure.py``."""

from __future__ import annotations

import pytest
import torch

from openarm_vla.eval.grasp_fidelity import hold_in_air, measure_expert_hold
from openarm_vla.tasks.box_grasp.box_grasp_env_cfg import BOX_SIZES

pytestmark = pytest.mark.sim

PEN, SLIDE = 0.003, 0.005


@pytest.fixture
def env(env_factory):
    return env_factory("OpenArm-BoxGrasp", num_envs=len(BOX_SIZES), image_size=None, group_size=1, camera=False,
                       cycle_variants=True)


def table(r) -> str:
    return "; ".join(f"{[round(v, 3) for v in s]}: pen {1000 * p:.2f} mm, slide {1000 * d:.2f} mm"
                     for s, p, d in zip(r["box_size"].tolist(), r["max_penetration"].tolist(), r["max_slide"].tolist()))


def test_steady_grasp_in_the_air(env):
    r = hold_in_air(env, hold_steps=100)  # 2 s at 50 Hz
    assert {tuple(round(v, 3) for v in s) for s in r["box_size"].tolist()} == set(BOX_SIZES), "not every variant"
    # the measurement itself: centred between pads opened to the box width + 6 mm, each pad is 3 mm off the box
    assert torch.allclose(r["open_penetration"], torch.full_like(r["open_penetration"], -0.003), atol=5e-4)
    assert (r["min_lift"] > 0.10).all(), "a box fell out of the grasp"
    assert (r["max_penetration"] <= PEN).all(), table(r)
    assert (r["max_slide"] <= SLIDE).all(), table(r)


def test_expert_grasp_lifted_and_held(env):
    r = measure_expert_hold(env, hold_steps=100)
    assert r["held"].all(), f"held 2 s above the success height: {r['held'].tolist()}"
    assert (r["max_penetration"] <= PEN).all(), table(r)
    assert (r["max_slide"] <= SLIDE).all(), table(r)
