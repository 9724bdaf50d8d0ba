"""The scripts' shared command line: overrides are told apart from flags, even after a list flag."""

from __future__ import annotations

import argparse

import pytest

from openarm_vla.cli import parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train.py")
    p.add_argument("--dataset", nargs="+", default=None)
    p.add_argument("--recipe", default=None)
    p.add_argument("--max_iterations", type=int, default=None)
    return p


def test_overrides_after_a_list_flag_are_given_back():
    args, overrides = parse(_parser(), ["--dataset", "a.hdf5", "agent.lr=1e-4", "b.hdf5", "env.x=2",
                                        "--max_iterations", "3", "agent.parallel=fsdp"])
    assert args.dataset == ["a.hdf5", "b.hdf5"] and args.max_iterations == 3
    assert overrides == ["agent.lr=1e-4", "env.x=2", "agent.parallel=fsdp"]


def test_recipe_comes_first_and_the_command_line_wins(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("agent:\n  lr: 0.001\n  augment:\n    enabled: false\nphysics: newton\n")
    _, overrides = parse(_parser(), ["--recipe", str(recipe), "agent.lr=2e-3"])
    assert overrides == ["agent.lr=0.001", "agent.augment.enabled=false", "physics=newton", "agent.lr=2e-3"]


def test_unknown_words_are_an_error(capsys):
    with pytest.raises(SystemExit):
        parse(_parser(), ["lr=1"])
    assert "config overrides look like env.x=1 / agent.y=2" in capsys.readouterr().err
