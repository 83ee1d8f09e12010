"""Tests for :mod:`marl.ops.returns`.

GAE and n-step targets in the style of Stable-Baselines3's ``tests/test_gae.py``: small
tables computed by hand, the arithmetic beside them, and checks against plain loops.
"""

from __future__ import annotations

import pytest
import torch

from marl.ops.returns import gae, nstep_targets, one_step_targets, td_lambda_targets

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


LAM = 0.5


def _table() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """B=3 episodes, T=3 steps; rewards/terminated/valid ``(3, 3, 1)``, values ``(3, 4, 1)``.

    ep0 terminates at t=1 (t=2 is padding); ep1 is truncated by the time limit at t=2, the
    batch's last step (V_3 is the state after it); ep2 is truncated at t=0 by the env's own
    limit (t=1, 2 padding). Padding rewards and the values after the end are junk (7, 100)
    so that using them would show.
    """
    rewards = torch.tensor([[1.0, 2.0, 7.0], [1.0, 1.0, 1.0], [3.0, 7.0, 7.0]]).unsqueeze(-1)
    terminated = torch.tensor([[0, 1, 0], [0, 0, 0], [0, 0, 0]]).bool().unsqueeze(-1)
    valid = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]]).bool().unsqueeze(-1)
    values = torch.tensor(
        [[4.0, 6.0, 100.0, 100.0], [2.0, 4.0, 8.0, 16.0], [2.0, 6.0, 100.0, 100.0]]
    ).unsqueeze(-1)
    return rewards, terminated, valid, values


# ------------------------------------------------------------------------------------ GAE
def test_gae_known_answer() -> None:
    rewards, terminated, valid, values = _table()
    # delta_t = r_t + g (1 - d_t) V_{t+1} - V_t, A_t = delta_t + g lam (1 - d_t) A_{t+1}
    # (g lam = .25), A = 0 past the last valid step.
    # ep0 (terminated at t=1): delta1 = 2 + 0 - 6 = -4            -> A1 = -4
    #                          delta0 = 1 + .5*6 - 4 = 0           -> A0 = 0 + .25*-4 = -1
    # ep1 (truncated at t=2):  delta2 = 1 + .5*16 - 8 = 1          -> A2 = 1
    #                          delta1 = 1 + .5*8 - 4 = 1           -> A1 = 1 + .25*1 = 1.25
    #                          delta0 = 1 + .5*4 - 2 = 1           -> A0 = 1 + .25*1.25 = 1.3125
    # ep2 (truncated at t=0):  delta0 = 3 + .5*6 - 2 = 4           -> A0 = 4
    # returns = A + V at valid steps, 0 at padding.
    adv_expected = torch.tensor([[-1.0, -4.0, 0.0], [1.3125, 1.25, 1.0], [4.0, 0.0, 0.0]])
    ret_expected = torch.tensor([[3.0, 2.0, 0.0], [3.3125, 5.25, 9.0], [6.0, 0.0, 0.0]])
    adv, ret = gae(rewards, terminated, valid, values, GAMMA, LAM)
    assert torch.equal(adv, adv_expected.unsqueeze(-1))
    assert torch.equal(ret, ret_expected.unsqueeze(-1))
    # float flags give the same answer
    adv_f, ret_f = gae(rewards, terminated.float(), valid.float(), values, GAMMA, LAM)
    assert torch.equal(adv_f, adv) and torch.equal(ret_f, ret)


def test_gae_is_lambda_return_minus_value() -> None:
    rewards, terminated, valid, values = _table()
    adv, ret = gae(rewards, terminated, valid, values, GAMMA, LAM)
    lam_ret = td_lambda_targets(rewards, terminated, valid, values[:, 1:], GAMMA, LAM)
    assert torch.equal(ret[valid], lam_ret[valid])
    assert torch.equal(adv[valid], (lam_ret - values[:, :-1])[valid])


def test_gae_lambda_zero_is_td_error() -> None:
    rewards, terminated, valid, values = _random_batch(0)
    adv, _ = gae(rewards, terminated, valid, values, 0.9, 0.0)
    delta = one_step_targets(rewards, terminated, values[:, 1:], 0.9) - values[:, :-1]
    assert torch.equal(adv, torch.where(valid, delta, 0.0))


def test_gae_lambda_one_is_monte_carlo_minus_value() -> None:
    gamma, t_len = 0.9, 7
    gen = torch.Generator().manual_seed(1)
    r = torch.randn(1, t_len, 1, generator=gen)
    d = torch.zeros(1, t_len, 1)
    d[0, -1] = 1.0  # terminated at the last step: no bootstrap anywhere
    v = torch.randn(1, t_len + 1, 1, generator=gen)
    ok = torch.ones(1, t_len, 1)
    mc = torch.stack(
        [sum(gamma ** (k - t) * r[0, k, 0] for k in range(t, t_len)) for t in range(t_len)]
    )  # (T,)
    adv, ret = gae(r, d, ok, v, gamma, 1.0)
    torch.testing.assert_close(ret[0, :, 0], mc)
    torch.testing.assert_close(adv[0, :, 0], mc - v[0, :-1, 0])


def test_gae_matches_the_plain_recursion() -> None:
    """Against the textbook backward loop (SB3's ``compute_returns_and_advantage``)."""
    gamma, lam = 0.95, 0.8
    rewards, terminated, valid, values = _random_batch(2)
    b, t_len, _ = rewards.shape
    expected = torch.zeros(b, t_len, 1)
    for i in range(b):
        last = 0.0  # A_{t+1}, 0 past the last valid step
        for t in reversed(range(t_len)):
            if not valid[i, t, 0]:
                last = 0.0
                continue
            not_done = 0.0 if terminated[i, t, 0] else 1.0
            delta = rewards[i, t, 0] + gamma * not_done * values[i, t + 1, 0] - values[i, t, 0]
            last = delta + gamma * lam * not_done * last
            expected[i, t, 0] = last
    adv, ret = gae(rewards, terminated, valid, values, gamma, lam)
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, torch.where(valid, expected + values[:, :-1], 0.0))


def test_gae_per_agent_values_broadcast() -> None:
    rewards, terminated, valid, _ = _table()
    n_agents = 3
    values = torch.randn(3, 4, n_agents, generator=torch.Generator().manual_seed(3))
    adv, ret = gae(rewards, terminated, valid, values, GAMMA, LAM)
    assert adv.shape == ret.shape == (3, 3, n_agents)
    for k in range(n_agents):
        adv_k, ret_k = gae(rewards, terminated, valid, values[..., k : k + 1], GAMMA, LAM)
        assert torch.equal(adv[..., k : k + 1], adv_k)
        assert torch.equal(ret[..., k : k + 1], ret_k)


def test_gae_padding_is_zero_even_with_non_finite_values() -> None:
    rewards, terminated, valid, values = _table()
    values = values.clone()
    values[0, 2:] = float("nan")  # after termination: never used
    values[2, 2:] = float("inf")  # padding of a truncated episode: never used
    adv, ret = gae(rewards, terminated, valid, values, GAMMA, LAM)
    assert torch.isfinite(adv).all() and torch.isfinite(ret).all()
    assert (adv[~valid] == 0).all() and (ret[~valid] == 0).all()


# -------------------------------------------------------------------------------- n-step
def test_nstep_known_answer() -> None:
    rewards, terminated, valid, values = _table()
    # n=2, y_t = r_t + g r_{t+1} + g^2 V_{t+2}, cut at the episode's end:
    # ep0: y0 = 1 + .5*2 (t=1 terminates: no bootstrap)   = 2;  y1 = 2 (terminal)
    # ep1: y0 = 1 + .5*1 + .25*V2=8                        = 3.5
    #      y1 = 1 + .5*1 + .25*V3=16                       = 5.5
    #      y2 = 1 + .5*V3=16 (batch's last step)           = 9
    # ep2: y0 = 3 + .5*V1=6 (truncated at t=0)             = 6
    out = nstep_targets(rewards, terminated, valid, values, GAMMA, 2)
    assert out.shape == (3, 3, 1)
    assert torch.equal(out[valid], torch.tensor([2.0, 2.0, 3.5, 5.5, 9.0, 6.0]))
    # n=3: ep1 y0 = 1 + .5*1 + .25*1 + .125*V3=16 = 3.75; the other valid steps as for n=2
    out3 = nstep_targets(rewards, terminated, valid, values, GAMMA, 3)
    assert torch.equal(out3[valid], torch.tensor([2.0, 2.0, 3.75, 5.5, 9.0, 6.0]))
    out3_f = nstep_targets(rewards, terminated.float(), valid.float(), values, GAMMA, 3)
    assert torch.equal(out3_f[valid], out3[valid])


def test_nstep_one_is_one_step() -> None:
    rewards, terminated, valid, values = _random_batch(4)
    out = nstep_targets(rewards, terminated, valid, values, 0.9, 1)
    assert torch.equal(out, one_step_targets(rewards, terminated, values[:, 1:], 0.9))


def test_nstep_long_horizon_is_monte_carlo_on_terminated_episode() -> None:
    rewards, terminated, valid, values = _table()
    out = nstep_targets(rewards, terminated, valid, values, GAMMA, 10)
    # ep0: y0 = 1 + .5*2 = 2; ep1: y0 = 1 + .5 + .25 + .125*16 = 3.75 (truncated: bootstraps)
    assert out[0, 0, 0] == 2.0 and out[1, 0, 0] == 3.75


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_nstep_matches_the_plain_sum(n: int) -> None:
    gamma = 0.9
    rewards, terminated, valid, values = _random_batch(5)
    b, t_len, _ = rewards.shape
    expected = torch.zeros(b, t_len, 1)
    for i in range(b):
        for t in range(t_len):
            total, k = 0.0, 0
            while True:  # sum rewards t .. t+k until n of them or the episode ends
                total += gamma**k * rewards[i, t + k, 0]
                if terminated[i, t + k, 0]:
                    break  # no bootstrap past termination
                k += 1
                if k == n or t + k == t_len or not valid[i, t + k, 0]:
                    total += gamma**k * values[i, t + k, 0]  # the state after step t+k-1
                    break
            expected[i, t, 0] = total
    out = nstep_targets(rewards, terminated, valid, values, gamma, n)
    torch.testing.assert_close(out[valid], expected[valid])


def test_nstep_rejects_zero_steps() -> None:
    rewards, terminated, valid, values = _table()
    with pytest.raises(ValueError, match="n >= 1"):
        nstep_targets(rewards, terminated, valid, values, GAMMA, 0)


# ------------------------------------------------------------------------------- helpers
def _random_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """B=6, T=8 episodes laid out as the runner writes them: ep i plays ``length[i]`` steps,
    terminating at its last step or truncated there; padding after."""
    gen = torch.Generator().manual_seed(seed)
    b, t_len = 6, 8
    lengths = [8, 8, 5, 3, 1, 6]
    ends_terminated = [True, False, True, False, True, False]
    rewards = torch.randn(b, t_len, 1, generator=gen)
    values = torch.randn(b, t_len + 1, 1, generator=gen)
    steps = torch.arange(t_len).view(1, t_len, 1)  # (1, T, 1)
    length = torch.tensor(lengths).view(b, 1, 1)  # (B, 1, 1)
    valid = steps < length  # (B, T, 1)
    terminated = (steps == length - 1) & torch.tensor(ends_terminated).view(b, 1, 1)
    return rewards, terminated, valid, values
