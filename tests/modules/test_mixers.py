"""Tests for the mixers (marl.modules.mixers): every mixer in the schema table."""

from __future__ import annotations

import hydra
import pytest
import torch
from torch import nn

from marl.config import SCHEMAS
from marl.envs.base import EnvInfo
from marl.modules.mixers.qmix import QMixer
from marl.modules.mixers.vdn import VDNMixer

B, T, N, S = 4, 5, 3, 7
INFO = EnvInfo(n_agents=N, n_actions=2, obs_shape=1, state_shape=S, episode_limit=T)


QTRAN_JOINT = "qtran"
"""QTRAN's joint networks read hidden states and actions, not agent Qs (tested in
tests/modules/mixers/test_qtran_mixer.py); every other mixer mixes agent Qs."""


@pytest.mark.parametrize("name", sorted(set(SCHEMAS["mixer"]) - {QTRAN_JOINT}))
def test_schema_builds_a_mixer_of_joint_values(name: str) -> None:
    """Built from its schema as a run builds it: (B, T, N) Qs, (B, T, S) states, the
    joint action and the agents' max Qs (QPLEX's inputs; the others ignore them) in,
    (B, T, 1) out, with a gradient to every agent's Q."""
    torch.manual_seed(0)
    mixer = hydra.utils.instantiate(SCHEMAS["mixer"][name](), env_info=INFO)
    assert isinstance(mixer, nn.Module)
    qs = torch.randn(B, T, N, requires_grad=True)
    actions = torch.randint(0, INFO.n_actions, (B, T, N, 1))
    max_qs = qs.detach() + torch.rand(B, T, N)  # each at least the taken action's Q
    out = mixer(qs, torch.randn(B, T, S), actions=actions, max_qs=max_qs)
    assert out.shape == (B, T, 1)
    out.sum().backward()
    assert qs.grad is not None and qs.grad.ne(0).all()


def test_vdn_is_sum() -> None:
    torch.manual_seed(0)
    qs = torch.randn(B, T, N)
    out = VDNMixer(INFO)(qs, torch.randn(B, T, S))
    torch.testing.assert_close(out, qs.sum(-1, keepdim=True))


@pytest.mark.parametrize("hypernet_layers", [1, 2])
def test_qmix_monotonic_in_each_agent(hypernet_layers: int) -> None:
    for seed in range(5):
        torch.manual_seed(seed)
        mixer = QMixer(INFO, embed_dim=8, hypernet_layers=hypernet_layers, hypernet_embed=16)
        qs = 3.0 * torch.randn(64, T, N)
        states = torch.randn(64, T, S)
        base = mixer(qs, states)
        for i in range(N):
            bumped = qs.clone()
            bumped[..., i] += torch.rand(64, T) * 5.0
            assert (mixer(bumped, states) >= base - 1e-5).all()
        qs_grad = qs.clone().requires_grad_(True)
        mixer(qs_grad, states).sum().backward()
        assert (qs_grad.grad >= 0).all()


@pytest.mark.parametrize("hypernet_layers", [1, 2])
def test_qmix_depends_on_state(hypernet_layers: int) -> None:
    torch.manual_seed(0)
    mixer = QMixer(INFO, hypernet_layers=hypernet_layers)
    qs = torch.randn(B, T, N)
    out_a = mixer(qs, torch.randn(B, T, S))
    out_b = mixer(qs, torch.randn(B, T, S))
    assert not torch.allclose(out_a, out_b)
    # identical state rows with identical Qs give identical outputs (no cross-batch mixing)
    states = torch.randn(1, 1, S).expand(B, T, S)
    out = mixer(qs[:1, :1].expand(B, T, N), states)
    assert torch.allclose(out, out[:1, :1].expand(B, T, 1))


@pytest.mark.parametrize("hypernet_layers", [1, 2])
def test_qmix_hypernet_layers_trainable(hypernet_layers: int) -> None:
    torch.manual_seed(0)
    mixer = QMixer(INFO, embed_dim=8, hypernet_layers=hypernet_layers, hypernet_embed=16)
    n_linear = sum(isinstance(m, nn.Linear) for m in mixer.hyper_w_1.modules())
    assert n_linear == hypernet_layers
    mixer(torch.randn(B, T, N), torch.randn(B, T, S)).sum().backward()
    assert all(p.grad is not None for p in mixer.parameters())


@pytest.mark.parametrize("bad", [0, 3])
def test_qmix_bad_hypernet_layers(bad: int) -> None:
    with pytest.raises(ValueError, match="hypernet_layers must be 1 or 2"):
        QMixer(INFO, hypernet_layers=bad)
