"""Known-answer tests for the cooperative matrix games."""

from __future__ import annotations

import itertools

import pytest
import torch

from marl.envs.base import BatchedEnv, CopyResetEnv, EnvInfo
from marl.envs.matrix import MatrixEnv, MatrixEnvConfig

PENALTY_K = -37.0
PENALTY = [[PENALTY_K, 0.0, 10.0], [0.0, 2.0, 0.0], [10.0, 0.0, PENALTY_K]]
CLIMBING = [[11.0, -30.0, 0.0], [-30.0, 7.0, 6.0], [0.0, 0.0, 5.0]]
QTRAN = [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]]
TWO_STEP_2B = [[0.0, 1.0], [1.0, 8.0]]
TWO_STEP_2A = 7.0
GAMES = ["penalty", "climbing", "two_step", "qtran"]
# game -> (n_actions, n_game_states, steps per round, best payoff per round)
GAME_FACTS = {
    "penalty": (3, 1, 1, 10.0),
    "climbing": (3, 1, 1, 11.0),
    "two_step": (2, 3, 2, 8.0),
    "qtran": (3, 1, 1, 8.0),
}


def make(game: str, batch_size: int = 1, rounds: int = 1, k: float = -100.0) -> MatrixEnv:
    return MatrixEnv(game, k=k, rounds=rounds, batch_size=batch_size, seed=0)


def all_joint_actions(n_actions: int) -> torch.Tensor:
    """Every joint action as one batch, (A * A, 2) long."""
    return torch.tensor(list(itertools.product(range(n_actions), repeat=2)))


def one_hot_state(index: int, n_states: int, progress: float) -> list[float]:
    return [float(i == index) for i in range(n_states)] + [progress]


@pytest.mark.parametrize(
    ("game", "table", "k"),
    [("penalty", PENALTY, PENALTY_K), ("climbing", CLIMBING, -100.0), ("qtran", QTRAN, -100.0)],
)
def test_one_step_payoffs_every_joint_action(game: str, table: list[list[float]], k: float) -> None:
    actions = all_joint_actions(3)  # (9, 2)
    env = make(game, batch_size=len(actions), k=k)
    result = env.step(actions)
    expected = torch.tensor([table[a][b] for a, b in actions.tolist()])
    torch.testing.assert_close(result.reward, expected)
    assert result.terminated.all()
    assert not result.info["episode_limit"].any()


def test_two_step_transitions_and_payoffs() -> None:
    # Agent 0 picks the second state; agent 1's first action must not matter.
    first = all_joint_actions(2)  # (4, 2): 2A, 2A, 2B, 2B
    second = all_joint_actions(2)  # (4, 2)
    batch = len(first) * len(second)
    a_first = first.repeat_interleave(len(second), dim=0)  # (16, 2)
    a_second = second.repeat(len(first), 1)  # (16, 2)
    env = make("two_step", batch_size=batch)

    torch.testing.assert_close(env.state(), torch.tensor([one_hot_state(0, 3, 0.0)] * batch))
    r1 = env.step(a_first)
    torch.testing.assert_close(r1.reward, torch.zeros(batch))
    assert not r1.terminated.any()
    expected_index = 1 + a_first[:, 0]  # 2A = 1, 2B = 2
    expected_state = [one_hot_state(int(i), 3, 0.5) for i in expected_index]
    torch.testing.assert_close(env.state(), torch.tensor(expected_state))

    r2 = env.step(a_second)
    payoffs = [
        TWO_STEP_2A if a0 == 0 else TWO_STEP_2B[b0][b1]
        for (a0, _), (b0, b1) in zip(a_first.tolist(), a_second.tolist(), strict=True)
    ]
    torch.testing.assert_close(r2.reward, torch.tensor(payoffs))
    assert r2.terminated.all()
    assert not r2.info["episode_limit"].any()


@pytest.mark.parametrize("game", GAMES)
@pytest.mark.parametrize("rounds", [1, 3])
def test_terminates_after_rounds(game: str, rounds: int) -> None:
    n_actions, _, steps_per_round, best = GAME_FACTS[game]
    env = make(game, batch_size=2, rounds=rounds)
    limit = rounds * steps_per_round
    assert env.get_env_info().episode_limit == limit
    assert env.optimal_return == rounds * best
    actions = torch.full((2, 2), n_actions - 1)
    for t in range(limit):
        result = env.step(actions)
        assert result.terminated.dtype == torch.bool
        assert result.info["episode_limit"].dtype == torch.bool
        assert result.terminated.tolist() == [t == limit - 1] * 2
        assert not result.info["episode_limit"].any()
    torch.testing.assert_close(env.state()[:, -1], torch.ones(2))


@pytest.mark.parametrize("game", GAMES)
def test_shapes_and_dtypes(game: str) -> None:
    n_actions, n_states, steps_per_round, _ = GAME_FACTS[game]
    batch = 4
    env = make(game, batch_size=batch)
    assert isinstance(env, BatchedEnv)
    info = env.get_env_info()
    size = n_states + 1
    assert info == EnvInfo(2, n_actions, size, size, steps_per_round)
    obs, state, avail = env.obs(), env.state(), env.avail_actions()
    assert obs.shape == (batch, 2, size) and obs.dtype == torch.float32
    assert state.shape == (batch, size) and state.dtype == torch.float32
    assert avail.shape == (batch, 2, n_actions) and avail.dtype == torch.bool
    assert avail.all()
    torch.testing.assert_close(obs, state.unsqueeze(1).expand(-1, 2, -1))
    result = env.step(torch.zeros(batch, 2, dtype=torch.long))
    assert result.reward.shape == (batch,) and result.reward.dtype == torch.float32
    assert result.terminated.shape == (batch,)
    assert result.info["episode_limit"].shape == (batch,)
    assert env.device == torch.device("cpu") and env.batch_size == batch
    env.close()


def test_stepping_after_end_is_frozen() -> None:
    env = make("climbing", batch_size=2)
    env.step(torch.tensor([[0, 0], [1, 1]]))
    before = env.state()
    result = env.step(torch.tensor([[0, 0], [1, 1]]))
    torch.testing.assert_close(result.reward, torch.zeros(2))
    assert result.terminated.all()
    torch.testing.assert_close(env.state(), before)
    env.reset()
    assert not env.step(torch.tensor([[0, 0], [1, 1]])).reward.eq(0).any()


def test_state_dict_round_trip_mid_episode() -> None:
    actions = torch.tensor([[0, 1], [1, 0], [1, 1]])
    env = make("two_step", batch_size=3, rounds=2)
    env.step(actions)
    saved = env.state_dict()
    future = [env.step(actions) for _ in range(3)]

    fresh = make("two_step", batch_size=3, rounds=2)
    fresh.load_state_dict(saved)
    for expected in future:
        got = fresh.step(actions)
        torch.testing.assert_close(got.reward, expected.reward)
        assert torch.equal(got.terminated, expected.terminated)
    torch.testing.assert_close(fresh.state(), env.state())
    assert torch.equal(fresh.state_dict()["generator"], env.state_dict()["generator"])


def test_config_defaults_build_the_env() -> None:
    cfg = MatrixEnvConfig()
    assert cfg._target_ == "marl.envs.matrix.MatrixEnv"
    env = MatrixEnv(cfg.game, cfg.k, cfg.rounds, batch_size=1, seed=0)
    assert env.game == "two_step" and env.optimal_return == 8.0


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="two_step"):
        make("prisoners_dilemma")
    with pytest.raises(ValueError, match="rounds"):
        make("penalty", rounds=0)
    env = make("penalty", batch_size=2)
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(2,\)"):
        env.step(torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(3, 2, dtype=torch.long))


def test_reset_copies_restarts_only_the_masked_copies() -> None:
    # two_step, two rounds (4 steps); (1, 1) goes to 2B then pays 8 there.
    env = make("two_step", batch_size=3, rounds=2)
    assert isinstance(env, CopyResetEnv)
    to_2b = torch.ones(3, 2, dtype=torch.long)
    env.step(to_2b)
    env.reset_copies(torch.tensor([True, False, False]))
    expected = [one_hot_state(0, 3, 0.0)] + [one_hot_state(2, 3, 0.25)] * 2
    torch.testing.assert_close(env.state(), torch.tensor(expected))
    rewards = [env.step(to_2b).reward.tolist() for _ in range(3)]
    assert rewards == [[0.0, 8.0, 8.0], [8.0, 0.0, 0.0], [0.0, 8.0, 8.0]]  # copy 0 one behind
    assert env.state_dict()["done"].tolist() == [False, True, True]

    env.reset_copies(torch.tensor([False, True, False]))  # one ended copy restarts
    saved = env.state_dict()
    assert saved["t"].tolist() == [3, 0, 4] and saved["done"].tolist() == [False, False, True]
    assert saved["game_state"].tolist() == [2, 0, 0]
    result = env.step(to_2b)
    assert result.reward.tolist() == [8.0, 0.0, 0.0]  # copy 2 stays frozen
    assert result.terminated.tolist() == [True, False, True]


def test_reset_copies_refuses_a_mask_of_the_wrong_shape() -> None:
    env = MatrixEnv("two_step", rounds=2, batch_size=3, seed=0)
    with pytest.raises(ValueError, match="copy mask must be"):
        env.reset_copies(torch.tensor([True]))  # would broadcast to every copy
