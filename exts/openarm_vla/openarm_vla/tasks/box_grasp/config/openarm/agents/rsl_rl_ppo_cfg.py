"""rsl-rl PPO runner config of the state-based teacher (OpenArm-BoxGrasp-State).

Isaac Lab's lift tasks are the reference: an ELU MLP [256, 128, 64], init std 1.0, 24 steps per env and
iteration, 5 epochs of 4 mini-batches, adaptive learning rate at KL 0.01. Differences: observation
normalization (our terms mix metres, radians and contact forces), learning rate 3e-4 (lift: 1e-4; our dense
terms are smaller), gamma 0.99 (the lift, hold and success terms come ~100 steps after the reach).
"""

import torch

from isaaclab.utils import configclass

from isaaclab_rl.rsl_rl import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg

from openarm_vla.checks import rule_problem


@configclass
class BoxGraspPPORunnerCfg(RslRlOnPolicyRunnerCfg):
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    """rsl-rl's default is cuda:0, which ``isaaclab train --device cpu`` keeps: on a machine without CUDA the
    runner would fail, so the default follows the machine (``agent.device=...`` overrides it)."""
    num_steps_per_env = 24
    max_iterations = 1500
    save_interval = 50
    experiment_name = "openarm_box_grasp_ppo"
    obs_groups = {"actor": ["policy"], "critic": ["policy"]}
    actor = RslRlMLPModelCfg(
        hidden_dims=[256, 128, 64],
        activation="elu",
        obs_normalization=True,
        distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=1.0),
    )
    critic = RslRlMLPModelCfg(hidden_dims=[256, 128, 64], activation="elu", obs_normalization=True)
    init_action: str = "zero"
    """zero: rsl-rl's init (the State task's top-down deltas hold the pose at 0) | home: the actor's mean starts
    at the home-pose action (only for a task with the 8-DoF absolute interface; ``openarm_vla.train.ppo``)."""
    log_git: bool = True
    """Store the git diff of this repo in the run directory, as Isaac Lab's train script does."""
    algorithm = RslRlPpoAlgorithmCfg(
        value_loss_coef=1.0,
        use_clipped_value_loss=True,
        clip_param=0.2,
        entropy_coef=0.005,
        num_learning_epochs=5,
        num_mini_batches=4,
        learning_rate=3.0e-4,
        schedule="adaptive",
        gamma=0.99,
        lam=0.95,
        desired_kl=0.01,
        max_grad_norm=1.0,
    )

    __checks__ = {
        "seed": ">= 0", "device": "non-empty", "num_steps_per_env": ">= 1", "max_iterations": ">= 1", "save_interval": ">= 1",
        "clip_actions": "> 0", "experiment_name": "non-empty", "init_action": "in {home, zero}",
        "actor.hidden_dims": ">= 1", "critic.hidden_dims": ">= 1",
        "actor.activation": "in {elu, selu, relu, crelu, lrelu, tanh, sigmoid, softplus, gelu, swish, mish, identity}",
        "critic.activation": "in {elu, selu, relu, crelu, lrelu, tanh, sigmoid, softplus, gelu, swish, mish, identity}",
        "actor.distribution_cfg.init_std": "> 0",
        "algorithm.num_learning_epochs": ">= 1", "algorithm.num_mini_batches": ">= 1", "algorithm.learning_rate": "> 0",
        "algorithm.schedule": "in {adaptive, fixed}", "algorithm.gamma": "in [0, 1]", "algorithm.lam": "in [0, 1]",
        "algorithm.entropy_coef": ">= 0", "algorithm.desired_kl": "> 0", "algorithm.max_grad_norm": "> 0",
        "algorithm.value_loss_coef": ">= 0", "algorithm.clip_param": "> 0",
    }
    """Ranges of the fields we set (:mod:`openarm_vla.checks`); the other rsl-rl fields get their type checked."""

    def run_problems(self, env_cfg, num_envs: int | None, world: int) -> list[str]:
        """rsl-rl splits the num_envs x num_steps_per_env samples of an iteration into num_mini_batches."""
        n = env_cfg.scene.num_envs if env_cfg is not None else None
        line = rule_problem(self, "agent", "num_envs * num_steps_per_env >= algorithm.num_mini_batches",
                            "no empty mini-batch", {"num_envs": ("env.scene.num_envs", n)})
        return [line] if line else []
