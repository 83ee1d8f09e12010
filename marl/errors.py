"""Errors a user can cause: ``marl-train`` prints their one-sentence message and exits 1."""


class UsageError(Exception):
    """A setting or path the user gave cannot work; the message says which and why."""
