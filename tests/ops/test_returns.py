"""Tests for :mod:`marl.ops.returns`."""

from __future__ import annotations

import torch

from marl.ops.returns import one_step_targets, td_lambda_targets

GAMMA = 0.5


def _example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """B=2, T=4 batch (each tensor ``(2, 4, 1)``).

    Episode 0 terminates at t=2 (t=3 is padding); episode 1 is truncated after t=1
    (t=2, 3 are padding, no termination). ``next_values[:, t]`` is ``V_{t+1}``.
    """
    rewards = torch.tensor([[1.0, 2.0, 3.0, 0.0], [2.0, 4.0, 0.0, 0.0]]).unsqueeze(-1)
    terminated = torch.tensor([[False, False, True, False], [False] * 4]).unsqueeze(-1)
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]]).unsqueeze(-1)
    next_values = torch.tensor([[10.0, 20.0, 30.0, 40.0], [4.0, 8.0, 100.0, 100.0]]).unsqueeze(-1)
    return rewards, terminated, valid, next_values


def test_one_step_known_answer() -> None:
    rewards, terminated, _, next_values = _example()
    # ep0: 1+.5*10=6, 2+.5*20=12, 3+0 (terminal)=3, 0+.5*40=20
    # ep1: 2+.5*4=4, 4+.5*8=8, 0+.5*100=50, 0+.5*100=50
    expected = torch.tensor([[6.0, 12.0, 3.0, 20.0], [4.0, 8.0, 50.0, 50.0]]).unsqueeze(-1)
    out = one_step_targets(rewards, terminated, next_values, GAMMA)
    assert torch.equal(out, expected)
    # float termination flags give the same answer
    assert torch.equal(one_step_targets(rewards, terminated.float(), next_values, GAMMA), out)


def test_td_lambda_known_answer() -> None:
    rewards, terminated, valid, next_values = _example()
    # lam=0.5, G_t = r_t + g(1-d_t)[(1-lam) V_{t+1} + lam G'_{t+1}], backwards:
    # ep0: G3 = 0 + .5*40 = 20 (last step, G'_T = V_T)
    #      G2 = 3 (terminal)
    #      G1 = 2 + .5*(.5*20 + .5*G2=3) = 2 + .5*11.5 = 7.75
    #      G0 = 1 + .5*(.5*10 + .5*G1=7.75) = 1 + .5*8.875 = 5.4375
    # ep1: G3 = 0 + .5*100 = 50
    #      G2 = 0 + .5*(.5*100 + .5*V3=100) = 50   (t=3 invalid -> G'3 = V3)
    #      G1 = 4 + .5*(.5*8 + .5*V2=8) = 8        (t=2 invalid -> G'2 = V2)
    #      G0 = 2 + .5*(.5*4 + .5*G1=8) = 2 + .5*6 = 5
    expected = torch.tensor([[5.4375, 7.75, 3.0, 20.0], [5.0, 8.0, 50.0, 50.0]]).unsqueeze(-1)
    out = td_lambda_targets(rewards, terminated, valid, next_values, GAMMA, 0.5)
    assert torch.equal(out, expected)
    out_float = td_lambda_targets(
        rewards, terminated.float(), valid.float(), next_values, GAMMA, 0.5
    )
    assert torch.equal(out_float, expected)


def test_td_lambda_zero_equals_one_step() -> None:
    torch.manual_seed(0)
    rewards = torch.randn(3, 6, 1)
    terminated = torch.zeros(3, 6, 1, dtype=torch.bool)
    terminated[0, 3] = True
    valid = torch.ones(3, 6, 1, dtype=torch.bool)
    valid[0, 4:] = False
    valid[1, 5:] = False
    next_values = torch.randn(3, 6, 1)
    one = one_step_targets(rewards, terminated, next_values, 0.99)
    lam0 = td_lambda_targets(rewards, terminated, valid, next_values, 0.99, 0.0)
    assert torch.equal(lam0, one)


def test_td_lambda_one_is_monte_carlo_on_terminated_episode() -> None:
    rewards, terminated, valid, next_values = _example()
    out = td_lambda_targets(rewards, terminated, valid, next_values, GAMMA, 1.0)
    # ep0 (terminated at t=2): G2 = 3, G1 = 2 + .5*3 = 3.5, G0 = 1 + .5*3.5 = 2.75
    assert torch.equal(out[0, :3, 0], torch.tensor([2.75, 3.5, 3.0]))

    torch.manual_seed(1)
    gamma, t_len = 0.9, 7
    r = torch.randn(1, t_len, 1)
    d = torch.zeros(1, t_len, 1)
    d[0, -1] = 1.0
    v = torch.randn(1, t_len, 1)
    ok = torch.ones(1, t_len, 1)
    mc = torch.stack(
        [sum(gamma ** (k - t) * r[0, k, 0] for k in range(t, t_len)) for t in range(t_len)]
    )
    got = td_lambda_targets(r, d, ok, v, gamma, 1.0)[0, :, 0]
    torch.testing.assert_close(got, mc)


def test_broadcast_per_agent_values() -> None:
    rewards, terminated, valid, _ = _example()
    torch.manual_seed(2)
    n_agents = 3
    next_values = torch.randn(2, 4, n_agents)
    one = one_step_targets(rewards, terminated, next_values, GAMMA)
    lam = td_lambda_targets(rewards, terminated, valid, next_values, GAMMA, 0.7)
    assert one.shape == lam.shape == (2, 4, n_agents)
    for k in range(n_agents):
        v_k = next_values[..., k : k + 1]
        assert torch.equal(one[..., k : k + 1], one_step_targets(rewards, terminated, v_k, GAMMA))
        expected = td_lambda_targets(rewards, terminated, valid, v_k, GAMMA, 0.7)
        assert torch.equal(lam[..., k : k + 1], expected)


def test_non_finite_value_after_termination_is_ignored() -> None:
    rewards, terminated, valid, next_values = _example()
    next_values = next_values.clone()
    next_values[0, 2:] = float("-inf")  # e.g. max over a padded step with no available action
    for lam in (0.0, 0.5, 1.0):
        out = td_lambda_targets(rewards, terminated, valid, next_values, GAMMA, lam)
        assert torch.isfinite(out[valid.squeeze(-1)]).all()
