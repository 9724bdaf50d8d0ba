"""The errors a user can cause or meet: a bad request, a bad file, a full disk, a stopped run.

Every one carries a one-line message naming what is wrong and where. They share one base,
:class:`OpenArmVLAError`, which the scripts catch in one place (:func:`openarm_vla.cli.run_main`) and print as
``[prog] error: ...`` with exit status 2, never as a traceback. The subclasses say which layer refused; those that
used to be a builtin error type still are one (``except ValueError`` keeps working).
"""

from __future__ import annotations


class OpenArmVLAError(Exception):
    """Base of the project's one-line errors."""

    def __str__(self) -> str:
        return " ".join(str(self.args[-1] if self.args else "").split())


class TaskError(OpenArmVLAError, ValueError):
    """A bad task request: unknown id, unavailable backend, missing asset, bad override."""


class ConfigError(OpenArmVLAError, ValueError):
    """Config values of the wrong type or out of range, each named by its dotted key: one line per problem
    (``problems``), as the scripts print them."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class PolicyError(OpenArmVLAError, ValueError):
    """A bad policy spec or checkpoint to act with."""


class PPOError(PolicyError):
    """A bad PPO run config or policy file."""


class TrainError(OpenArmVLAError, ValueError):
    """A bad training request or a stopped run."""


class CheckpointError(OpenArmVLAError, ValueError):
    """A checkpoint directory that is missing, incomplete or does not fit the model."""


class DemoFileError(OpenArmVLAError):
    """A demonstration file that is missing, corrupt, or lacks a required key."""


class StatisticsKeyError(OpenArmVLAError, KeyError):
    """A dataset key missing from a statistics file (a KeyError whose message prints unquoted)."""


class DiskFullError(OpenArmVLAError, OSError):
    """A write that the disk cannot hold: names the target, what it needs and what is free."""
