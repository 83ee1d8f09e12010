"""Tests for marl.controllers.mac.MultiAgentController."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from marl.controllers.mac import ControllerConfig, MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.envs.base import EnvInfo
from marl.modules.agents.mlp import MLPAgent
from marl.modules.agents.rnn import RNNAgent
from marl.runners.episode import transition_scheme

N, A, OBS, S, H = 3, 4, 5, 2, 8
INFO = EnvInfo(n_agents=N, n_actions=A, obs_shape=OBS, state_shape=S, episode_limit=5)


def make_mac(seed: int = 0, agent: str = "rnn", **flags: bool) -> MultiAgentController:
    torch.manual_seed(seed)
    network = {"rnn": RNNAgent, "mlp": MLPAgent}[agent]
    return MultiAgentController(functools.partial(network, hidden_dim=H), INFO, **flags)


def make_batch(b: int = 2, seed: int = 0) -> EpisodeBatch:
    """B full episodes of T + 1 = 6 stored steps with random obs and actions."""
    g = torch.Generator().manual_seed(seed)
    steps = INFO.episode_limit + 1
    batch = EpisodeBatch(transition_scheme(INFO), b, steps)
    batch.update(
        {
            "state": torch.randn(b, steps, S, generator=g),
            "obs": torch.randn(b, steps, N, OBS, generator=g),
            "avail_actions": torch.ones(b, steps, N, A, dtype=torch.bool),
            "actions": torch.randint(0, A, (b, steps, N, 1), generator=g),
            "reward": torch.zeros(b, steps),
            "terminated": torch.zeros(b, steps, dtype=torch.bool),
        },
        ts=slice(None),
    )
    return batch


def test_n_outputs_makes_a_per_agent_value() -> None:
    """A MAC with one output per agent is IPPO's per-agent critic; the last-action input
    still has one entry per action."""
    torch.manual_seed(0)
    critic = MultiAgentController(functools.partial(RNNAgent, hidden_dim=H), INFO, n_outputs=1)
    batch = make_batch()
    values = critic.unroll_steps(batch.float("obs"), batch["actions"])
    assert values.shape == (2, INFO.episode_limit + 1, N, 1)
    assert critic.input_dim == make_mac().input_dim == OBS + A + N
    assert ControllerConfig.n_outputs is None  # one output per action unless set


@pytest.mark.parametrize("agent", ["rnn", "mlp"])
@pytest.mark.parametrize("share_params", [True, False])
def test_unroll_hidden_gives_each_steps_hidden_state(agent: str, share_params: bool) -> None:
    mac, batch = make_mac(agent=agent, share_params=share_params), make_batch()
    obs, actions = batch.float("obs"), batch["actions"]
    q, hidden = mac.unroll_hidden(obs, actions)  # (B, T, N, A), (B, T, N, H)
    steps = INFO.episode_limit + 1
    assert q.shape == (2, steps, N, A)
    assert hidden.shape == (2, steps, N, H if agent == "rnn" else 0)
    torch.testing.assert_close(q, mac.unroll_steps(obs, actions))  # the same values
    # Each step's hidden state is the state after the sequence up to that step.
    for t in (0, 3):
        last = mac.last_actions(actions)
        _, h_t = mac(
            obs[:, : t + 1], None if last is None else last[:, : t + 1], mac.initial_hidden(2)
        )
        torch.testing.assert_close(hidden[:, t], h_t)


@pytest.mark.parametrize(
    ("agent_id", "last_action", "expected"),
    [
        (True, True, OBS + A + N),  # 5 + 4 + 3 = 12
        (False, True, OBS + A),  # 9
        (True, False, OBS + N),  # 8
        (False, False, OBS),  # 5
    ],
)
def test_input_size(agent_id: bool, last_action: bool, expected: int) -> None:
    mac = make_mac(obs_agent_id=agent_id, obs_last_action=last_action)
    assert mac.input_dim == expected
    assert mac.agents[0].fc1.in_features == expected
    obs = torch.randn(2, 3, N, OBS)
    last = F.one_hot(torch.randint(0, A, (2, 3, N)), A)
    assert mac.build_inputs(obs, last).shape == (2, 3, N, expected)


def test_build_inputs_layout() -> None:
    """Inputs are [obs | last action one-hot | agent id one-hot]."""
    mac = make_mac()
    obs = torch.randn(2, 3, N, OBS)
    last = F.one_hot(torch.randint(0, A, (2, 3, N)), A).bool()  # stored dtype
    x = mac.build_inputs(obs, last)
    assert x.dtype == torch.float32
    assert torch.equal(x[..., :OBS], obs)
    assert torch.equal(x[..., OBS : OBS + A], last.float())
    eye = torch.eye(N).expand(2, 3, N, N)
    assert torch.equal(x[..., OBS + A :], eye)
    # agent i's id bit is at column OBS + A + i
    for i in range(N):
        assert (x[:, :, i, OBS + A + i] == 1).all()


def test_build_inputs_flags_off() -> None:
    obs = torch.randn(2, 3, N, OBS)
    last = F.one_hot(torch.randint(0, A, (2, 3, N)), A)
    ids_only = make_mac(obs_last_action=False).build_inputs(obs, None)
    assert torch.equal(ids_only[..., OBS:], torch.eye(N).expand(2, 3, N, N))
    last_only = make_mac(obs_agent_id=False).build_inputs(obs, last)
    assert torch.equal(last_only[..., OBS:], last.float())
    plain = make_mac(obs_agent_id=False, obs_last_action=False).build_inputs(obs, last)
    assert torch.equal(plain, obs)


def test_missing_last_actions_raises() -> None:
    with pytest.raises(ValueError, match="last actions"):
        make_mac().build_inputs(torch.randn(1, 1, N, OBS), None)


def test_initial_hidden() -> None:
    h = make_mac().initial_hidden(7)
    assert h.shape == (7, N, H)
    assert not h.any()
    assert make_mac(share_params=False).initial_hidden(2).shape == (2, N, H)


@pytest.mark.parametrize("agent", ["rnn", "mlp"])
@pytest.mark.parametrize("share_params", [True, False])
@pytest.mark.parametrize("last_action", [True, False])
def test_unroll_equals_stepping(agent: str, share_params: bool, last_action: bool) -> None:
    """unroll(batch) == forward one step at a time, carrying the hidden state, and
    == step (the acting path), which has no sequence dimension."""
    mac = make_mac(agent=agent, share_params=share_params, obs_last_action=last_action)
    batch = make_batch(b=2)
    full = mac.unroll_steps(batch.float("obs"), batch["actions"])
    steps = batch.max_seq_length
    assert full.shape == (2, steps, N, A)
    hidden = hidden_step = mac.initial_hidden(2)
    onehot = F.one_hot(batch["actions"][..., 0].long(), A).float()  # (B, T, N, A)
    for t in range(steps):
        last = torch.zeros(2, 1, N, A) if t == 0 else onehot[:, t - 1 : t]
        q, hidden = mac(batch["obs"][:, t : t + 1], last if last_action else None, hidden)
        assert q.shape == (2, 1, N, A)
        assert hidden.shape == (2, N, H if agent == "rnn" else 0)
        torch.testing.assert_close(q[:, 0], full[:, t], rtol=1e-5, atol=1e-6)
        last_step = last[:, 0] if last_action else None
        q_step, hidden_step = mac.step(batch["obs"][:, t], last_step, hidden_step)
        assert q_step.shape == (2, N, A)
        torch.testing.assert_close(q_step, full[:, t], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(hidden_step, hidden, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("share_params", [True, False])
def test_forward_returns_last_hidden(share_params: bool) -> None:
    mac = make_mac(share_params=share_params)
    obs = torch.randn(2, 4, N, OBS)
    last = F.one_hot(torch.randint(0, A, (2, 4, N)), A)
    _, h_all = mac(obs, last, mac.initial_hidden(2))
    _, h_a = mac(obs[:, :2], last[:, :2], mac.initial_hidden(2))
    _, h_b = mac(obs[:, 2:], last[:, 2:], h_a)
    torch.testing.assert_close(h_b, h_all, rtol=1e-5, atol=1e-6)


def test_per_agent_networks_are_separate() -> None:
    mac = make_mac(share_params=False, obs_agent_id=False)
    assert len(mac.agents) == N
    ptrs = {p.data_ptr() for net in mac.agents for p in net.parameters()}
    assert len(ptrs) == N * len(list(mac.agents[0].parameters()))
    # identical inputs for every agent (no agent id) -> different outputs per agent
    obs = torch.randn(2, 3, 1, OBS).expand(2, 3, N, OBS)
    last = F.one_hot(torch.randint(0, A, (2, 3, 1)), A).expand(2, 3, N, A)
    q, _ = mac(obs, last, mac.initial_hidden(2))
    for i in range(1, N):
        assert not torch.allclose(q[:, :, 0], q[:, :, i])
    # agent i's output is exactly network i applied to agent i's inputs
    x = mac.build_inputs(obs, last)
    for i in range(N):
        q_i, _ = mac.agents[i](x[:, :, i], torch.zeros(2, H))
        torch.testing.assert_close(q[:, :, i], q_i)


def test_shared_network_same_inputs_same_outputs() -> None:
    mac = make_mac(share_params=True, obs_agent_id=False)
    assert len(mac.agents) == 1
    obs = torch.randn(2, 3, 1, OBS).expand(2, 3, N, OBS)
    last = F.one_hot(torch.randint(0, A, (2, 3, 1)), A).expand(2, 3, N, A)
    q, _ = mac(obs, last, mac.initial_hidden(2))
    for i in range(1, N):
        torch.testing.assert_close(q[:, :, 0], q[:, :, i])
    # with agent ids the shared network tells the agents apart
    mac_id = make_mac(share_params=True, obs_agent_id=True)
    q_id, _ = mac_id(obs, last, mac_id.initial_hidden(2))
    assert not torch.allclose(q_id[:, :, 0], q_id[:, :, 1])


def test_unroll_uses_previous_step_actions() -> None:
    """Changing the action at step t changes Q only from step t + 1 on."""
    mac = make_mac()
    batch = make_batch(b=1)
    base = mac.unroll_steps(batch.float("obs"), batch["actions"])
    t = 2
    new = (batch["actions"][0, t, :, 0].long() + 1) % A  # (N,)
    batch.update({"actions": new.view(1, N, 1)}, ts=t, bs=torch.tensor([0]))
    changed = mac.unroll_steps(batch.float("obs"), batch["actions"])
    torch.testing.assert_close(changed[:, : t + 1], base[:, : t + 1])
    assert not torch.allclose(changed[:, t + 1], base[:, t + 1])
