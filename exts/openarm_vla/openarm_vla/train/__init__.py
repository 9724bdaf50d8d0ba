"""Trainers: SFT and GRPO of the VLA (nanoGPT-style loops over :mod:`.sft` / :mod:`.grpo`, math in
:mod:`.losses`, checkpoints/logging in :mod:`.runtime`), and the PPO state teacher (rsl-rl-lib, :mod:`.ppo`)."""
