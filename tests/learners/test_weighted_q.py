"""Weighted QMIX (marl.learners.weighted_q): the weights, the Q* targets, the state."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.envs.base import EnvInfo
from marl.learners.common import Learner
from marl.learners.weighted_q import WeightedQLearner
from marl.modules.agents.rnn import RNNAgent
from marl.modules.mixers.central import CentralMixer
from marl.modules.mixers.qmix import QMixer
from marl.modules.mixers.vdn import VDNMixer
from marl.runners.episode import transition_scheme
from tests.learners.test_q_learning import INFO, TableMAC, flat_params, make_batch

ALPHA = 0.1
TABLE_INFO = EnvInfo(n_agents=2, n_actions=2, obs_shape=1, state_shape=1, episode_limit=2)


def table_batch(actions: list[list[int]], rewards: list[float], steps: int) -> EpisodeBatch:
    """B episodes of ``steps`` stored steps, every step filled and every action available,
    each ending (terminated) at its last transition; ``actions[b]`` is the joint action of
    every step, ``rewards[b]`` the reward of every transition."""
    b = len(actions)
    batch = EpisodeBatch(transition_scheme(TABLE_INFO), b, steps)
    terminated = torch.zeros(b, steps, 1, dtype=torch.bool)
    terminated[:, steps - 2] = True
    joint = torch.tensor(actions).view(b, 1, 2, 1).expand(b, steps, 2, 1)  # (B, steps, N, 1)
    values = {
        "state": torch.zeros(b, steps, 1),
        "obs": torch.zeros(b, steps, 2, 1),
        "avail_actions": torch.ones(b, steps, 2, 2, dtype=torch.bool),
        "actions": joint,
        "reward": torch.tensor(rewards).view(b, 1, 1).expand(b, steps, 1),
        "terminated": terminated,
    }
    batch.update(values, ts=slice(None))
    return batch


def table_learner(
    live: torch.Tensor, central: torch.Tensor, weighting: str, **settings: object
) -> WeightedQLearner:
    """QMIX agents and Q*'s agents as fixed tables (B, steps, N, A), both mixers sums, so
    that Q_tot and Q* are the table sums of the joint action; targets start as copies."""
    return WeightedQLearner(
        TableMAC(live),  # type: ignore[arg-type]
        VDNMixer(TABLE_INFO),
        TableMAC(central),  # type: ignore[arg-type]
        VDNMixer(TABLE_INFO),
        weighting=weighting,
        alpha=ALPHA,
        **settings,  # type: ignore[arg-type]
    )


# Three one-step episodes (y = r): per-agent tables at step 0, (agent 0, agent 1) rows.
#   ep0: QMIX [1, 0], [0, 2] greedy (0, 1) = taken; Q_tot 3, r 1: td +2 (over)
#   ep1: QMIX [1, 0], [2, 0] greedy (0, 0), taken (1, 1); Q_tot 0, r -1: td +1 (over);
#        Q* at greedy: [-1, 0], [-1, 0] -> -2 < y
#   ep2: QMIX [0, 1], [0, 1] greedy (1, 1), taken (0, 0); Q_tot 0, r 2: td -2 (under);
#        Q* at greedy: [0, 3], [0, 3] -> 6 > y
# Q* at the taken actions: ep0 0.5 + 0.5 = 1 (err 0), ep1 0 (err 1), ep2 0 (err -2).
TAKEN = [[0, 1], [1, 1], [0, 0]]
REWARDS = [1.0, -1.0, 2.0]
LIVE = [[[1.0, 0], [0, 2]], [[1.0, 0], [2, 0]], [[0.0, 1], [0, 1]]]
CENTRAL = [[[0.5, 0], [0, 0.5]], [[-1.0, 0], [-1, 0]], [[0.0, 3], [0, 3]]]
TD_SQUARED = torch.tensor([4.0, 1.0, 4.0])
WEIGHTS = {
    # OW: full weight where Q_tot < y (ep2 only)
    "ow": torch.tensor([ALPHA, ALPHA, 1.0]),
    # CW: full weight at the greedy joint action (ep0) or where y > Q*(s, greedy) (ep1)
    "cw": torch.tensor([1.0, 1.0, ALPHA]),
}


def one_step_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """The tables above at step 0, zeros at the stored next step: (B, 2, N, A) each."""
    live, central = torch.zeros(3, 2, 2, 2), torch.zeros(3, 2, 2, 2)
    live[:, 0], central[:, 0] = torch.tensor(LIVE), torch.tensor(CENTRAL)
    return live, central


@pytest.mark.parametrize("weighting", ["ow", "cw"])
def test_weighted_loss_known_answer(weighting: str) -> None:
    live, central = one_step_tables()
    learner = table_learner(live, central, weighting)
    stats = learner.train(table_batch(TAKEN, REWARDS, steps=2), t_env=0, episode=0)
    weights = WEIGHTS[weighting]
    qmix_loss = (weights * TD_SQUARED).mean().item()
    central_loss = (0.0 + 1.0 + 4.0) / 3
    assert stats["learner/weight_mean"] == pytest.approx(weights.mean().item())
    assert stats["learner/qmix_loss"] == pytest.approx(qmix_loss)
    assert stats["learner/central_loss"] == pytest.approx(central_loss)
    assert stats["learner/loss"] == pytest.approx(qmix_loss + central_loss)
    assert stats["learner/target_mean"] == pytest.approx(sum(REWARDS) / 3)


def test_alpha_one_weighs_every_error_fully() -> None:
    live, central = one_step_tables()
    learner = table_learner(live, central, "cw")
    learner.alpha = 1.0
    stats = learner.train(table_batch(TAKEN, REWARDS, steps=2), t_env=0, episode=0)
    assert stats["learner/weight_mean"] == 1.0
    assert stats["learner/qmix_loss"] == pytest.approx(TD_SQUARED.mean().item())


@pytest.mark.parametrize(("double_q", "expected"), [(True, 1 + 0.5 * 14), (False, 1 + 0.5 * 12)])
def test_targets_are_the_target_q_star_at_the_qmix_agents_greedy_action(
    double_q: bool, expected: float
) -> None:
    """One episode of two transitions, r = 1 each, gamma 0.5. At step 1 the live QMIX
    agents' greedy joint action is (0, 1), the target QMIX agents' (1, 0); the target Q*
    values them 3 + 11 = 14 and 5 + 7 = 12 (its own greedy action (1, 1) would give 16)."""
    live, central = torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    live[0, 1] = torch.tensor([[1.0, 0], [0, 1]])
    central[0, 1] = torch.tensor([[3.0, 5], [7, 11]])
    learner = table_learner(live, central, "ow", gamma=0.5, double_q=double_q)
    with torch.no_grad():
        learner.targets["mac"].table[0, 1] = torch.tensor([[0.0, 1], [1, 0]])
        learner.central_mac.table.zero_()  # the live Q* plays no part in the targets
    batch = table_batch([[0, 0]], [1.0], steps=3)
    mask = torch.ones(1, 2, 1)
    *_, targets, _ = learner.loss(
        batch.float("obs"),
        batch["actions"],
        batch["avail_actions"],
        batch.float("state"),
        batch["reward"][:, :-1],
        batch["terminated"][:, :-1].float(),
        mask,
    )
    assert targets[0, :, 0].tolist() == [expected, 1.0]  # the second transition is terminal


# ----------------------------------------------------------------------------- real networks
def make_learner(seed: int = 0, share_params: bool = True, **settings: object) -> WeightedQLearner:
    torch.manual_seed(seed)
    agent = functools.partial(RNNAgent, hidden_dim=8)
    return WeightedQLearner(
        MultiAgentController(agent, INFO, share_params=share_params),
        QMixer(INFO, embed_dim=8, hypernet_embed=16),
        MultiAgentController(agent, INFO, share_params=share_params),
        CentralMixer(INFO, embed_dim=16),
        torch.Generator().manual_seed(seed),
        **{"weighting": "cw", "lr": 0.01, **settings},  # type: ignore[arg-type]
    )


def test_it_is_a_learner_of_four_networks() -> None:
    learner = make_learner()
    assert isinstance(learner, Learner) and not learner.on_policy
    assert list(learner.networks()) == ["mac", "mixer", "central_mac", "central_mixer"]
    state = learner.state_dict()
    for name in learner.networks():
        assert state[name].keys() == state[f"target_{name}"].keys()
    assert len(learner.params) == sum(
        len(list(net.parameters())) for net in learner.networks().values()
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"weighting": "ow"},
        {"weighting": "cw"},
        {"weighting": "cw", "double_q": False},
        {"weighting": "ow", "td_lambda": 0.6},
        {"weighting": "cw", "standardise_rewards": True, "optimizer": "adam"},
        {"weighting": "ow", "share_params": False},  # a network per agent, both controllers
    ],
)
def test_every_setting_trains_every_network(settings: dict[str, object]) -> None:
    batch = make_batch(lengths=[5, 4, 3], terminal=[4, None, 2], seed=7)
    learner = make_learner(**settings)
    before = {name: flat_params(net) for name, net in learner.networks().items()}
    losses = [learner.train(batch, t_env=0, episode=0)["learner/loss"] for _ in range(15)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]
    for name, net in learner.networks().items():
        assert not torch.equal(flat_params(net), before[name]), name


def test_state_dict_round_trip_makes_the_identical_next_update() -> None:
    batch = make_batch(lengths=[5, 4, 3], terminal=[4, None, 2], seed=9)
    learner = make_learner(target_update_interval=2)
    for episode in range(1, 4):
        learner.train(batch, t_env=0, episode=episode)
    fresh = make_learner(seed=11, target_update_interval=2)
    fresh.load_state_dict(copy.deepcopy(learner.state_dict()))
    next_batch = make_batch(lengths=[5, 3, 4], terminal=[None, 2, 3], seed=10)
    assert fresh.train(next_batch, 0, 4) == learner.train(next_batch, 0, 4)
    for name, net in learner.networks().items():
        assert torch.equal(flat_params(fresh.networks()[name]), flat_params(net))
        assert torch.equal(flat_params(fresh.targets[name]), flat_params(learner.targets[name]))


def test_unknown_weighting_is_an_error() -> None:
    with pytest.raises(ValueError, match="'ow' or 'cw'"):
        make_learner(weighting="hysteretic")
