"""The success detector, hand-computed (no simulator): its geometry and the hold rule."""

import math

import pytest
import torch

from openarm_vla.tasks.box_grasp.mdp.success import box_between_fingers, half_extent_along


def test_half_extent_along_axis_and_diagonal():
    size = torch.tensor([[0.05, 0.07, 0.06]])
    ident = torch.tensor([[0.0, 0.0, 0.0, 1.0]])  # xyzw
    assert torch.allclose(half_extent_along(torch.tensor([[0.0, 1.0, 0.0]]), ident, size), torch.tensor([0.035]))
    # box turned 90 deg about z: its x side now lies along world y
    q90 = torch.tensor([[0.0, 0.0, math.sin(math.pi / 4), math.cos(math.pi / 4)]])
    assert torch.allclose(half_extent_along(torch.tensor([[0.0, 1.0, 0.0]]), q90, size), torch.tensor([0.025]), atol=1e-6)
    # 45 deg: (|cos| * 0.05 + |sin| * 0.07) / 2 = 0.0424264
    q45 = torch.tensor([[0.0, 0.0, math.sin(math.pi / 8), math.cos(math.pi / 8)]])
    assert torch.allclose(half_extent_along(torch.tensor([[0.0, 1.0, 0.0]]), q45, size), torch.tensor([0.0424264]), atol=1e-6)


def test_between_fingers_needs_centred_box_and_pads_on_it():
    half_x, half_y = torch.tensor([0.025] * 4), torch.tensor([0.035] * 4)
    # finger q 0.036 -> gap 2q - 3.6 mm = 68.4 mm, pads on a 70 mm box
    q = torch.tensor([0.036, 0.036, 0.044, 0.036])
    rel = torch.tensor([
        [0.0, 0.0, 0.0],     # centred: held
        [0.0, 0.0, 0.06],    # above the pads
        [0.0, 0.0, 0.0],     # gripper wide open (84 mm gap on a 70 mm box): not touching
        [0.04, 0.0, 0.0],    # beside the pads along x
    ])
    assert box_between_fingers(rel, q, half_x, half_y).tolist() == [True, False, False, False]


# --------------------------------------------------------------------------------------------------
# the hold rule (HoldTracker driven with hand-built per-step facts)
# --------------------------------------------------------------------------------------------------

LIFT, HOLD = 0.10, 10


def run_hold(grasped, lift, hold_steps=HOLD):
    """Step a one-env tracker through the sequences; returns (tracker, success per step)."""
    from openarm_vla.tasks.box_grasp.mdp.success import HoldTracker

    t = HoldTracker(1)
    flags = []
    for g, z in zip(grasped, lift):
        b = torch.tensor([bool(g)])
        flags.append(bool(t.update(b, torch.tensor([float(z)]), closing=torch.tensor([True]), near=b,
                                   knocked=torch.tensor([False]), lift_height=LIFT, hold_steps=hold_steps)[0]))
    return t, flags


def failure(t) -> str:
    from openarm_vla.tasks.box_grasp.mdp.success import FAILURE_CATEGORIES

    return FAILURE_CATEGORIES[int(t.failure_codes(torch.tensor([0]))[0])]


def test_steady_hold_succeeds_when_the_hold_completes():
    lift = [0.0, 0.03, 0.07, 0.11] + [0.12] * 12
    t, flags = run_hold([True] * len(lift), lift)
    first = flags.index(True)
    assert first == 3 + HOLD - 1  # the 10th consecutive step at >= 10 cm, not before
    assert int(t.held_steps[0]) >= HOLD and failure(t) == "success"


def test_one_step_pinch_does_not_count():
    lift = [0.12] * 15
    grasped = [False] * 5 + [True] + [False] * 9
    t, flags = run_hold(grasped, lift)
    assert not any(flags)
    assert int(t.max_held_steps[0]) == 1 and failure(t) == "dropped"


def test_box_thrown_upward_does_not_count():
    # the box flies up past 10 cm; the pads touch it for two steps as it passes between them
    lift = [0.0, 0.05, 0.10, 0.15, 0.20, 0.24, 0.27, 0.29, 0.30, 0.29, 0.27, 0.24, 0.20, 0.15, 0.09, 0.02, 0.0]
    grasped = [False, False, True, True] + [False] * 13
    t, flags = run_hold(grasped, lift)
    assert not any(flags) and int(t.max_held_steps[0]) == 2
    assert float(t.max_lift[0]) >= 0.29


def test_hold_that_slips_out_at_step_7_is_dropped():
    lift = [0.12] * 7 + [0.10, 0.06, 0.02, 0.0, 0.0, 0.0, 0.0]
    grasped = [True] * 7 + [False] * 7
    t, flags = run_hold(grasped, lift)
    assert not any(flags)
    assert int(t.held_steps[0]) == 0 and int(t.max_held_steps[0]) == 7
    assert failure(t) == "dropped"


def test_a_break_restarts_the_count_and_hold_length_is_a_setting():
    # 6 held, one step lost, then 10 held: success only 10 steps after the break
    grasped = [True] * 6 + [False] + [True] * 10
    t, flags = run_hold(grasped, [0.12] * len(grasped))
    assert flags.index(True) == 16
    _, flags = run_hold([True] * 3, [0.12] * 3, hold_steps=1)  # hold_steps=1: the old one-step rule
    assert flags == [True, True, True]
    with pytest.raises(ValueError, match="hold_steps must be >= 1"):
        run_hold([True], [0.12], hold_steps=0)
