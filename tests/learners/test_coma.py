"""Known-answer tests for marl.learners.coma (COMA)."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.exploration.softmax import SoftmaxSelector, log_policy
from marl.learners.coma import ComaLearner, counterfactual_advantages
from marl.learners.common import Learner, valid_transitions
from marl.modules.agents.rnn import RNNAgent
from marl.modules.critics.coma import ComaCritic
from marl.ops.masked import masked_mean
from marl.ops.returns import td_lambda_targets
from tests.learners.test_actor_critic import weights
from tests.learners.test_q_learning import INFO, make_batch


def make_learner(seed: int = 0, **settings: object) -> ComaLearner:
    torch.manual_seed(seed)
    mac = MultiAgentController(functools.partial(RNNAgent, hidden_dim=8), INFO)
    critic = ComaCritic(INFO, hidden_dim=8)
    return ComaLearner(mac, critic, torch.Generator().manual_seed(seed), **settings)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- the baseline
def test_counterfactual_advantage_by_hand() -> None:
    # Agent 0: Q per own action (1, 4, 10), policy (0.5, 0.5, 0): action 2 unavailable.
    # Baseline 0.5 * 1 + 0.5 * 4 = 2.5; took action 1: advantage 4 - 2.5 = 1.5.
    # Agent 1: Q (2, 2, -6), policy (0.25, 0.25, 0.5), took 2: -6 - (1 - 3) = -4.
    q = torch.tensor([[1.0, 4.0, 10.0], [2.0, 2.0, -6.0]]).view(1, 1, 2, 3)  # (B, T, N, A)
    probs = torch.tensor([[0.5, 0.5, 0.0], [0.25, 0.25, 0.5]]).view(1, 1, 2, 3)
    taken = torch.tensor([1, 2]).view(1, 1, 2, 1)  # (B, T, N, 1)
    advantages = counterfactual_advantages(q, probs, taken)  # (B, T, N)
    torch.testing.assert_close(advantages, torch.tensor([1.5, -4.0]).view(1, 1, 2))


def test_the_expected_advantage_under_the_policy_is_zero() -> None:
    """The baseline makes the advantage zero-mean over the agent's own actions."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 2, 4, generator=g)  # (B, T, N, A)
    probs = torch.softmax(torch.randn(2, 3, 2, 4, generator=g), dim=-1)  # (B, T, N, A)
    each = torch.stack(
        [counterfactual_advantages(q, probs, torch.full((2, 3, 2, 1), a)) for a in range(4)], -1
    )  # (B, T, N, A)
    torch.testing.assert_close((probs * each).sum(-1), torch.zeros(2, 3, 2))


# ------------------------------------------------------------------------- the update
def test_losses_are_the_td_lambda_regression_and_the_policy_gradient() -> None:
    """The stats of one update, recomputed from the learner's networks before it."""
    batch = make_batch([5, 3, 4], [4, None, 3], seed=1)
    learner = make_learner(td_lambda=0.8, gamma=0.9)
    before = copy.deepcopy(learner)
    stats = learner.train(batch, t_env=12, episode=3)

    obs, actions, states = batch.float("obs"), batch["actions"], batch.float("state")
    valid = valid_transitions(batch)  # (B, T, 1)
    q_all = before.critic(states, obs, actions)  # (B, T + 1, N, A); target = critic at start
    taken_all = q_all.gather(-1, actions.long()).squeeze(-1)  # (B, T + 1, N)
    rewards = batch["reward"][:, :-1].float()
    terminated = batch["terminated"][:, :-1].float()
    targets = td_lambda_targets(rewards, terminated, valid, taken_all[:, 1:], 0.9, 0.8)
    critic_loss = masked_mean((taken_all[:, :-1] - targets).pow(2), valid.float())
    assert stats["learner/critic_loss"] == pytest.approx(critic_loss.item(), rel=1e-5)

    avail = batch["avail_actions"][:, :-1]  # (B, T, N, A)
    logits = before.mac.unroll_steps(obs, actions)[:, :-1]  # (B, T, N, A)
    probs = SoftmaxSelector().policy(logits, avail, 0)  # (B, T, N, A)
    taken = actions[:, :-1].long()  # (B, T, N, 1)
    advantages = counterfactual_advantages(q_all[:, :-1], probs, taken)  # (B, T, N)
    chosen = log_policy(probs).gather(-1, taken).squeeze(-1)  # (B, T, N)
    live = (valid & avail.any(-1)).float()  # (B, T, N)
    policy_loss = -masked_mean(chosen * advantages, live)
    assert stats["learner/policy_loss"] == pytest.approx(policy_loss.item(), rel=1e-5)


def test_the_policy_is_the_acting_selectors_at_the_rollouts_t_env() -> None:
    """With PyMARL's epsilon floor, the gradient is of the floored policy that acted: the
    schedule read at the t_env the rollout started from (t_env minus its real steps)."""
    batch = make_batch([5, 3], [4, None], seed=2)
    assert int(valid_transitions(batch).sum()) == 6  # 4 + 2 real steps: played at t_env 6
    selector = SoftmaxSelector(epsilon_start=0.6, epsilon_finish=0.0, epsilon_anneal_time=12)
    learner = make_learner(action_selector=selector)
    floored = make_learner(action_selector=SoftmaxSelector(0.3, 0.3, 0))  # eps(12 - 6) = 0.3
    stats = learner.train(batch, t_env=12, episode=0)
    assert stats == floored.train(batch, t_env=12, episode=0)
    assert stats != make_learner().train(batch, t_env=12, episode=0)


def test_padding_changes_nothing() -> None:
    batch = make_batch([5, 3], [3, None])  # episode 1 is padded after 3 steps
    changed = copy.deepcopy(batch)
    unfilled = ~changed["filled"][..., 0]  # (B, T + 1)
    g = torch.Generator().manual_seed(7)
    for key in ("obs", "state", "reward"):
        data = changed.data[key]
        data[unfilled] = torch.randn(data[unfilled].shape, generator=g) * 100
    a, b = make_learner(), make_learner()
    assert a.train(batch, 8, 0) == b.train(changed, 8, 0)
    got, want = weights(b), weights(a)  # type: ignore[arg-type]
    assert all(torch.equal(got[key], want[key]) for key in want)


def test_the_target_critic_is_copied_every_interval_episodes() -> None:
    learner = make_learner(target_update_interval=10)
    batch = make_batch([5, 3], [4, None])
    learner.train(batch, 8, episode=9)
    target = learner.targets["critic"].state_dict()
    assert not all(torch.equal(target[k], v) for k, v in learner.critic.state_dict().items())
    learner.train(batch, 16, episode=10)
    target = learner.targets["critic"].state_dict()
    assert all(torch.equal(target[k], v) for k, v in learner.critic.state_dict().items())


def test_a_restored_learner_makes_the_identical_next_update() -> None:
    original = make_learner(target_update_interval=1)
    original.train(make_batch([5, 4, 3], [4, 3, None], seed=1), 8, 1)
    restored = make_learner(seed=3, target_update_interval=1)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    batch = make_batch([5, 2, 4], [None, 1, 3], seed=2)
    assert original.train(batch, 16, 2) == restored.train(batch, 16, 2)
    got, want = weights(restored), weights(original)  # type: ignore[arg-type]
    assert all(torch.equal(got[key], want[key]) for key in want)
    assert all(
        torch.equal(restored.targets["critic"].state_dict()[k], v)
        for k, v in original.targets["critic"].state_dict().items()
    )


def test_the_update_reports_its_stats_and_is_a_learner() -> None:
    learner = make_learner()
    assert isinstance(learner, Learner) and learner.on_policy
    batch: EpisodeBatch = make_batch([5, 3], [4, None])
    stats = learner.train(batch, 8, 0)
    names = ["critic_loss", "critic_grad_norm", "q_taken_mean", "target_mean"]
    names += ["policy_loss", "advantage_mean", "entropy", "grad_norm"]
    assert set(stats) == {f"learner/{name}" for name in names}
    assert all(math.isfinite(value) for value in stats.values())
    assert learner.train(batch, 16, 0, stats=False) == {}
