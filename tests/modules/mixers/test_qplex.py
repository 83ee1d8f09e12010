"""QPLEX's duplex dueling mixer: positive weights, greedy joint action, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from marl.envs.base import EnvInfo
from marl.modules.mixers.qplex import QPLEXMixer

N, A, S = 3, 4, 5
INFO = EnvInfo(n_agents=N, n_actions=A, obs_shape=1, state_shape=S, episode_limit=1)
JOINT = torch.tensor(list(itertools.product(range(A), repeat=N)))  # (A^N, N) every joint action


def mixer(seed: int, attention_layers: int = 1) -> QPLEXMixer:
    """A mixer whose weights are far from their initial values (scaled up), so that the
    importance weights and agent weights vary widely."""
    torch.manual_seed(seed)
    net = QPLEXMixer(INFO, hypernet_embed=16, attention_layers=attention_layers, attention_embed=8)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    return net


def all_joint_actions(q: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-agent tables q (B, N, A) and states (B, S) -> the mixer's inputs for every joint
    action of every row: Qs (B, J, N), states (B, J, S), actions (B, J, N, 1), max Qs
    (B, J, N), with J = A^N."""
    b, j = q.shape[0], JOINT.shape[0]
    actions = JOINT.expand(b, j, N)  # (B, J, N)
    qs = q.unsqueeze(1).expand(b, j, N, A).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    maxes = q.max(dim=-1).values.unsqueeze(1).expand(b, j, N)  # (B, J, N)
    return qs, states.unsqueeze(1).expand(b, j, S), actions.unsqueeze(-1), maxes


@pytest.mark.parametrize("attention_layers", [1, 2])
def test_weights_are_positive(attention_layers: int) -> None:
    """The agents' weights w_i(s) and the importance weights lambda_i(s, u) are all > 0."""
    net = mixer(0, attention_layers)
    states = 4.0 * torch.randn(256, S)  # (M, S)
    joint = torch.nn.functional.one_hot(torch.randint(A, (256, N)), A).view(256, N * A).float()
    lam = net.importance(states, joint)  # (M, N)
    w = net.weight(states).abs()  # (M, N), before the mixer's + POSITIVE
    assert lam.shape == (256, N)
    assert (lam > 0).all() and (w + 1e-10 > 0).all()
    assert lam.std() > 0.1  # they do vary with the state and the joint action


@pytest.mark.parametrize("seed", range(4))
def test_the_joint_greedy_action_is_the_agents_greedy_actions(seed: int) -> None:
    """Over every joint action of random per-agent tables, Q_tot is largest at the joint
    action of the agents' own argmaxes, where it equals sum_i V_i (no advantage)."""
    net = mixer(seed)
    g = torch.Generator().manual_seed(100 + seed)
    q = 5.0 * torch.randn(16, N, A, generator=g)  # (B, N, A), distinct maxima a.s.
    states = torch.randn(16, S, generator=g)  # (B, S)
    with torch.no_grad():
        q_tot = net(*all_joint_actions(q, states)).squeeze(-1)  # (B, J)
    best_joint = JOINT[q_tot.argmax(dim=-1)]  # (B, N)
    assert torch.equal(best_joint, q.argmax(dim=-1))
    # At the greedy joint action Q_tot is the same with or without the attention.
    greedy = q.argmax(dim=-1)  # (B, N)
    at_greedy = q.max(dim=-1).values  # (B, N)
    with torch.no_grad():
        q_greedy = net(at_greedy, states, greedy.unsqueeze(-1), at_greedy)  # (B, 1)
        w = net.weight(states).abs() + 1e-10  # (B, N)
        v_sum = (w * at_greedy + net.bias(states)).sum(dim=-1, keepdim=True)  # (B, 1)
    torch.testing.assert_close(q_greedy, v_sum)


def test_qtot_is_not_a_monotonic_mix_of_the_agents_qs() -> None:
    """The importance weights depend on the joint action: two joint actions with the same
    agent Qs (and maxes) but different actions get different Q_tot."""
    net = mixer(1)
    states = torch.randn(8, S)  # (B, S)
    qs, maxes = -torch.rand(8, N), torch.zeros(8, N)  # every agent off its greedy action
    first = torch.zeros(8, N, 1, dtype=torch.long)  # (B, N, 1)
    with torch.no_grad():
        a, b = net(qs, states, first, maxes), net(qs, states, first + 1, maxes)
    assert not torch.allclose(a, b)


def test_advantages_train_the_agents_only_through_the_plain_sum() -> None:
    """QPLEX's stop-gradient: dQ_tot/dq_i = w_i(s), whatever lambda is; the attention
    networks still get a gradient from the advantages."""
    net = mixer(2)
    states = torch.randn(6, S)  # (B, S)
    qs = torch.randn(6, N, requires_grad=True)  # (B, N)
    maxes = qs.detach() + torch.rand(6, N)  # every advantage < 0
    actions = torch.randint(A, (6, N, 1))  # (B, N, 1)
    net(qs, states, actions, maxes).sum().backward()
    with torch.no_grad():
        w = net.weight(states).abs() + 1e-10  # (B, N)
    assert qs.grad is not None
    torch.testing.assert_close(qs.grad, w)
    for heads in (net.key_nets, net.agent_nets, net.action_nets):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads.parameters())


def test_leading_dims_and_rows_are_independent() -> None:
    """(B, T, N) in, (B, T, 1) out; each row mixed on its own."""
    net = mixer(3)
    qs, states = torch.randn(2, 5, N), torch.randn(2, 5, S)
    actions, maxes = torch.randint(A, (2, 5, N, 1)), qs + torch.rand(2, 5, N)
    with torch.no_grad():
        out = net(qs, states, actions, maxes)  # (B, T, 1)
        row = net(qs[1:, 2:3], states[1:, 2:3], actions[1:, 2:3], maxes[1:, 2:3])  # (1, 1, 1)
    assert out.shape == (2, 5, 1)
    torch.testing.assert_close(out[1:, 2:3], row)
