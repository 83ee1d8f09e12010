"""Tests for the agent networks (marl.modules.agents): every agent in the schema table."""

from __future__ import annotations

import hydra
import pytest
import torch

from marl.config import SCHEMAS
from marl.modules.agents.base import Agent

M, L, IN, A, H = 6, 5, 7, 4, 16
AGENTS = sorted(SCHEMAS["agent"])


def make_agent(name: str, seed: int = 0) -> Agent:
    """An agent built from its schema: a factory that the controller calls with sizes."""
    torch.manual_seed(seed)
    factory = hydra.utils.instantiate(SCHEMAS["agent"][name](hidden_dim=H))
    return factory(input_dim=IN, n_actions=A)


def hidden_size(agent: Agent) -> int:
    return agent.initial_hidden(1).shape[-1]


@pytest.mark.parametrize("name", AGENTS)
def test_initial_hidden(name: str) -> None:
    h = make_agent(name).initial_hidden(M)
    assert h.shape == (M, {"mlp": 0, "rnn": H}[name]) and h.dtype == torch.float32
    assert not h.any()


@pytest.mark.parametrize("name", AGENTS)
def test_output_shapes(name: str) -> None:
    agent = make_agent(name)
    q, h = agent(torch.randn(M, L, IN), agent.initial_hidden(M))
    assert q.shape == (M, L, A)
    assert h.shape == (M, hidden_size(agent))
    q1, h1 = agent(torch.randn(M, 1, IN), h)
    assert q1.shape == (M, 1, A) and h1.shape == (M, hidden_size(agent))


@pytest.mark.parametrize("name", AGENTS)
def test_unroll_equals_single_steps(name: str) -> None:
    agent = make_agent(name)
    x = torch.randn(M, L, IN)
    h0 = torch.randn(M, hidden_size(agent))
    q_all, h_all = agent(x, h0)
    h = h_step = h0
    for t in range(L):
        q_t, h = agent(x[:, t : t + 1], h)
        torch.testing.assert_close(q_t[:, 0], q_all[:, t], rtol=1e-5, atol=1e-6)
        q_step, h_step = agent.step(x[:, t], h_step)  # the acting path: no sequence dim
        assert q_step.shape == (M, A)
        torch.testing.assert_close(q_step, q_all[:, t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_all, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h_step, h_all, rtol=1e-5, atol=1e-6)


def test_rnn_hidden_state_matters() -> None:
    agent = make_agent("rnn")
    x = torch.randn(M, 3, IN)
    q0, _ = agent(x, agent.initial_hidden(M))
    q1, _ = agent(x, torch.ones(M, H))
    assert not torch.allclose(q0, q1)


def test_mlp_steps_are_independent() -> None:
    agent = make_agent("mlp")
    x = torch.randn(M, L, IN)
    q, _ = agent(x, agent.initial_hidden(M))
    q_rev, _ = agent(x.flip(1), agent.initial_hidden(M))
    torch.testing.assert_close(q_rev.flip(1), q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", AGENTS)
def test_sequences_are_independent(name: str) -> None:
    agent = make_agent(name)
    x = torch.randn(M, 3, IN)
    q0, _ = agent(x, agent.initial_hidden(M))
    q_single, _ = agent(x[:1], agent.initial_hidden(1))
    torch.testing.assert_close(q_single, q0[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", AGENTS)
def test_gradients_flow_to_all_parameters(name: str) -> None:
    agent = make_agent(name)
    q, _ = agent(torch.randn(M, L, IN), agent.initial_hidden(M))
    q.sum().backward()
    for pname, p in agent.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
