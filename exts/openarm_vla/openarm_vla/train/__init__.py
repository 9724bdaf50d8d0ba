"""Trainers: the PPO state teacher (rsl-rl-lib); SFT and GRPO of the VLA land here too."""

from .ppo import PPOExpert, load_teacher, train_ppo  # noqa: F401
