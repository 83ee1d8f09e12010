"""Tests for marl.exploration.softmax (masked softmax policy and sampling)."""

from __future__ import annotations

import pytest
import torch

from marl.exploration.base import ActionSelector
from marl.exploration.softmax import SoftmaxConfig, SoftmaxSelector, log_policy, masked_policy

B, N, A = 64, 3, 5


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_avail(seed: int, b: int = B) -> torch.Tensor:
    """(b, N, A) bool with at least one available action per agent."""
    avail = torch.rand(b, N, A, generator=gen(seed)) < 0.4
    avail[..., 2] |= ~avail.any(-1)
    return avail


# ------------------------------------------------------------------------ masked_policy
def test_masked_policy_known_answer() -> None:
    logits = torch.tensor([[0.0, 5.0, 0.0, float(torch.log(torch.tensor(3.0)))]])  # (1, 4)
    avail = torch.tensor([[True, False, True, True]])
    # softmax over {0, 2, 3} with weights e^0, e^0, e^log3 = 1, 1, 3 -> 1/5, 1/5, 3/5
    probs = masked_policy(logits, avail, 0.0)
    torch.testing.assert_close(probs, torch.tensor([[0.2, 0.0, 0.2, 0.6]]))
    assert probs[0, 1] == 0.0
    # epsilon .5: .5 * pi + .5 * 1/3 over the three available actions
    # -> .1 + 1/6, 0, .1 + 1/6, .3 + 1/6
    floored = masked_policy(logits, avail, 0.5)
    expected = torch.tensor([[0.1 + 1 / 6, 0.0, 0.1 + 1 / 6, 0.3 + 1 / 6]])
    torch.testing.assert_close(floored, expected)
    assert floored[0, 1] == 0.0


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_masked_policy_is_a_distribution_over_available_actions(epsilon: float) -> None:
    avail = random_avail(1)
    logits = torch.randn(B, N, A, generator=gen(2)) * 10
    logits[~avail] += 100.0  # unavailable actions look best
    probs = masked_policy(logits, avail, epsilon)
    assert probs.shape == (B, N, A)
    assert (probs[~avail] == 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(B, N))
    if epsilon == 1.0:  # only the floor: uniform over the available actions
        uniform = avail.float() / avail.sum(-1, keepdim=True)
        torch.testing.assert_close(probs, uniform)


def test_masked_policy_accepts_float_masks_and_leading_dims() -> None:
    avail = random_avail(3).view(4, 16, N, A)  # (B, T, N, A)
    logits = torch.randn(4, 16, N, A, generator=gen(4))
    probs = masked_policy(logits, avail, 0.2)
    assert torch.equal(masked_policy(logits, avail.float(), 0.2), probs)


@pytest.mark.parametrize("epsilon", [0.0, 0.5])
def test_padding_rows_stay_finite_with_finite_gradients(epsilon: float) -> None:
    avail = random_avail(5)
    avail[:8] = False  # padding: no action available
    logits = (torch.randn(B, N, A, generator=gen(6)) * 10).requires_grad_()
    probs = masked_policy(logits, avail, epsilon)
    assert torch.isfinite(probs).all()
    torch.testing.assert_close(probs[:8], torch.full((8, N, A), 1.0 / A))  # uniform
    # entropy taken as the docstring says, and a taken action's log-prob: no NaN
    entropy = -(probs * probs.clamp_min(torch.finfo(probs.dtype).tiny).log()).sum(-1)
    taken = torch.multinomial(probs.detach().view(-1, A), 1, generator=gen(7))
    logp = probs.view(-1, A).gather(-1, taken).log()
    (entropy.sum() + logp.sum()).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert (logits.grad[:8] == 0).all()  # padding rows do not depend on the logits
    assert (logits.grad[~avail] == 0).all()


# ----------------------------------------------------------------------------- selector
def test_config_and_protocol() -> None:
    assert SoftmaxConfig()._target_ == "marl.exploration.softmax.SoftmaxSelector"
    sel = SoftmaxSelector()
    assert isinstance(sel, ActionSelector)
    assert sel.stats(0) == {}  # no floor by default: nothing to log


def test_stats_report_the_floor_when_on() -> None:
    sel = SoftmaxSelector(epsilon_start=0.5, epsilon_finish=0.01, epsilon_anneal_time=100)
    assert sel.stats(0) == {"train/epsilon": 0.5}
    assert sel.stats(50) == {"train/epsilon": pytest.approx(0.255)}  # .5 + .5 * (.01 - .5)
    assert sel.stats(1000) == {"train/epsilon": pytest.approx(0.01)}


def test_policy_is_the_masked_policy_with_the_floor_at_t_env() -> None:
    """What on-policy learners train: the distribution `select` draws from at t_env."""
    sel = SoftmaxSelector(epsilon_start=0.5, epsilon_finish=0.01, epsilon_anneal_time=100)
    logits = torch.tensor([[2.0, 0.0, -1.0]])  # (1, A)
    avail = torch.tensor([[True, False, True]])
    torch.testing.assert_close(sel.policy(logits, avail, 50), masked_policy(logits, avail, 0.255))
    log_probs = log_policy(sel.policy(logits, avail, 50))
    assert log_probs.isfinite().all() and log_probs[0, 1] < -80  # ~log of the tiniest float


@pytest.mark.parametrize("epsilon", [0.0, 0.5])
def test_never_samples_unavailable(epsilon: float) -> None:
    sel = SoftmaxSelector(epsilon, epsilon, 0)
    g = gen(8)
    for draw in range(20):
        avail = random_avail(draw)
        logits = torch.randn(B, N, A, generator=g) * 10
        logits[~avail] += 100.0  # unavailable actions look best
        actions = sel.select(logits, avail, 0, test_mode=False, generator=g)
        assert actions.shape == (B, N) and actions.dtype == torch.long
        assert avail.gather(-1, actions.unsqueeze(-1)).all()


def test_test_mode_is_masked_argmax() -> None:
    sel = SoftmaxSelector(1.0, 1.0, 0)  # all floor in training: ignored in test mode
    logits = torch.tensor([[[9.0, 1.0, 3.0, 2.0, 0.0], [0.0, 5.0, -1.0, 7.0, 6.0]]])  # (1, 2, 5)
    avail = torch.tensor([[[False, True, True, True, False], [True, True, True, False, True]]])
    # agent0: best available is action 2 (3.0; 9.0 unavailable)
    # agent1: best available is action 4 (6.0; 7.0 unavailable)
    for seed in range(5):
        actions = sel.select(logits, avail, t_env=0, test_mode=True, generator=gen(seed))
        assert actions.tolist() == [[2, 4]]


def test_same_seed_same_actions() -> None:
    sel = SoftmaxSelector()
    avail = random_avail(9)
    logits = torch.zeros(B, N, A)  # uniform over available: many distinct outcomes
    a1 = sel.select(logits, avail, 0, False, gen(42))
    a2 = sel.select(logits, avail, 0, False, gen(42))
    a3 = sel.select(logits, avail, 0, False, gen(43))
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, a3)


def test_samples_follow_the_masked_policy() -> None:
    sel = SoftmaxSelector()
    draws = 4000
    logits = torch.log(torch.tensor([0.9, 6.0, 3.0, 1.0, 0.1])).expand(draws, 1, A)
    avail = torch.tensor([True, False, True, True, True]).expand(draws, 1, A)
    # available weights .9, 3, 1, .1 (sum 5) -> probabilities .18, 0, .6, .2, .02
    actions = sel.select(logits, avail, 0, False, gen(10)).flatten()
    freq = torch.bincount(actions, minlength=A).float() / draws
    assert freq[1] == 0
    torch.testing.assert_close(freq, torch.tensor([0.18, 0.0, 0.6, 0.2, 0.02]), atol=0.03, rtol=0)


def test_epsilon_floor_mixes_uniform_over_available() -> None:
    sel = SoftmaxSelector(epsilon_start=0.6, epsilon_finish=0.6, epsilon_anneal_time=0)
    draws = 4000
    logits = torch.zeros(draws, 1, A)
    logits[..., 0] = 100.0  # the policy alone always picks 0
    avail = torch.tensor([True, False, True, True, False]).expand(draws, 1, A)
    # .4 * [1, 0, 0, 0, 0] + .6 * 1/3 on {0, 2, 3} -> .6, 0, .2, .2, 0
    actions = sel.select(logits, avail, 0, False, gen(11)).flatten()
    freq = torch.bincount(actions, minlength=A).float() / draws
    assert freq[1] == 0 and freq[4] == 0
    torch.testing.assert_close(freq, torch.tensor([0.6, 0.0, 0.2, 0.2, 0.0]), atol=0.03, rtol=0)
