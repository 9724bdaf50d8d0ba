"""The one error type of policy construction."""


class PolicyError(ValueError):
    """A bad policy spec or checkpoint, with a one-line message."""
