"""rsl-rl PPO runner config of the state-based teacher (OpenArm-BoxGrasp-State)."""

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
    save_interval = 100
    experiment_name = "openarm_box_grasp_ppo"
    obs_groups = {"actor": ["policy"], "critic": ["policy"]}
    actor = RslRlMLPModelCfg(
        hidden_dims=[256, 128, 64],
        activation="elu",
        obs_normalization=True,
        distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=0.3),
    )
    critic = RslRlMLPModelCfg(hidden_dims=[256, 128, 64], activation="elu", obs_normalization=True)
    init_action: str = "home"
    """home: the untrained actor's mean holds the home pose (``openarm_vla.train.ppo``) | zero: rsl-rl's init."""
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
        gamma=0.98,
        lam=0.95,
        desired_kl=0.01,
        max_grad_norm=1.0,
    )
