"""Run configs (YAML + dotted overrides) and atomic file writes."""

import argparse
import json

import numpy as np
import pytest
import yaml

from openarm_vla.utils.config import Config, ConfigError, load_config, parse_cli, save_config
from openarm_vla.utils.io import atomic_path, atomic_write_json, atomic_write_text

YAML = """
run:
  name: sft_small
  seed: 0
train:
  lr: 5e-6            # plain YAML 1.1 would read this as a string
  weight_decay: 0.01
  max_steps: 1000
  use_lora: false
  betas: [0.9, 0.95]
  lr_warmup_steps: 100
model:
  preset: tiny
  lora: {rank: 32, alpha: 16}
wandb:
  key: null
"""


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "sft.yaml"
    p.write_text(YAML)
    return p


def test_yaml_and_override_types(cfg_file):
    cfg = load_config(cfg_file)
    assert isinstance(cfg.train.lr, float) and cfg.train.lr == 5e-6
    cfg = load_config(cfg_file, [
        "train.lr=1e-5",            # float without a dot
        "train.max_steps=1e3",      # int key given an integral float stays int
        "train.weight_decay=0",     # float key given an int stays float
        "train.use_lora=true",
        "train.betas=[0.8, 0.9]",
        "run.name=001",             # string key keeps the text as typed
        "run.seed=-3",
        "model.lora.rank=8",
        "model.lora={alpha: 4}",    # a section may be set from a mapping of known keys
        "wandb.key=abc",            # null accepts anything
        "+train.extra.depth=2",     # '+' adds a new key on purpose
    ])
    assert cfg.train.lr == 1e-5 and type(cfg.train.lr) is float
    assert cfg.train.max_steps == 1000 and type(cfg.train.max_steps) is int
    assert cfg.train.weight_decay == 0.0 and type(cfg.train.weight_decay) is float
    assert cfg.train.use_lora is True
    assert cfg.train.betas == [0.8, 0.9]
    assert cfg.run.name == "001" and cfg.run.seed == -3
    assert cfg.model.lora.rank == 8 and cfg.model.lora.alpha == 4
    assert cfg.wandb.key == "abc"
    assert cfg.train.extra.depth == 2 and isinstance(cfg.train.extra, Config)
    assert cfg["train"]["lr"] == 1e-5  # still a dict


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", r"unknown config key 'train\.lrr' \(did you mean: train\.lr[,?]"),
    ("trian.lr=1", r"unknown config key 'trian\.lr' \(did you mean: train\.lr"),
    ("train.lr=fast", r"train\.lr=fast: expected a number"),
    ("train.use_lora=1", r"train\.use_lora=1: expected true or false"),
    ("train.betas=0.9", r"train\.betas=0\.9: expected a list"),
    ("model=tiny", r"'model' is a section"),
    ("run.name.first=x", r"'run\.name' is a value, not a section"),
    ("train.lr", r"expected key=value"),
    ("model.lora={rnak: 3}",
     r"unknown config key 'model\.lora\.rnak' \(valid keys: model\.lora\.rank, model\.lora\.alpha\)"),
])
def test_override_errors(cfg_file, override, message):
    with pytest.raises(ConfigError, match=message) as ei:
        load_config(cfg_file, [override])
    assert "\n" not in str(ei.value)


def test_dict_source_not_mutated_and_save_round_trip(tmp_path):
    src = {"a": {"b": 1, "c": [1, 2]}, "d": (1, 2)}
    cfg = load_config(src, ["a.b=2"])
    assert src["a"]["b"] == 1 and cfg.a.b == 2
    out = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load(out.read_text()) == {"a": {"b": 2, "c": [1, 2]}, "d": [1, 2]}
    assert load_config(out) == cfg.to_dict() | {"d": [1, 2]}
    assert [p.name for p in out.parent.iterdir()] == ["config.yaml"]
    assert load_config(out).get_path("a.c") == [1, 2]
    with pytest.raises(AttributeError, match="no key 'zz'"):
        cfg.zz


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+: invalid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(lst)


def test_parse_cli(cfg_file, capsys):
    cfg, args = parse_cli(["--config", str(cfg_file), "train.lr=1e-4", "model.preset=7b"])
    assert cfg.train.lr == 1e-4 and cfg.model.preset == "7b" and args.config == str(cfg_file)

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    cfg, args = parse_cli(["a.b=3", "--device", "cpu"], default_config={"a": {"b": 1}}, parser=parser)
    assert cfg.a.b == 3 and args.device == "cpu"

    with pytest.raises(SystemExit) as ei:
        parse_cli(["--config", str(cfg_file), "train.lrr=1"])
    assert ei.value.code == 2
    assert "unknown config key 'train.lrr'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_cli([])  # no --config and no default


def test_atomic_writes(tmp_path):
    target = tmp_path / "x.json"
    atomic_write_json(target, {"a": np.float32(1.5), "b": np.arange(3)})
    assert json.loads(target.read_text()) == {"a": 1.5, "b": [0, 1, 2]}
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert json.loads(target.read_text())["a"] == 1.5  # old content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]

    atomic_write_text(tmp_path / "sub" / "t.txt", "hello")
    assert (tmp_path / "sub" / "t.txt").read_text() == "hello"

    ckpt = tmp_path / "ckpt"  # directories (checkpoints) are replaced as a whole
    for step in (1, 2):
        with atomic_path(ckpt) as tmp:
            tmp.mkdir()
            (tmp / f"step{step}.bin").write_bytes(b"x")
    assert sorted(p.name for p in ckpt.iterdir()) == ["step2.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "sub", "x.json"]
