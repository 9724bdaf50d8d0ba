"""Nested dicts of tensors or arrays (scene states, observation groups): map, concatenate, stack.

One set of walkers for every tree in the project (scene states of group resets, demo recording and
replay; observation rows), so the layouts stay the same wherever they are built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def tree_map(fn: Callable, tree):
    """``fn`` applied to every leaf; empty sub-dicts are dropped."""
    if isinstance(tree, dict):
        out = {k: tree_map(fn, v) for k, v in tree.items()}
        return {k: v for k, v in out.items() if not (isinstance(v, dict) and not v)}
    return fn(tree)


def _combine(trees: Sequence, leaf: Callable):
    first = trees[0]
    if isinstance(first, dict):
        return {k: _combine([t[k] for t in trees], leaf) for k in first}
    return leaf(trees)


def tree_leaves(tree) -> list:
    """The leaves in the order :func:`tree_map` visits them."""
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in tree_leaves(v)]
    return [tree]


def tree_cat(trees: Sequence, dim: int = 0):
    """Leaves concatenated along ``dim`` (torch tensors or numpy arrays)."""
    return _combine(trees, lambda xs: torch.cat(xs, dim) if isinstance(xs[0], torch.Tensor) else np.concatenate(xs, dim))


def tree_stack(trees: Sequence, dim: int = 0):
    """Leaves stacked along a new ``dim`` (torch tensors or numpy arrays)."""
    return _combine(trees, lambda xs: torch.stack(xs, dim) if isinstance(xs[0], torch.Tensor) else np.stack(xs, dim))


def tree_zip(fn: Callable, *trees):
    """``fn(leaf_of_each_tree...)`` over trees of the same layout (e.g. writing a step's rows into buffers)."""
    return _combine(trees, lambda xs: fn(*xs))


def to_numpy(x) -> np.ndarray:
    """A numpy copy of a tensor or array. On the CPU ``.numpy()`` would share memory with simulator buffers
    that the next step or reset overwrites in place, hence the copy; from a GPU the transfer is that copy."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x.cpu().numpy() if x.device.type != "cpu" else x.numpy().copy()
    return np.array(x, copy=True)
