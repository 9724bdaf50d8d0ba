"""Bad input is refused before anything is built: every config value checked for type and range, flags and
outputs at start, one stderr line per problem naming the key, exit 2 (no simulator: fast lane)."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from openarm_vla.checks import declared, problems, type_hints, valid_range

ROOT = Path(__file__).resolve().parents[1]
NO_POLICY = "/nonexistent/checkpoint"  # should a check be missing, a script stops on it before building its env


def _one_line(script_main, capsys, script: str, *args: str) -> str:
    assert script_main(script, *args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------------------------------------- the scripts

TRAIN_CASES = {
    # the examples
    "temperature": (["--algo", "grpo", "agent.temperature=-1"],
                    "agent.temperature=-1: must be > 0 (greedy rollouts never give a group mixed outcomes)"),
    "lr_abc": (["--algo", "sft", "agent.lr=abc"], "agent.lr='abc': must be a number, not a str"),
    "num_envs_0": (["--algo", "grpo", "--num_envs", "0"], "--num_envs=0: must be >= 1"),
    "num_envs_neg": (["--algo", "grpo", "--num_envs", "-1"], "--num_envs=-1: must be >= 1"),
    # a cross-field rule, nested fields, a tuple and a list of the wrong type, an env field, a bool for an int
    "min_lr": (["--algo", "sft", "agent.min_lr=0.1"],
               "agent.min_lr=0.1, agent.lr=0.0003: need min_lr <= lr (the cosine schedule decays from lr to min_lr)"),
    "micro": (["--algo", "sft", "agent.micro_batch_size=100"],
              "agent.batch_size=256, agent.micro_batch_size=100: need batch_size % micro_batch_size == 0"),
    "brightness": (["--algo", "sft", "agent.augment.brightness=-1"], "agent.augment.brightness=-1: must be in [0, 1]"),
    "lora_rank": (["--algo", "grpo", "agent.lora.rank=0"], "agent.lora.rank=0: must be >= 1"),
    "betas": (["--algo", "sft", "agent.betas=0.9"], "agent.betas=0.9: must be a list of 2 numbers, not a float"),
    "betas_elem": (["--algo", "sft", "agent.betas=[0.9,'x']"], "agent.betas[1]='x': must be a number, not a str"),
    "betas_range": (["--algo", "grpo", "agent.betas=[0.9,1.5]"], "agent.betas[1]=1.5: must be in [0, 1)"),
    "targets": (["--algo", "grpo", "agent.lora.target_modules=q_proj"],
                "agent.lora.target_modules='q_proj': must be a list of strings, not a str"),
    "bool_int": (["--algo", "grpo", "env.group_size=true"], "env.group_size=True: must be an integer, not a bool"),
    "float_int": (["--algo", "grpo", "agent.max_iterations=1e3"],
                  "agent.max_iterations=1000.0: must be an integer, not a float"),
    "choice": (["--algo", "grpo", "agent.aggregation=sum"],
               "agent.aggregation='sum': must be one of seq-mean-token-mean, token-mean"),
    "keep": (["--algo", "grpo", "agent.keep_low=0.6", "agent.keep_high=0.4"],
             "agent.keep_low=0.6, agent.keep_high=0.4: need keep_low < keep_high"),
    "env_camera": (["--algo", "grpo", "env.scene.front_camera.width=0"],
                   "env.scene.front_camera.width=0: must be in [8, 2048]"),
    "env_isaaclab": (["--algo", "sft", "env.sim.dt=abc"], "env.sim.dt='abc': must be a number, not a str"),
    "env_task": (["--algo", "grpo", "env.success.lift_height=-0.1"],
                 "env.success.lift_height=-0.1: must be > 0"),
    "env_rule": (["--algo", "sft", "env.episode_length_s=0.001"],
                 "env.episode_length_s=0.001, env.sim.dt=0.01, env.decimation=2: need episode_length_s >= sim.dt * decimation"),
    "grpo_split": (["--algo", "grpo", "--num_envs", "12", "env.group_size=8", "agent.eval_episodes=0"],
                   "--num_envs=12, env.group_size=8: need num_envs % group_size == 0"),
    "grpo_bank": (["--algo", "grpo", "agent.eval_episodes=1000"],
                  "agent.eval_episodes=1000: must be <= the 512 rollout envs per rank"),
    "ppo_rl": (["--algo", "ppo", "agent.algorithm.gamma=2"], "agent.algorithm.gamma=2: must be in [0, 1]"),
    "ppo_literal": (["--algo", "ppo", "agent.logger=csv"], "agent.logger='csv': must be one of tensorboard, neptune, wandb"),
    "optional_literal": (["--algo", "ppo", "agent.torch_compile_mode=fast"],
                         "agent.torch_compile_mode='fast': must be one of default, max-autotune-no-cudagraphs or null"),
    "max_iterations": (["--algo", "sft", "--max_iterations", "0"], "--max_iterations=0: must be >= 1"),
}


def _fail_fast(algo: str, tmp_path: Path) -> list[str]:
    """Arguments that stop a run before its env is built should a check be missing (SFT: no --dataset): the
    test then fails in seconds instead of training."""
    return {"sft": [], "grpo": ["--init", str(tmp_path / "no_checkpoint")],
            "ppo": ["env.scene.robot.spawn.usd_path=/nonexistent/openarm.usda"]}[algo]


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_train_refuses_bad_values_in_one_line_before_building(case, tmp_path, script_main, capsys):
    args, expected = TRAIN_CASES[case]
    run = tmp_path / "run"
    line = _one_line(script_main, capsys, "train.py", *args, *_fail_fast(args[1], tmp_path), "--device", "cpu",
                     "--output", str(run))
    assert line.startswith("[train] error: " + expected), line
    assert not run.exists() and os.listdir(tmp_path) == []  # no run directory, no probe left behind


def test_unwritable_output_is_one_line_naming_the_path(tmp_path, script_main, capsys):
    """A path under a regular file cannot be created, root or not (a chmod 500 parent does not stop root)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    for script, args in [("train.py", ["--algo", "grpo", *_fail_fast("grpo", tmp_path), "--output", f"{blocker}/run"]),
                         ("evaluate.py", ["--policy", NO_POLICY, "--output", f"{blocker}/eval"]),
                         ("generate_demos.py", ["--expert", f"ppo:{NO_POLICY}", "--output", f"{blocker}/d/demos.hdf5"]),
                         ("record_demos.py", ["--output", f"{blocker}/t.hdf5"]),
                         ("benchmark.py", ["--task", "OpenArm-Nope", "--json", f"{blocker}/b.json"]),
                         ("replay_demos.py", [str(tmp_path / "none.hdf5"), "--results", f"{blocker}/r.json"])]:
        line = _one_line(script_main, capsys, script, *args)
        assert re.search(rf"--(output|json|results) {re.escape(str(blocker))}/\S+: cannot be created, "
                         rf"{re.escape(str(blocker))} is a file$", line), line
    assert "--output" in _one_line(script_main, capsys, "train.py", "--algo", "sft", "--output", str(blocker))
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_quickstart_checks_the_recipe_output(tmp_path, capsys):
    import importlib.util

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    spec = importlib.util.spec_from_file_location("quickstart_script", ROOT / "scripts" / "quickstart.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit) as e:
        mod.main(["quickstart", f"output={blocker}/run"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"[quickstart] error: output {blocker}/run: cannot be created, {blocker} is a file"]


@pytest.mark.parametrize("script,args,expected", [
    ("evaluate.py", ["--policy", NO_POLICY, "--num_envs", "0"], "--num_envs=0: must be >= 1"),
    ("evaluate.py", ["--policy", NO_POLICY, "--num_episodes", "-3"], "--num_episodes=-3: must be >= 1"),
    ("evaluate.py", ["--policy", NO_POLICY, "--temperature", "-1"], "--temperature=-1.0: must be >= 0"),
    ("evaluate.py", ["--policy", NO_POLICY, "--image_size", "4"], "--image_size=4: must be in [8, 2048]"),
    ("generate_demos.py", ["--expert", f"ppo:{NO_POLICY}", "--num_demos", "0"], "--num_demos=0: must be >= 1"),
    ("generate_demos.py", ["--expert", f"ppo:{NO_POLICY}", "--group_size", "0"], "--group_size=0: must be >= 1"),
    ("benchmark.py", ["--task", "OpenArm-Nope", "--num_envs", "2", "0"], "--num_envs=0: must be >= 1"),
    ("replay_demos.py", ["x.hdf5", "--num_envs", "-1"], "--num_envs=-1: must be >= 1"),
    ("record_demos.py", ["--num_demos", "0"], "--num_demos=0: must be >= 1"),
])
def test_other_scripts_check_their_flags(script, args, expected, tmp_path, script_main, capsys):
    out = ["--output", str(tmp_path / "out.hdf5")] if script in ("generate_demos.py", "record_demos.py") else \
        ["--output", str(tmp_path / "out")] if script == "evaluate.py" else []
    line = _one_line(script_main, capsys, script, *args, *out)
    assert expected in line, line
    assert os.listdir(tmp_path) == []


def test_env_override_in_a_script_is_refused_before_the_env(tmp_path, script_main, capsys):
    """evaluate.py's env config is checked in make_env (factory.configure) before the simulation starts."""
    line = _one_line(script_main, capsys, "evaluate.py", "--policy", "random", "--output", str(tmp_path / "o"),
                     "--device", "cpu", "env.decimation=0")
    assert line == "[evaluate] error: env.decimation=0: must be >= 1"


def test_several_problems_get_one_line_each(tmp_path, script_main, capsys):
    assert script_main("train.py", "--algo", "grpo", "agent.lr=abc", "agent.temperature=0", "agent.lora.rank=-2",
                       *_fail_fast("grpo", tmp_path), "--output", str(tmp_path / "r")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["[train] error", "[train] error", "[train] error"]
    assert [ln.split(" ")[2].split("=")[0] for ln in lines] == ["agent.lr", "agent.lora.rank", "agent.temperature"]


def test_world_size_rule(monkeypatch, tmp_path, script_main, capsys):
    monkeypatch.setenv("WORLD_SIZE", "3")
    line = _one_line(script_main, capsys, "train.py", "--algo", "grpo", "agent.eval_episodes=0",
                     *_fail_fast("grpo", tmp_path), "--output", str(tmp_path / "r"))
    assert "agent.num_groups=64, 3 processes (WORLD_SIZE): need num_groups % world_size == 0" in line


def test_make_env_refuses_zero_envs_before_the_cloner():
    """The Python API: num_envs=0 was a ZeroDivisionError in the cloner."""
    from openarm_vla.errors import ConfigError, OpenArmVLAError
    from openarm_vla.tasks.factory import configure, load_env_cfg

    cfg = load_env_cfg("OpenArm-BoxGrasp")
    with pytest.raises(ConfigError) as e:
        configure(cfg, num_envs=0, device="cpu", group_size=0)
    assert isinstance(e.value, OpenArmVLAError)
    assert sorted(e.value.problems) == ["env.group_size=0: must be >= 1", "env.scene.num_envs=0: must be >= 1"]


# ------------------------------------------------------------------------------------------- the output probe


def test_output_probe(tmp_path):
    from openarm_vla.cli import output_problem

    f = tmp_path / "f.txt"
    f.write_text("x")
    assert output_problem("--output", tmp_path / "new" / "deep", directory=True) is None
    assert output_problem("--output", tmp_path / "new" / "x.hdf5", directory=False) is None
    assert output_problem("--output", f, directory=False) is None  # replaced atomically
    assert output_problem("--output", f, directory=True) == f"--output {f}: is a file, expected a directory"
    assert output_problem("--output", tmp_path, directory=False) == \
        f"--output {tmp_path}: is a directory, expected a file path"
    assert output_problem("--output", f / "sub" / "run", directory=True) == \
        f"--output {f / 'sub' / 'run'}: cannot be created, {f} is a file"
    assert sorted(os.listdir(tmp_path)) == ["f.txt"]  # the probe removed what it made
    if os.geteuid() != 0:  # root writes through a read-only mode
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert output_problem("--output", ro / "run", directory=True) == \
            f"--output {ro / 'run'}: cannot write in {ro} (Permission denied)"


# ------------------------------------------------------------------------------------------- every field


def _trainer_classes():
    from openarm_vla.tasks.box_grasp.config.openarm.agents.grpo_cfg import BoxGraspGRPOCfg
    from openarm_vla.tasks.box_grasp.config.openarm.agents.sft_cfg import AugmentCfg, BoxGraspSFTCfg
    from openarm_vla.tasks.box_grasp.config.openarm.agents.vla_trainer_cfg import LoraCfg, VLATrainerCfg
    from openarm_vla.tasks.box_grasp.teleop_env_cfg import TeleopCfg

    return [VLATrainerCfg, BoxGraspSFTCfg, AugmentCfg, BoxGraspGRPOCfg, LoraCfg, TeleopCfg]


def _numbers_in(tp) -> bool:
    return tp in (int, float) or any(_numbers_in(a) for a in getattr(tp, "__args__", ()) or ())


def _outside(rng: str, default):
    """A value just outside a declared range (None where the range has no outside)."""
    rng = rng.strip()
    if rng == "any":
        return None
    if rng == "non-empty":
        return type(default)()
    if m := re.match(r"^in\s*\{", rng):
        return "no-such-choice"
    if m := re.match(r"^(>=|<=|>|<)\s*(\S+)$", rng):
        x = float(m.group(2))
        return {">": x, ">=": x - 1, "<": x, "<=": x + 1}[m.group(1)]
    m = re.match(r"^in\s*([\[(])\s*([^,]+),\s*([^\])]+)([\])])$", rng)
    lo = float(m.group(2))
    return lo if m.group(1) == "(" else lo - 0.5


def _wrong_type(tp):
    return "abc" if _numbers_in(tp) or tp is bool or getattr(tp, "__origin__", None) in (list, tuple) else 12345


@pytest.mark.parametrize("cls", _trainer_classes(), ids=lambda c: c.__name__)
def test_every_field_has_a_type_and_a_range_that_bite(cls):
    """Each field: an annotation that resolves, a declared range where it holds numbers (``any`` explicitly
    where none applies), the default inside it, a value just outside it refused, a value of the wrong type refused."""
    checks, rules = declared(cls)
    hints = type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    assert set(k.split(".")[0] for k in checks) <= set(names), "a check of no field"
    for expr, _ in rules:
        compile(expr, "<rule>", "eval")
    for name in names:
        tp = hints[name]
        assert tp is not None, f"{cls.__name__}.{name}: annotation does not resolve"
        default = getattr(cls(), name)
        if dataclasses.is_dataclass(default):
            continue  # checked as its own class
        if _numbers_in(tp):
            assert name in checks, f"{cls.__name__}.{name}: numbers without a declared range (or 'any')"
        cfg = cls()
        assert problems(cfg, "x") == [], problems(cfg, "x")
        setattr(cfg, name, _wrong_type(tp))
        assert any(p.startswith(f"x.{name}=") and ": must be " in p for p in problems(cfg, "x")), (name, problems(cfg, "x"))
        if name in checks:
            assert valid_range(checks[name].range), checks[name]
            bad = _outside(checks[name].range, default)
            if bad is None:
                continue
            if isinstance(default, (list, tuple)) and not isinstance(bad, (list, tuple)):
                bad = [bad] * len(default) if default else [bad]
            if tp is int or int in getattr(tp, "__args__", ()) and isinstance(bad, float):
                bad = int(bad) if float(bad).is_integer() else bad
            cfg = cls()
            setattr(cfg, name, bad)
            assert any(p.startswith(f"x.{name}") for p in problems(cfg, "x")), (name, bad, problems(cfg, "x"))


def test_the_declared_env_and_ppo_keys_exist_and_resolve():
    from openarm_vla.checks import _hint, _lookup
    from openarm_vla.tasks.factory import load_cfgs

    for task, entry in [("OpenArm-BoxGrasp", None), ("OpenArm-BoxGrasp-Teleop", None),
                        ("OpenArm-BoxGrasp-State", "rsl_rl_cfg_entry_point")]:
        env_cfg, agent = load_cfgs(task, entry)
        for cfg in (env_cfg, agent):
            if cfg is None:
                continue
            for key, check in declared(type(cfg))[0].items():
                assert valid_range(check.range), (key, check)
                owner, value = _lookup(cfg, key)
                if owner is None:
                    continue  # under a None (the state task has no camera)
                assert value is not dataclasses.MISSING, key
                tp = check.type or _hint(owner, key.split(".")[-1])
                assert tp is not None, f"{key}: no type (annotate it or declare one)"
    from openarm_vla.tasks.box_grasp.config.openarm.agents.rsl_rl_ppo_cfg import BoxGraspPPORunnerCfg

    own = BoxGraspPPORunnerCfg.__configclass_own_fields__ & {f.name for f in dataclasses.fields(BoxGraspPPORunnerCfg)}
    checks = declared(BoxGraspPPORunnerCfg)[0]
    for name in own:  # the fields we set: each has a range, or is a group whose fields we set have one
        value = getattr(BoxGraspPPORunnerCfg(), name)
        if dataclasses.is_dataclass(value):
            assert any(k.startswith(name + ".") for k in checks), name
        elif _numbers_in(type_hints(BoxGraspPPORunnerCfg)[name]) or isinstance(value, str):
            assert name in checks, name


# ------------------------------------------------------------------------------------------- shipped configs


def _check(env_cfg, agent, num_envs=None):
    from openarm_vla.cli import check_configs

    check_configs("test", env_cfg, agent, num_envs=num_envs)  # exits on a problem


def test_defaults_and_every_task_pass():
    from openarm_vla.tasks import TASK_IDS
    from openarm_vla.tasks.factory import configure, load_cfgs

    for task in TASK_IDS:
        env_cfg, _ = load_cfgs(task)
        assert problems(env_cfg, "env") == [], (task, problems(env_cfg, "env"))
        configure(env_cfg, device="cpu")
    for task, entry in [("OpenArm-BoxGrasp", "sft_cfg_entry_point"), ("OpenArm-BoxGrasp", "grpo_cfg_entry_point"),
                        ("OpenArm-BoxGrasp-State", "rsl_rl_cfg_entry_point")]:
        _check(*load_cfgs(task, entry))


def test_a_manager_term_set_to_null_is_disabled_as_in_isaac_lab():
    """``env.events.box_mass=null`` is how an Isaac Lab user turns a term off; a settings group is not a term."""
    from openarm_vla.tasks.factory import configure, load_cfgs

    env_cfg, _ = load_cfgs("OpenArm-BoxGrasp", overrides=["env.events.box_mass=null", "env.rewards.success=null"])
    assert env_cfg.events.box_mass is None and env_cfg.rewards.success is None
    assert problems(env_cfg, "env") == []
    configure(env_cfg, device="cpu")
    env_cfg, _ = load_cfgs("OpenArm-BoxGrasp", overrides=["env.success=null"])
    assert problems(env_cfg, "env") == ["env.success=None: must be a SuccessCfg (a group of settings: set its fields "
                                        "one by one, env.success.FIELD=value), not a NoneType"]


def test_shipped_recipes_pass(monkeypatch):
    """configs/train/grpo_7b.yaml (a train.py recipe) and every pipeline recipe's stages, with the overrides and
    flags the pipeline gives each command."""
    from openarm_vla.cli import recipe_overrides
    from openarm_vla.pipeline import Pipeline
    from openarm_vla.pipeline_cfg import load_pipeline_cfg
    from openarm_vla.tasks.factory import configure, load_cfgs

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    _check(*load_cfgs("OpenArm-BoxGrasp", "grpo_cfg_entry_point",
                      overrides=recipe_overrides(ROOT / "configs" / "train" / "grpo_7b.yaml")))
    import gymnasium as gym

    import openarm_vla.tasks  # noqa: F401  (registers the gym ids)

    for path in sorted((ROOT / "configs" / "pipelines").glob("*.yaml")):
        r = load_pipeline_cfg(path)
        if r.task not in gym.registry and r.task == "OpenArm-BoxGrasp-DR":  # issue 24's scene branch registers it
            continue
        pipe = Pipeline(r, ROOT)
        configure(load_cfgs(r.task, overrides=r.env_args)[0], num_envs=r.demos.num_envs, device="cpu",
                  image_size=r.image_size, group_size=r.demos.group_size)
        for stage, entry in (("sft", "sft_cfg_entry_point"), ("grpo", "grpo_cfg_entry_point")):
            s = getattr(r, stage)
            flags = [f"agent.max_iterations={s.max_iterations}"] + ([f"agent.preset={s.preset}"] if s.preset else [])
            env_cfg, agent = load_cfgs(r.task, entry, overrides=[*pipe._env_args(), *pipe._bank(), *pipe._overrides(s), *flags])
            _check(env_cfg, agent, num_envs=s.num_envs)


def test_declared_choices_match_the_code_that_reads_them():
    """A choice list in a config must not drift from the names its consumer accepts."""
    from openarm_vla.tasks.box_grasp.config.openarm.agents.rsl_rl_ppo_cfg import BoxGraspPPORunnerCfg
    from openarm_vla.tasks.box_grasp.config.openarm.agents.vla_trainer_cfg import VLATrainerCfg
    from openarm_vla.train.distributed import PARALLEL
    from openarm_vla.train.ppo import INIT_ACTIONS
    from openarm_vla.vla.config import PRESETS

    def choices(cls, key):
        return {c.strip() for c in re.match(r"^in\s*\{(.*)\}$", declared(cls)[0][key].range).group(1).split(",")}

    assert choices(VLATrainerCfg, "preset") == set(PRESETS)
    assert choices(VLATrainerCfg, "parallel") == set(PARALLEL)
    assert choices(BoxGraspPPORunnerCfg, "init_action") == set(INIT_ACTIONS)
