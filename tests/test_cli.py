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


def test_the_7b_recipe_resolves_to_the_grpo_config():
    """configs/train/grpo_7b.yaml through the same layer train.py uses (a misspelled key would be refused)."""
    from pathlib import Path

    from openarm_vla.cli import recipe_overrides
    from openarm_vla.tasks.factory import load_cfgs

    recipe = Path(__file__).resolve().parents[1] / "configs" / "train" / "grpo_7b.yaml"
    env_cfg, agent = load_cfgs("OpenArm-BoxGrasp", "grpo_cfg_entry_point", overrides=recipe_overrides(recipe))
    assert agent.preset == "openvla-oft-7b" and agent.lora.enabled and agent.lora.rank == 32 and agent.lora.frozen_bf16
    assert (agent.num_groups, env_cfg.group_size, agent.max_rollout_steps, agent.micro_batch_size, agent.batch_size) == (
        64, 8, 200, 16, 128)
    assert not agent.gradient_checkpointing and not agent.recompute_old_logprobs and agent.compile
    assert (env_cfg.scene.front_camera.width, env_cfg.scene.front_camera.height) == (224, 224)


def test_a_recipe_string_with_braces_quotes_and_a_newline_reaches_the_config_as_written():
    """A pipeline recipe passes its values on as ``key=value`` overrides: a prompt template (braces, a newline, a
    quote) must not be read as a Hydra dict or cut at the quote."""
    from openarm_vla.cli import override_literal
    from openarm_vla.tasks.factory import load_cfgs

    for text in ("{instruction}", "In: What action should the robot take to {instruction}?\nOut:", "it's {instruction}",
                 "a\\nb {instruction}"):
        _, agent = load_cfgs("OpenArm-BoxGrasp", "sft_cfg_entry_point",
                             overrides=[f"agent.prompt_template={override_literal(text)}"])
        assert agent.prompt_template == text
    assert [override_literal(v) for v in ("cuda:0", "runs/x", 3, None, True)] == ["cuda:0", "runs/x", "3", "null", "true"]
    _, agent = load_cfgs("OpenArm-BoxGrasp", "sft_cfg_entry_point",  # strings in a list stay strings, "true" too
                         overrides=[f"agent.datasets={override_literal(['a b.hdf5', 'true', "it's"])}"])
    assert agent.datasets == ["a b.hdf5", "true", "it's"]
