"""Tests for marl.modules.critics: the centralised V critic of MAA2C and MAPPO."""

from __future__ import annotations

import torch

from marl.envs.base import EnvInfo
from marl.modules.critics.central_v import CentralV

INFO = EnvInfo(n_agents=3, n_actions=4, obs_shape=5, state_shape=6, episode_limit=7)


def test_one_joint_value_per_state_without_agent_id() -> None:
    critic = CentralV(INFO, hidden_dim=8)
    states = torch.randn(2, 7, INFO.state_shape)  # (B, T, S)
    assert critic(states).shape == (2, 7, 1)


def test_agent_id_gives_each_agent_its_own_value_of_the_same_state() -> None:
    torch.manual_seed(0)
    critic = CentralV(INFO, hidden_dim=8, agent_id=True)
    states = torch.randn(2, 7, INFO.state_shape)  # (B, T, S)
    values = critic(states)  # (B, T, N)
    assert values.shape == (2, 7, INFO.n_agents)
    assert not torch.allclose(values[..., 0], values[..., 1])
    # Agent i's value is the network on [state, one-hot i].
    one_hot = torch.zeros(2, 7, INFO.n_agents)
    one_hot[..., 2] = 1.0
    want = critic.net(torch.cat([states, one_hot], dim=-1)).squeeze(-1)  # (B, T)
    torch.testing.assert_close(values[..., 2], want)


def test_values_depend_on_each_state_only() -> None:
    critic = CentralV(INFO, hidden_dim=8, agent_id=True)
    states = torch.randn(1, 4, INFO.state_shape)  # (B, T, S)
    changed = states.clone()
    changed[:, 3] += 1.0
    assert torch.equal(critic(states)[:, :3], critic(changed)[:, :3])
