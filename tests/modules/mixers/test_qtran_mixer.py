"""QTRAN's joint networks (marl.modules.mixers.qtran): shapes and what each output reads.

(Not test_qtran.py: pytest imports test files by basename, and tests/learners/ has one.)
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from marl.envs.base import EnvInfo
from marl.modules.mixers.qtran import QTranMixer

N, A, S, H = 3, 4, 5, 6
INFO = EnvInfo(n_agents=N, n_actions=A, obs_shape=2, state_shape=S, episode_limit=3)
B, T = 2, 3


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(B, T, S, generator=g)
    hidden = torch.randn(B, T, N, H, generator=g)
    actions = torch.randint(0, A, (B, T, N), generator=g)
    return states, hidden, F.one_hot(actions, A).float()


def mixer(variant: str, hidden_dim: int = H) -> QTranMixer:
    torch.manual_seed(0)
    return QTranMixer(INFO, variant=variant, embed_dim=16, agent_hidden_dim=hidden_dim)


@pytest.mark.parametrize(("variant", "shape"), [("base", (B, T, 1)), ("alt", (B, T, N, A))])
def test_output_shapes(variant: str, shape: tuple[int, ...]) -> None:
    net = mixer(variant)
    states, hidden, actions = inputs()
    assert net(states, hidden, actions).shape == shape
    assert net.value(states).shape == (B, T, 1)


def test_base_reads_every_agent_and_not_their_order() -> None:
    net = mixer("base")
    states, hidden, actions = inputs()
    q = net(states, hidden, actions)  # (B, T, 1)
    order = torch.tensor([2, 0, 1])
    torch.testing.assert_close(net(states, hidden[:, :, order], actions[:, :, order]), q)
    for i in range(N):
        other = actions.clone()
        other[:, :, i] = other[:, :, i].roll(1, dims=-1)  # agent i takes another action
        assert not torch.allclose(net(states, hidden, other), q)


def test_alt_row_i_is_counterfactual_in_agent_i_only() -> None:
    """Row i holds Q_jt(s, ., u_-i): agent i's own action does not enter it, the others' do."""
    net = mixer("alt")
    states, hidden, actions = inputs()
    q = net(states, hidden, actions)  # (B, T, N, A)
    for i in range(N):
        other = actions.clone()
        other[:, :, i] = other[:, :, i].roll(1, dims=-1)
        changed = net(states, hidden, other)  # (B, T, N, A)
        torch.testing.assert_close(changed[:, :, i], q[:, :, i])
        rest = [j for j in range(N) if j != i]
        assert not torch.allclose(changed[:, :, rest], q[:, :, rest])


def test_feed_forward_agents_have_no_hidden_state() -> None:
    net = mixer("alt", hidden_dim=0)
    states, _, actions = inputs()
    assert net(states, torch.zeros(B, T, N, 0), actions).shape == (B, T, N, A)


def test_unknown_variant_raises() -> None:
    with pytest.raises(ValueError, match="'base' or 'alt'"):
        QTranMixer(INFO, variant="qtran++")
