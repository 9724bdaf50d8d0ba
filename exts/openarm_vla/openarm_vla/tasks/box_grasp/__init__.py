"""OpenArm box-grasp task: configs in :mod:`.box_grasp_env_cfg`, terms in :mod:`.mdp`, gym ids in :mod:`.config`."""
