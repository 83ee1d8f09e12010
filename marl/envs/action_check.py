"""Checks that every agent's action is in range and, in a live copy, available.

On the CPU a bad action raises at the step that took it, naming the copy, agent and
action. On an accelerator, reading the answer back at every step would make the host
wait for the device, so by default the check stays on the device and its flag is read
once per episode, when the next episode starts (``raise_pending``).
"""

from __future__ import annotations

import torch


class ActionCheck:
    """Validates (B, N) actions for an env with ``n_actions`` actions on ``device``."""

    def __init__(self, n_actions: int, device: torch.device, deferred: bool | None = None) -> None:
        self.n_actions = n_actions
        self.deferred = device.type != "cpu" if deferred is None else deferred
        self._bad = torch.zeros((), dtype=torch.bool, device=device)  # a deferred failure

    def __call__(
        self, actions: torch.Tensor, live: torch.Tensor, avail: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Check actions (B, N) long given live (B,) bool and avail (B, N, A) bool (None: all
        available); return them clamped into range, so that a deferred failure cannot index
        out of bounds before it is reported."""
        out_of_range = (actions < 0) | (actions >= self.n_actions)  # (B, N)
        safe = actions.clamp(0, self.n_actions - 1)  # (B, N)
        bad = out_of_range
        if avail is not None:
            chosen = avail.gather(2, safe.unsqueeze(-1)).squeeze(-1)  # (B, N)
            bad = bad | (~chosen & live.unsqueeze(1))  # (B, N)
        if self.deferred:
            self._bad |= bad.any()
        elif bool(bad.any()):
            raise ValueError(self._describe(actions, out_of_range, bad, avail))
        return safe

    def raise_pending(self) -> None:
        """Raise for a bad action seen since the last call (deferred mode; one host read)."""
        if self.deferred and bool(self._bad):
            self._bad.zero_()
            raise ValueError(
                "An agent chose an action out of range or not available during the last "
                "episode; run the env with device=cpu to see which."
            )

    def _describe(
        self,
        actions: torch.Tensor,
        out_of_range: torch.Tensor,
        bad: torch.Tensor,
        avail: torch.Tensor | None,
    ) -> str:
        if bool(out_of_range.any()):
            return f"actions must lie in [0, {self.n_actions}), got {actions.tolist()}."
        assert avail is not None  # only an unavailable action is left to explain
        b, i = (int(x) for x in bad.nonzero()[0])
        choices = avail[b, i].nonzero().flatten().tolist()
        return (
            f"Agent {i} of env copy {b} cannot perform action {int(actions[b, i])} "
            f"(available: {choices})."
        )
