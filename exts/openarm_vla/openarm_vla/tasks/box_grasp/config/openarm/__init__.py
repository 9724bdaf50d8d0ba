"""Gym registration of the OpenArm box-grasp tasks (Isaac Lab 3.0 ids: no -v0 suffix).

Each task names its env config and the trainer configs that apply to it, as Isaac Lab's tasks do:
``rsl_rl_cfg_entry_point`` (PPO teacher, state tasks), ``sft_cfg_entry_point`` and ``grpo_cfg_entry_point``
(the VLA, vision tasks). The ``-Play`` ids are the same configs with Isaac Lab's ``play_mode()`` applied.
"""

import gymnasium as gym

from . import agents

_CFG = "openarm_vla.tasks.box_grasp.box_grasp_env_cfg"
_AGENTS = agents.__name__
_PPO = {"rsl_rl_cfg_entry_point": f"{_AGENTS}.rsl_rl_ppo_cfg:BoxGraspPPORunnerCfg", "default_agent": "rsl_rl"}
_VLA = {"sft_cfg_entry_point": f"{_AGENTS}.sft_cfg:BoxGraspSFTCfg", "grpo_cfg_entry_point": f"{_AGENTS}.grpo_cfg:BoxGraspGRPOCfg"}

TASKS = {
    "OpenArm-BoxGrasp": {"env_cfg_entry_point": f"{_CFG}:BoxGraspEnvCfg", **_VLA},
    "OpenArm-BoxGrasp-Play": {"env_cfg_entry_point": f"{_CFG}:BoxGraspEnvCfg", **_VLA, "play_mode": True},
    "OpenArm-BoxGrasp-DR": {"env_cfg_entry_point": f"{_CFG}:BoxGraspDREnvCfg", **_VLA},
    "OpenArm-BoxGrasp-DR-Play": {"env_cfg_entry_point": f"{_CFG}:BoxGraspDREnvCfg", **_VLA, "play_mode": True},
    "OpenArm-BoxGrasp-State": {"env_cfg_entry_point": f"{_CFG}:BoxGraspStateEnvCfg", **_PPO},
    "OpenArm-BoxGrasp-State-Play": {"env_cfg_entry_point": f"{_CFG}:BoxGraspStateEnvCfg", **_PPO, "play_mode": True},
    "OpenArm-BoxGrasp-Teleop": {"env_cfg_entry_point": "openarm_vla.tasks.box_grasp.teleop_env_cfg:BoxGraspTeleopEnvCfg"},
}

for _task_id, _kwargs in TASKS.items():
    if _task_id not in gym.registry:
        gym.register(id=_task_id, entry_point="isaaclab.envs:ManagerBasedRLEnv", disable_env_checker=True, kwargs=_kwargs)
