"""rsl-rl PPO runner config of the state-based teacher (OpenArm-BoxGrasp-State).

Isaac Lab's lift tasks are the reference: an ELU MLP [256, 128, 64], init std 1.0, 24 steps per env and
iteration, 5 epochs of 4 mini-batches, adaptive learning rate at KL 0.01. Differences: observation
normalization (our terms mix metres, radians and contact forces), learning rate 3e-4 (lift: 1e-4; our dense
terms are smaller), gamma 0.99 (the lift, hold and success terms come ~100 steps after the reach).
"""

import torch

from isaaclab.utils import configclass

from isaaclab_rl.rsl_rl import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg


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
