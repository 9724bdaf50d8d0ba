"""Gym registration of the OpenArm box-grasp tasks (Isaac Lab 3.0 ids: no -v0 suffix)."""

import gymnasium as gym

from . import agents

_CFG = "openarm_vla.tasks.box_grasp.box_grasp_env_cfg"

TASKS = {
    "OpenArm-BoxGrasp": f"{_CFG}:BoxGraspEnvCfg",
    "OpenArm-BoxGrasp-Play": f"{_CFG}:BoxGraspEnvCfg_PLAY",
    "OpenArm-BoxGrasp-State": f"{_CFG}:BoxGraspStateEnvCfg",
    "OpenArm-BoxGrasp-State-Play": f"{_CFG}:BoxGraspStateEnvCfg_PLAY",
    "OpenArm-BoxGrasp-Teleop": "openarm_vla.tasks.box_grasp.teleop_env_cfg:BoxGraspTeleopEnvCfg",
}

for _task_id, _entry in TASKS.items():
    if _task_id in gym.registry:
        continue
    _kwargs = {"env_cfg_entry_point": _entry}
    if "-State" in _task_id:
        _kwargs["rsl_rl_cfg_entry_point"] = f"{agents.__name__}.rsl_rl_ppo_cfg:BoxGraspPPORunnerCfg"
    gym.register(id=_task_id, entry_point="isaaclab.envs:ManagerBasedRLEnv", disable_env_checker=True, kwargs=_kwargs)
