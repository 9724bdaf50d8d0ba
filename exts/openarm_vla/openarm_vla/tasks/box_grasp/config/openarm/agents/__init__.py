"""Trainer configs of the OpenArm box-grasp tasks: rsl-rl PPO (state teacher), SFT and GRPO (the VLA)."""
