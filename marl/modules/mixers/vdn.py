"""VDN mixer (Sunehag et al., 2018, "Value-Decomposition Networks For Cooperative
Multi-Agent Learning"): ``Q_tot = sum_i Q_i``.

Shape legend: ``B`` episodes, ``T`` time steps, ``N`` agents, ``S`` state size.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from marl.envs.base import EnvInfo

__all__ = ["VDNMixer", "VDNMixerConfig"]


@dataclass
class VDNMixerConfig:
    """Structured-config schema for :class:`VDNMixer` (no hyperparameters)."""

    _target_: str = "marl.modules.mixers.vdn.VDNMixer"
    """Import path Hydra instantiates."""


class VDNMixer(nn.Module):
    """Sum agent utilities into a joint value; has no parameters."""

    def __init__(self, env_info: EnvInfo) -> None:
        """Take the env's info, as every module does (a sum needs none of it)."""
        super().__init__()
        self.n_agents = env_info.n_agents

    def forward(
        self,
        agent_qs: Tensor,
        states: Tensor,
        actions: Tensor | None = None,
        max_qs: Tensor | None = None,
    ) -> Tensor:
        """Map ``agent_qs`` ``(B, T, N)`` to ``(B, T, 1)``; ``states`` ``(B, T, S)`` and the
        joint action and max Qs that the learner gives every mixer (QPLEX's) are unused."""
        return agent_qs.sum(dim=-1, keepdim=True)  # (B, T, 1)
