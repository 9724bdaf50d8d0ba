"""The success detector's geometry, hand-computed (no simulator)."""

import math

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
