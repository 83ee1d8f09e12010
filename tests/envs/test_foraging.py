"""env=foraging, marl's own Level-Based Foraging: lbforaging's episodes seed for seed (when
lbforaging is installed), its rules on hand-made fields, seeding, reset_copies and resume."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import instantiate

from marl.config import compose_config
from marl.envs.foraging import LOAD, NONE, NORTH, SOUTH, ForagingEnv, Game, Rules
from marl.errors import UsageError
from marl.experiment import Experiment

needs_lbf = pytest.mark.skipif(find_spec("lbforaging") is None, reason="pip install 'marl[lbf]'")
EAST, WEST = 4, 3


def lbforaging(key: str, batch_size: int, seed: int, **kwargs: Any) -> Any:
    """env=lbf's adapter on lbforaging itself, in this process."""
    from marl.envs.gymnasium_env import GymnasiumEnv

    limit = {"max_episode_steps": 50, **kwargs}
    return GymnasiumEnv(
        key,
        import_module="lbforaging",
        time_limit=50,
        agent_rewards=True,
        workers=False,
        kwargs=limit,
        batch_size=batch_size,
        seed=seed,
    )


@needs_lbf
@pytest.mark.parametrize(
    ("ours", "theirs", "kwargs"),
    [
        ("Foraging-8x8-2p-2f-v3", "Foraging-8x8-2p-2f-v3", {}),
        ("Foraging-2s-10x10-3p-3f-v3", "Foraging-2s-10x10-3p-3f-v3", {}),
        ("Foraging-5x5-4p-1f-coop-v3", "Foraging-5x5-4p-1f-coop-v3", {}),
        ("Foraging-7x7-3p-2f-pen-v3", "Foraging-7x7-3p-2f-v3", {"penalty": 0.1}),
    ],
)
def test_plays_lbforagings_episodes_step_for_step(ours: str, theirs: str, kwargs: dict) -> None:
    """Same seed, same actions (mostly available ones, some not): the same observations,
    masks, rewards (each agent's too) and ends, over many episodes of 2 copies."""
    native = ForagingEnv(ours, agent_rewards=True, batch_size=2, seed=11)
    reference = lbforaging(theirs, 2, 11, **kwargs)
    gen = torch.Generator().manual_seed(0)
    loads = loaded = 0
    for _ in range(25):
        native.reset()
        reference.reset()
        live = torch.ones(2, dtype=torch.bool)  # (B,): the copy plays this step
        for _ in range(50):
            for part in ("obs", "state", "avail_actions"):
                assert torch.equal(getattr(native, part)(), getattr(reference, part)()), part
            weights = native.avail_actions().float().flatten(0, 1) + 0.05  # (B * N, A)
            actions = torch.multinomial(weights, 1, generator=gen).view(2, -1)  # (B, N)
            loads += int((actions == LOAD).sum())
            got, expected = native.step(actions), reference.step(actions)
            assert torch.equal(got.reward, expected.reward)
            loaded += int((got.reward > 0)[live].sum())
            assert torch.equal(got.terminated, expected.terminated)
            assert torch.equal(got.info["episode_limit"], expected.info["episode_limit"])
            for i in range(native.rules.players):
                name = f"reward_agent_{i}"
                assert torch.equal(got.info[name][live], expected.info[name][live]), name
            live = ~got.terminated
            if bool(got.terminated.all()):
                break
    assert loads > 100 and loaded > 0, "the episodes should try to load and load food"
    reference.close()


# -- the rules on hand-made fields ---------------------------------------------------------


def game(pos: list[tuple[int, int]], levels: list[int], food: dict, size: int = 5) -> Game:
    rules = Rules(rows=size, cols=size, players=len(pos), foods=max(len(food), 1), sight=size)
    g = Game(rules)
    g.pos, g.levels, g.food = list(pos), list(levels), dict(food)
    g.spawned, g.t, g.over = sum(food.values()), 0, False
    return g


def play(g: Game, actions: list[int], limit: int = 50) -> list[float]:
    return g.step(actions, g.available(), limit)


def test_players_aiming_at_one_cell_all_stay() -> None:
    g = game([(1, 1), (1, 3)], [1, 1], {(4, 4): 1})
    play(g, [EAST, WEST])  # both to (1, 2)
    assert g.pos == [(1, 1), (1, 3)]
    g = game([(1, 1), (1, 2)], [1, 1], {(4, 4): 1})
    play(g, [EAST, NONE])  # into a player that stays
    assert g.pos == [(1, 1), (1, 2)]
    play(g, [EAST, EAST])  # the one in front moves on: both move
    assert g.pos == [(1, 2), (1, 3)]


def test_strong_enough_loaders_share_the_food_by_level() -> None:
    g = game([(1, 2), (3, 2), (0, 0)], [1, 2, 2], {(2, 2): 3, (4, 4): 1})
    rewards = play(g, [LOAD, LOAD, NONE])
    assert rewards == pytest.approx([1 * 3 / (3 * 4), 2 * 3 / (3 * 4), 0.0])
    assert g.food == {(4, 4): 1} and not g.over


def test_too_weak_loaders_pay_the_penalty_and_the_food_stays() -> None:
    g = game([(1, 2), (3, 3)], [1, 2], {(2, 2): 2})
    g.rules = Rules(rows=5, cols=5, players=2, foods=1, sight=5, penalty=0.1)
    assert play(g, [LOAD, NONE]) == [-0.1, 0.0]
    assert g.food == {(2, 2): 2}


def test_clearing_the_field_ends_the_episode_and_the_time_limit_truncates() -> None:
    g = game([(1, 2), (0, 0)], [2, 1], {(2, 2): 2})
    assert play(g, [LOAD, NONE], limit=50) == [1.0, 0.0]
    assert g.over and not g.truncated
    g = game([(1, 2), (0, 0)], [1, 1], {(2, 2): 2})
    play(g, [NORTH, NONE], limit=2)
    assert not g.over
    play(g, [SOUTH, NONE], limit=2)
    assert g.over and g.truncated


def test_masks_and_unavailable_actions() -> None:
    g = game([(0, 2), (3, 2)], [1, 1], {(2, 2): 1})
    assert g.available() == [
        [True, False, True, True, True, False],  # north leaves the field
        [True, False, True, True, True, True],  # north is the food; load it
    ]
    play(g, [NORTH, NORTH])  # both unavailable: played as none
    assert g.pos == [(0, 2), (3, 2)]


def test_observations_with_a_small_sight() -> None:
    """Sight 1: a 3x3 window, clipped at the edge; positions relative to its corner."""
    g = game([(0, 0), (1, 1), (4, 4)], [1, 2, 1], {(1, 2): 3, (3, 3): 1})
    g.rules = Rules(rows=5, cols=5, players=3, foods=2, sight=1)
    obs = torch.tensor(g.observe()).view(3, 15)  # (N, O): 2 foods, 3 players
    unseen = [-1.0, -1.0, 0.0]
    # Player 0 at the corner sees (0..1, 0..1): no food; itself, then player 1.
    assert obs[0].tolist() == [*unseen, *unseen, 0, 0, 1, 1, 1, 2, *unseen]
    # Player 1 sees (0..2, 0..2): the food at (1, 2), itself at (1, 1), player 0 at (0, 0).
    assert obs[1].tolist() == [1, 2, 3, *unseen, 1, 1, 2, 0, 0, 1, *unseen]
    # Player 2 at (4, 4) sees (3..4, 3..4): the food at (3, 3) and itself.
    assert obs[2].tolist() == [0, 0, 1, *unseen, 1, 1, 1, *unseen, *unseen]


# -- the env -------------------------------------------------------------------------------


def test_preset_and_sizes() -> None:
    cfg = compose_config(["env=foraging"])
    env = instantiate(cfg.env, batch_size=2, seed=0, device="cpu")
    info = env.get_env_info()
    assert (info.n_agents, info.n_actions, info.obs_shape, info.state_shape) == (2, 6, 12, 24)
    assert info.episode_limit == 50
    assert env.obs().shape == (2, 2, 12) and env.state().shape == (2, 24)
    assert env.avail_actions().dtype == torch.bool


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("Foraging-grid-8x8-2p-2f-v3", "grid observations are env=lbf's"),
        ("Foraging-8x9-2p-2f-v3", "must be square"),
        ("Foraging-8x8-2p-2f-v2", "is not a Level-Based Foraging id"),
    ],
)
def test_keys_it_cannot_play_are_one_sentence(key: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ForagingEnv(key, batch_size=1, seed=0)


def test_copy_i_plays_the_episodes_of_seed_plus_i() -> None:
    batched = ForagingEnv(batch_size=3, seed=5)
    for i in range(3):
        alone = ForagingEnv(batch_size=1, seed=5 + i)
        assert torch.equal(alone.obs()[0], batched.obs()[i])
    assert not torch.equal(batched.obs()[0], batched.obs()[1])


def test_ended_copies_pay_nothing_and_stay_ended() -> None:
    env = ForagingEnv(time_limit=2, batch_size=2, seed=0)
    none = torch.zeros(2, 2, dtype=torch.long)
    env.step(none)
    assert bool(env.step(none).terminated.all())
    obs = env.obs()
    result = env.step(none)
    assert result.terminated.all() and result.reward.eq(0).all()
    assert torch.equal(env.obs(), obs)


def test_reset_copies_restarts_only_the_masked_copies() -> None:
    env = ForagingEnv(batch_size=3, seed=2)
    start = env.obs().clone()
    env.step(torch.full((3, 2), SOUTH))
    moved = env.obs().clone()
    env.reset_copies(torch.tensor([False, True, False]))
    after = env.obs()
    assert torch.equal(after[[0, 2]], moved[[0, 2]])
    assert not torch.equal(after[1], start[1])  # copy 1's second episode, not its first
    with pytest.raises(ValueError, match="copy mask"):
        env.reset_copies(torch.tensor([True]))


def test_a_saved_state_loads_only_into_the_same_task() -> None:
    """(Resume mid-episode with runner=autoreset: tests/runners/test_autoreset.py.)"""
    saved = ForagingEnv("Foraging-5x5-2p-1f-v3", batch_size=4, seed=3).state_dict()
    with pytest.raises(ValueError, match=r"env\.key"):
        ForagingEnv(batch_size=4, seed=0).load_state_dict(saved)
    with pytest.raises(ValueError, match="4 env copies, this env has 2"):
        ForagingEnv("Foraging-5x5-2p-1f-v3", batch_size=2, seed=0).load_state_dict(saved)


@needs_lbf
@pytest.mark.timeout(120)
def test_training_on_foraging_logs_what_training_on_lbf_logs(tmp_path: Path) -> None:
    """Same episodes, same masks, same rewards: QMIX's whole run, updates included, is the
    same on env=foraging as on env=lbf (in-process copies), number for number."""
    common = ["algo=qmix_epymarl", "batch_size_run=2", "t_max=1500", "batch_size=4"]
    common += ["test_interval=500", "test_nepisode=2", "log_interval=500", "logger=[jsonl]"]
    common += ["learner_log_interval=500"]
    rows = {}
    for env in ("foraging", "lbf"):
        extra = ["env.workers=false"] if env == "lbf" else []
        Experiment(compose_config([*common, f"env={env}", *extra]), tmp_path / env).train()
        lines = (tmp_path / env / "metrics.jsonl").read_text().splitlines()
        rows[env] = [
            {k: v for k, v in json.loads(line).items() if not k.startswith("time/")}
            for line in lines
        ]
    assert rows["foraging"] == rows["lbf"]
    assert any("learner/loss" in row for row in rows["lbf"])
    assert any("test/return_mean" in row for row in rows["lbf"])
