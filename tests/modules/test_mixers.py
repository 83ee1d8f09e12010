"""Tests for the VDN and QMIX mixers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from marl.modules.mixers.qmix import QMixer, QMixerConfig
from marl.modules.mixers.vdn import VDNMixer, VDNMixerConfig

B, T, N, S = 4, 5, 3, 7


def _make(kind: str, **kwargs: int) -> nn.Module:
    if kind == "vdn":
        return VDNMixer(N, S)
    return QMixer(N, S, **kwargs)


@pytest.mark.parametrize("kind", ["vdn", "qmix"])
def test_output_shape(kind: str) -> None:
    torch.manual_seed(0)
    mixer = _make(kind)
    out = mixer(torch.randn(B, T, N), torch.randn(B, T, S))
    assert out.shape == (B, T, 1)


def test_vdn_is_sum() -> None:
    torch.manual_seed(0)
    qs = torch.randn(B, T, N)
    out = VDNMixer(N, S)(qs, torch.randn(B, T, S))
    torch.testing.assert_close(out, qs.sum(-1, keepdim=True))


def test_configs_targets() -> None:
    assert VDNMixerConfig()._target_ == "marl.modules.mixers.vdn.VDNMixer"
    cfg = QMixerConfig()
    assert cfg._target_ == "marl.modules.mixers.qmix.QMixer"
    assert (cfg.embed_dim, cfg.hypernet_layers, cfg.hypernet_embed) == (32, 2, 64)


@pytest.mark.parametrize("hypernet_layers", [1, 2])
def test_qmix_monotonic_in_each_agent(hypernet_layers: int) -> None:
    for seed in range(5):
        torch.manual_seed(seed)
        mixer = QMixer(N, S, embed_dim=8, hypernet_layers=hypernet_layers, hypernet_embed=16)
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
    mixer = QMixer(N, S, hypernet_layers=hypernet_layers)
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
    mixer = QMixer(N, S, embed_dim=8, hypernet_layers=hypernet_layers, hypernet_embed=16)
    n_linear = sum(isinstance(m, nn.Linear) for m in mixer.hyper_w_1.modules())
    assert n_linear == hypernet_layers
    mixer(torch.randn(B, T, N), torch.randn(B, T, S)).sum().backward()
    assert all(p.grad is not None for p in mixer.parameters())


@pytest.mark.parametrize("bad", [0, 3])
def test_qmix_bad_hypernet_layers(bad: int) -> None:
    with pytest.raises(ValueError, match="hypernet_layers must be 1 or 2"):
        QMixer(N, S, hypernet_layers=bad)
