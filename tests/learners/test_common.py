"""Tests for marl.learners.common: target networks, the optimiser, on-policy helpers."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from marl.config import compose_config
from marl.errors import UsageError
from marl.experiment import Experiment
from marl.exploration.epsilon_greedy import EpsilonGreedy
from marl.exploration.softmax import SoftmaxSelector
from marl.learners.common import (
    TargetNetworks,
    make_optimiser,
    played_at,
    softmax_selector,
    valid_transitions,
)


def networks(seed: int = 0) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {"mac": nn.Linear(3, 2), "mixer": nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 1))}


def flat(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def step_(live: dict[str, nn.Module], seed: int) -> None:
    """Move every live parameter, as an optimiser step would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for net in live.values():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=g))


def test_targets_are_frozen_copies() -> None:
    live = networks()
    targets = TargetNetworks(live, interval=1, tau=None)
    for name, net in live.items():
        assert targets[name] is not net and torch.equal(flat(targets[name]), flat(net))
        assert not any(p.requires_grad for p in targets[name].parameters())
    assert all(p.requires_grad for net in live.values() for p in net.parameters())


def test_hard_copy_every_interval_episodes() -> None:
    live = networks()
    targets = TargetNetworks(live, interval=200, tau=None)
    initial = {name: flat(net) for name, net in live.items()}
    for episode in (1, 50, 199):  # 199 - 0 < 200: no copy yet
        step_(live, episode)
        assert not targets.update(episode)
    for name in live:
        assert torch.equal(flat(targets[name]), initial[name])
    step_(live, 200)
    assert targets.update(200)
    for name, net in live.items():
        assert torch.equal(flat(targets[name]), flat(net))
    step_(live, 201)
    assert not targets.update(399) and targets.update(400)  # counted from the last copy


def test_soft_update_moves_by_tau_every_call() -> None:
    live, tau = networks(), 0.25
    targets = TargetNetworks(live, interval=1, tau=tau)
    for episode in (0, 1000):  # never a hard copy, whatever the episode
        before = {name: flat(targets[name]) for name in live}
        step_(live, episode)
        assert not targets.update(episode)
        for name, net in live.items():
            expected = before[name] + tau * (flat(net) - before[name])
            torch.testing.assert_close(flat(targets[name]), expected)
    assert targets.last_update_episode == 0


def test_state_round_trip() -> None:
    live = networks()
    targets = TargetNetworks(live, interval=2, tau=None)
    step_(live, 1)
    targets.update(3)
    state = copy.deepcopy(targets.state_dict())
    assert set(state) == {"target_mac", "target_mixer", "last_target_update_episode"}
    fresh = TargetNetworks(networks(seed=1), interval=2, tau=None)
    fresh.load_state_dict(state | {"mac": None, "optimiser": None})  # a learner's state
    assert fresh.last_update_episode == 3
    for name in live:
        assert torch.equal(flat(fresh[name]), flat(targets[name]))


def test_make_optimiser_steps_all_parameters_at_once() -> None:
    params = list(nn.Linear(2, 2).parameters())
    rmsprop = make_optimiser(params, "rmsprop", lr=0.1, alpha=0.9, eps=1e-3)
    assert isinstance(rmsprop, torch.optim.RMSprop) and rmsprop.param_groups[0]["params"] == params
    assert (
        rmsprop.defaults | {"lr": 0.1, "alpha": 0.9, "eps": 1e-3, "foreach": True}
        == rmsprop.defaults
    )
    adam = make_optimiser(params, "adam", lr=0.1, alpha=0.9, eps=1e-3)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.defaults | {"lr": 0.1, "eps": 1e-3, "fused": True} == adam.defaults


def test_unknown_optimiser_raises() -> None:
    with pytest.raises(ValueError, match="optimizer must be 'rmsprop' or 'adam', got 'sgd'"):
        make_optimiser(list(nn.Linear(2, 2).parameters()), "sgd", lr=0.1, alpha=0.9, eps=1e-3)


# ------------------------------------------------------------- on-policy learners' helpers
def test_played_at_is_the_t_env_the_runner_acted_at(tmp_path: Path) -> None:
    """The runner acts a whole rollout at the t_env it started from; the learner finds
    it from the t_env after the rollout and the rollout's real transitions."""
    overrides = ["algo=mappo", "env=matrix", "env.game=two_step", "batch_size_run=3"]
    experiment = Experiment(compose_config(overrides), tmp_path)
    for _ in range(2):
        started = experiment.runner.t_env
        batch, _ = experiment.runner.run(test_mode=False)
        assert played_at(experiment.runner.t_env, valid_transitions(batch)) == started


def test_an_on_policy_learner_needs_the_softmax_selector() -> None:
    assert isinstance(softmax_selector(None, "coma"), SoftmaxSelector)
    with pytest.raises(UsageError, match=r"learner coma learns the softmax policy.*EpsilonGreedy"):
        softmax_selector(EpsilonGreedy(), "coma")
