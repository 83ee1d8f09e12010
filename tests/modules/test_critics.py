"""Tests for marl.modules.critics: the centralised V of MAA2C and MAPPO, COMA's critic."""

from __future__ import annotations

import torch

from marl.envs.base import EnvInfo
from marl.modules.critics.central_v import CentralV
from marl.modules.critics.coma import ComaCritic

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


# ------------------------------------------------------------------------ COMA's critic
def coma_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(2, 5, INFO.state_shape, generator=g)  # (B, T, S)
    obs = torch.randn(2, 5, INFO.n_agents, INFO.obs_shape, generator=g)  # (B, T, N, O)
    actions = torch.randint(0, INFO.n_actions, (2, 5, INFO.n_agents, 1), generator=g)
    return states, obs, actions


def test_coma_critic_gives_each_agent_a_q_per_own_action() -> None:
    critic = ComaCritic(INFO, hidden_dim=8)
    q = critic(*coma_inputs())  # (B, T, N, A)
    assert q.shape == (2, 5, INFO.n_agents, INFO.n_actions)


def test_coma_q_of_an_agent_ignores_its_own_action_not_the_others() -> None:
    """Q_i(s, (u_-i, a)) for every a: agent i's own action at t is not an input (it is
    the counterfactual), the other agents' actions are."""
    torch.manual_seed(0)
    critic = ComaCritic(INFO, hidden_dim=8)
    states, obs, actions = coma_inputs()
    q = critic(states, obs, actions)  # (B, T, N, A)
    changed = actions.clone()
    changed[:, 4, 0] = (changed[:, 4, 0] + 1) % INFO.n_actions  # agent 0's action at t=4
    q_changed = critic(states, obs, changed)  # (B, T, N, A)
    assert torch.equal(q_changed[:, :4], q[:, :4])  # earlier steps: unchanged
    assert torch.equal(q_changed[:, 4, 0], q[:, 4, 0])  # agent 0's own Q: unchanged
    assert not torch.allclose(q_changed[:, 4, 1:], q[:, 4, 1:])  # the others see it
    before_last = actions.clone()
    before_last[:, 3, 0] = (before_last[:, 3, 0] + 1) % INFO.n_actions
    q_last = critic(states, obs, before_last)  # agent 0's action at t=3 is t=4's last
    assert not torch.allclose(q_last[:, 4, 0], q[:, 4, 0])
