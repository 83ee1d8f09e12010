"""Tests for marl.modules.agents.rnn.RNNAgent."""

from __future__ import annotations

import torch

from marl.modules.agents.rnn import RNNAgent, RNNAgentConfig

M, L, IN, A, H = 6, 5, 7, 4, 16


def make_agent(seed: int = 0) -> RNNAgent:
    torch.manual_seed(seed)
    return RNNAgent(input_dim=IN, n_actions=A, hidden_dim=H)


def test_config_defaults() -> None:
    cfg = RNNAgentConfig()
    assert cfg._target_ == "marl.modules.agents.rnn.RNNAgent"
    assert cfg.hidden_dim == 64
    assert RNNAgent(3, 2).hidden_dim == 64


def test_initial_hidden() -> None:
    h = make_agent().initial_hidden(M)
    assert h.shape == (M, H) and h.dtype == torch.float32
    assert not h.any()


def test_output_shapes() -> None:
    agent = make_agent()
    q, h = agent(torch.randn(M, L, IN), agent.initial_hidden(M))
    assert q.shape == (M, L, A)
    assert h.shape == (M, H)
    q1, h1 = agent(torch.randn(M, 1, IN), h)
    assert q1.shape == (M, 1, A) and h1.shape == (M, H)


def test_unroll_equals_single_steps() -> None:
    agent = make_agent()
    x = torch.randn(M, L, IN)
    h0 = torch.randn(M, H)
    q_all, h_all = agent(x, h0)
    h = h0
    for t in range(L):
        q_t, h = agent(x[:, t : t + 1], h)
        torch.testing.assert_close(q_t[:, 0], q_all[:, t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, h_all, rtol=1e-5, atol=1e-6)


def test_hidden_state_matters_and_sequences_are_independent() -> None:
    agent = make_agent()
    x = torch.randn(M, 3, IN)
    q0, _ = agent(x, agent.initial_hidden(M))
    q1, _ = agent(x, torch.ones(M, H))
    assert not torch.allclose(q0, q1)
    # sequence 0 alone gives the same outputs as inside the batch
    q_single, _ = agent(x[:1], agent.initial_hidden(1))
    torch.testing.assert_close(q_single, q0[:1], rtol=1e-5, atol=1e-6)


def test_gradients_flow_to_all_parameters() -> None:
    agent = make_agent()
    q, _ = agent(torch.randn(M, L, IN), agent.initial_hidden(M))
    q.sum().backward()
    for name, p in agent.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
