"""Weighted QMIX's unrestricted central mixer."""

from __future__ import annotations

import torch

from marl.envs.base import EnvInfo
from marl.modules.mixers.central import CentralMixer

N, S = 3, 4
INFO = EnvInfo(n_agents=N, n_actions=2, obs_shape=1, state_shape=S, episode_limit=1)


def test_known_answer_of_a_hand_set_network() -> None:
    """Q* = net([s, q]) + V(s), hand-set: the first layer's units read s_0 + 10 q_0 and
    10 q_2, the next two layers pass them on, the output is 0.1 * (first - second);
    V(s) = 2 relu(s_1)."""
    net = CentralMixer(INFO, embed_dim=4)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        first, second, third, out = net.net[0], net.net[2], net.net[4], net.net[6]
        first.weight[0, : S + N] = torch.tensor([1.0, 0, 0, 0, 10.0, 0, 0])  # s_0 + 10 q_0
        first.weight[1, : S + N] = torch.tensor([0.0, 0, 0, 0, 0, 0, 10.0])  # 10 q_2
        for layer in (second, third):
            layer.weight[0, 0] = layer.weight[1, 1] = 1.0
        out.weight[0, :2] = torch.tensor([0.1, -0.1])
        net.V[0].weight[0, 1] = 1.0
        net.V[2].weight[0, 0] = 2.0
    states = torch.tensor([[[3.0, 0.5, 0, 0]]])  # (B, T, S)
    qs = torch.tensor([[[2.0, 7.0, 1.0]]])  # (B, T, N)
    # net: relu(3 + 20) * 0.1 - relu(10) * 0.1 = 2.3 - 1 = 1.3; V = 2 * relu(0.5) = 1
    torch.testing.assert_close(net(qs, states), torch.tensor([[[2.3]]]))


def test_it_is_not_monotonic_in_the_agents_qs() -> None:
    """Unlike QMIX's, its gradient with respect to an agent's Q takes both signs."""
    torch.manual_seed(0)
    net = CentralMixer(INFO, embed_dim=32)
    qs = (3.0 * torch.randn(64, 1, N)).requires_grad_(True)  # (B, T, N)
    out = net(qs, torch.randn(64, 1, S))  # (B, T, 1)
    assert out.shape == (64, 1, 1)
    out.sum().backward()
    assert qs.grad is not None
    assert (qs.grad > 0).any() and (qs.grad < 0).any()
