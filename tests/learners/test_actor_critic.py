"""Known-answer tests for marl.learners.actor_critic (IA2C, MAA2C, IPPO, MAPPO)."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from torch import nn

from marl.config import compose_config
from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.errors import UsageError
from marl.exploration.epsilon_greedy import EpsilonGreedy
from marl.exploration.softmax import SoftmaxSelector, log_policy
from marl.learners.actor_critic import (
    ActorCriticLearner,
    clipped_surrogate,
    entropy,
    value_loss,
)
from marl.learners.common import Learner
from marl.modules.agents.rnn import RNNAgent
from marl.modules.critics.central_v import CentralV
from marl.validation import validate_config
from tests.learners.test_q_learning import INFO, make_batch


def make_learner(critic_kind: str, seed: int = 0, **settings: object) -> ActorCriticLearner:
    """A learner with small networks: a per-agent V ("agent") or a central V ("central")."""
    torch.manual_seed(seed)
    agent = functools.partial(RNNAgent, hidden_dim=8)
    mac = MultiAgentController(agent, INFO, obs_last_action=False)
    critic: nn.Module
    if critic_kind == "agent":
        critic = MultiAgentController(agent, INFO, n_outputs=1, obs_last_action=False)
    else:
        critic = CentralV(INFO, hidden_dim=8, agent_id=critic_kind == "central_id")
    return ActorCriticLearner(mac, critic, torch.Generator().manual_seed(seed), **settings)  # type: ignore[arg-type]


def weights(learner: ActorCriticLearner) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.clone()
        for name, net in learner.networks().items()
        for key, value in net.state_dict().items()
    }


# -------------------------------------------------------------------------- the losses
def test_clipped_surrogate_value_and_gradient_by_hand() -> None:
    # ratios 1.5, 0.5, 0.5, 1.5 with advantages +1, +1, -1, -1 (clip 0.2); the 5th is masked.
    old = torch.zeros(1, 5, 1)  # (B, T, N)
    log_probs = torch.log(torch.tensor([1.5, 0.5, 0.5, 1.5, 3.0])).view(1, 5, 1)
    log_probs.requires_grad_(True)
    advantages = torch.tensor([1.0, 1.0, -1.0, -1.0, 100.0]).view(1, 5, 1)
    mask = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]).view(1, 5, 1)
    loss, ratio = clipped_surrogate(log_probs, old, advantages, mask, clip=0.2)
    # min(r A, clip(r) A): 1.2 (clipped), 0.5, -0.8 (clipped), -1.5; loss = -mean.
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 0.8 - 1.5) / 4)
    torch.testing.assert_close(ratio.view(-1)[:4], torch.tensor([1.5, 0.5, 0.5, 1.5]))
    loss.backward()
    # d(-r A / 4) / d log r = -r A / 4 where unclipped, 0 where clipped or masked.
    want = torch.tensor([0.0, -0.5 / 4, 0.0, 1.5 / 4, 0.0]).view(1, 5, 1)
    torch.testing.assert_close(log_probs.grad, want)


def test_without_clip_the_loss_is_the_policy_gradient() -> None:
    log_probs = torch.tensor([-0.5, -1.0, -2.0]).view(1, 3, 1).requires_grad_(True)
    advantages = torch.tensor([2.0, -1.0, 5.0]).view(1, 3, 1)
    mask = torch.tensor([1.0, 1.0, 0.0]).view(1, 3, 1)
    loss, _ = clipped_surrogate(log_probs, log_probs.detach(), advantages, mask, clip=None)
    assert loss.item() == pytest.approx(-(-0.5 * 2.0 + -1.0 * -1.0) / 2)
    loss.backward()
    torch.testing.assert_close(log_probs.grad, torch.tensor([-1.0, 0.5, 0.0]).view(1, 3, 1))


def test_clipped_value_loss_takes_the_larger_error() -> None:
    old = torch.zeros(1, 2, 1)  # (B, T, K)
    values = torch.tensor([1.0, -0.1]).view(1, 2, 1)
    targets = torch.tensor([2.0, 1.0]).view(1, 2, 1)
    mask = torch.ones(1, 2, 1)
    # Unclipped: errors 1 and 1.21. Clipped to 0.5: 0.5 -> 2.25; -0.1 -> 1.21.
    assert value_loss(values, old, targets, mask, clip=None).item() == pytest.approx(1.105)
    assert value_loss(values, old, targets, mask, clip=0.5).item() == pytest.approx(1.73)


def test_policy_is_a_softmax_over_available_actions() -> None:
    logits = torch.tensor([[1.0, 5.0, 1.0], [0.0, 0.0, 0.0]])  # (2, A)
    avail = torch.tensor([[True, False, True], [False, False, False]])
    log_probs = log_policy(SoftmaxSelector().policy(logits, avail, t_env=0))  # (2, A)
    torch.testing.assert_close(log_probs[0].exp(), torch.tensor([0.5, 0.0, 0.5]))
    assert log_probs.isfinite().all()  # no available action: uniform, masked by callers
    torch.testing.assert_close(entropy(log_probs), torch.tensor([math.log(2), math.log(3)]))


# -------------------------------------------------------------------------- the update
def masked_out_changed(batch: EpisodeBatch, dead_from: int) -> EpisodeBatch:
    """``batch`` with different data wherever the learner must not look: agent 1 of
    episode 0 from ``dead_from`` on (no available action: dead), and every unfilled step."""
    changed = copy.deepcopy(batch)
    g = torch.Generator().manual_seed(7)
    data = changed.data
    data["obs"][0, dead_from:, 1] = torch.randn(data["obs"][0, dead_from:, 1].shape, generator=g)
    data["actions"][0, dead_from:, 1] = 0
    unfilled = ~changed["filled"][..., 0]  # (B, T + 1)
    for key in ("obs", "state", "reward"):
        data[key][unfilled] = torch.randn(data[key][unfilled].shape, generator=g) * 100
    return changed


@pytest.mark.parametrize("critic_kind", ["agent", "central", "central_id"])
def test_dead_and_padded_agents_contribute_nothing(critic_kind: str) -> None:
    batch = make_batch([5, 3], [3, None])  # episode 1 is padded after 3 steps
    dead_from = 2
    batch.data["avail_actions"][0, dead_from:, 1] = False  # agent 1 dies
    batch.data["actions"][0, dead_from:, 1] = 1
    settings = {"value_norm": True, "advantage_norm": True, "value_clip": 0.2}
    a = make_learner(critic_kind, **settings)  # type: ignore[arg-type]
    b = make_learner(critic_kind, **settings)  # type: ignore[arg-type]
    stats_a = a.train(batch, t_env=0, episode=0)
    stats_b = b.train(masked_out_changed(batch, dead_from), t_env=0, episode=0)
    assert stats_a == stats_b
    got, want = weights(b), weights(a)
    assert all(torch.equal(got[key], want[key]) for key in want)


@pytest.mark.parametrize("critic_kind", ["agent", "central_id"])
def test_a_restored_learner_makes_the_identical_next_update(critic_kind: str) -> None:
    settings = {"value_norm": True, "minibatches": 2, "epochs": 2}
    original = make_learner(critic_kind, **settings)  # type: ignore[arg-type]
    original.train(make_batch([5, 4, 3, 5], [4, 3, None, None], seed=1), 0, 0)
    restored = make_learner(critic_kind, seed=3, **settings)  # type: ignore[arg-type]
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    batch = make_batch([5, 5, 2, 4], [None, 2, None, 3], seed=2)
    assert original.train(batch, 0, 0) == restored.train(batch, 0, 0)
    got, want = weights(restored), weights(original)
    assert all(torch.equal(got[key], want[key]) for key in want)


def test_the_update_reports_its_stats_and_is_a_learner() -> None:
    learner = make_learner("central")
    assert isinstance(learner, Learner) and learner.on_policy
    stats = learner.train(make_batch([5, 3], [4, None]), 0, 0)
    names = ["loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"]
    names += ["explained_variance", "grad_norm"]
    assert set(stats) == {f"learner/{name}" for name in names}
    assert all(math.isfinite(value) for value in stats.values())
    assert learner.train(make_batch([5, 3], [4, None]), 0, 0, stats=False) == {}


def test_first_epoch_starts_at_ratio_one() -> None:
    """The recomputed acting policy is the one trained: one epoch, one minibatch of a
    fresh rollout sees ratio 1 everywhere, so nothing is clipped and the KL is 0."""
    learner = make_learner("agent", epochs=1)
    stats = learner.train(make_batch([5, 3], [4, None]), 0, 0)
    assert stats["learner/approx_kl"] == 0.0 and stats["learner/clip_fraction"] == 0.0


def test_value_norm_reads_the_critic_in_return_units() -> None:
    learner = make_learner("central", value_norm=True)
    assert learner.value_stats is not None
    returns = torch.tensor([3.0, 5.0, 10.0]).view(1, 3, 1)  # (B, T, K)
    learner.value_stats.update(returns)
    standardised = learner.value_stats.standardise(returns)  # what the critic learns
    torch.testing.assert_close(learner._denormalise(standardised), returns)


# -------------------------------------------------------------------------- the config
@pytest.mark.parametrize("algo", ["ia2c", "maa2c", "ippo", "mappo"])
def test_on_policy_yamls_train_on_exactly_each_rollout(algo: str) -> None:
    cfg = compose_config([f"algo={algo}", "env=matrix", "batch_size_run=3"])
    assert (cfg.batch_size, cfg.buffer_size, cfg.updates_per_rollout) == (3, 3, 1)
    assert cfg.buffer_obs_dtype == "float32"
    validate_config(cfg)


def test_an_on_policy_learner_refuses_replay_sizes() -> None:
    cfg = compose_config(["algo=mappo", "env=matrix", "batch_size=64", "buffer_size=64"])
    with pytest.raises(UsageError, match=r"on-policy.*batch_size=64"):
        validate_config(cfg)


def test_the_learner_refuses_a_selector_without_a_softmax_policy() -> None:
    with pytest.raises(UsageError, match="learner actor_critic learns the softmax policy"):
        make_learner("agent", action_selector=EpsilonGreedy())


def test_the_learner_trains_the_floored_policy_that_acted() -> None:
    """An epsilon floor on the acting selector is in the recomputed acting policy too:
    the first epoch still starts at ratio 1, and the floor changes the update."""
    floor = SoftmaxSelector(epsilon_start=0.3, epsilon_finish=0.3)
    batch = make_batch([5, 3], [4, None])
    floored = make_learner("agent", action_selector=floor)
    stats = floored.train(batch, 6, 0)
    assert stats["learner/approx_kl"] == 0.0
    assert stats != make_learner("agent").train(batch, 6, 0)
