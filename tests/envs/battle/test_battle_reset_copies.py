"""reset_copies: a new episode in some copies while the others play on (runner=autoreset).

Every test runs with all the randomness the env has (spawn jitter, SC2's cooldown delay,
2m_vs_1z's attack point, SMACv2's teams and start positions), on a fixed map, the map
whose attack point is drawn per episode and a SMACv2 map.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from marl.envs.base import CopyResetEnv
from marl.envs.battle.env import NO_ACTION, BattleEnv
from marl.envs.battle.features import N_ACTIONS_NO_ATTACK
from marl.envs.battle.maps import get_map
from marl.envs.battle.rng import CopyRNG
from marl.envs.battle.smacv2 import draw_positions, draw_teams

MAPS = ["3m", "2m_vs_1z", "protoss_5_vs_5"]  # fixed, drawn attack point, SMACv2
RANDOM = {"spawn_noise": 1.0, "cooldown_jitter": True}
SEED = 5
B = 3


def make(map_name: str, batch_size: int = B, seed: int = SEED) -> BattleEnv:
    return BattleEnv(map_name, batch_size=batch_size, seed=seed, **RANDOM)


def mask(*copies: bool) -> torch.Tensor:
    return torch.tensor(copies)  # (B,)


def scripted_actions(env: BattleEnv, k: int) -> torch.Tensor:
    """Valid actions that depend only on each copy's masks and the step number ``k``:
    attack when an enemy is in range (which one turns with k), else the move k picks;
    the dead no-op. (B, N)."""
    avail = env.avail_actions()  # (B, N, A)
    index = torch.arange(avail.shape[-1])  # (A,)
    score = (index + k) % avail.shape[-1] + avail.shape[-1] * (index >= N_ACTIONS_NO_ATTACK)  # (A,)
    return torch.where(avail, score, -1).argmax(-1)  # (B, N)


def copy_state(env: BattleEnv, b: int) -> dict[str, torch.Tensor]:
    """Everything copy ``b`` holds: units, counters, its random stream, team, goal, views."""
    saved = env.state_dict()
    parts: dict[str, torch.Tensor] = {f"units.{k}": v for k, v in saved["units"].items()}
    parts |= {f"rng.{k}": v for k, v in saved["rng"].items()}
    for name in ("t", "done", "last_action", "types", "enemy_goal", "max_reward"):
        parts[name] = saved[name]
    parts |= {"obs": env.obs(), "state": env.state(), "avail": env.avail_actions()}
    return {name: value[b].clone() for name, value in parts.items()}


def assert_same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    """Bit for bit, part by part (the message names the first part that differs)."""
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=name)


def assert_same_state_dict(got: Any, want: Any, path: str = "") -> None:
    if isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for key in want:
            assert_same_state_dict(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, torch.Tensor):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=path)
    else:
        assert got == want, path


def kill_allies(env: BattleEnv, *copies: int) -> None:
    """Every ally of ``copies`` dead, so their next step loses the battle."""
    health = env.units.health.clone()  # (B, U)
    health[list(copies), : env.n_agents] = 0.0
    env.set_unit_state(pos=env.units.pos, health=health, shield=env.units.shield)


def test_battle_env_is_a_copy_reset_env() -> None:
    assert isinstance(make("3m"), CopyResetEnv)


@pytest.mark.parametrize("map_name", MAPS)
def test_reset_copies_keeps_the_others_and_restarts_the_masked(map_name: str) -> None:
    env = make(map_name)
    kill_allies(env, 1, 2)
    assert env.step(scripted_actions(env, 0)).terminated.tolist() == [False, True, True]
    for k in range(1, 6):
        env.step(scripted_actions(env, k))
    before = [copy_state(env, b) for b in range(B)]
    assert before[1]["done"] and before[1]["t"] == 1  # the kept copy ended its episode
    assert before[2]["done"] and not before[0]["done"]  # restart one ended, one playing

    env.reset_copies(mask(True, False, True))

    assert_same(copy_state(env, 1), before[1])
    units = env.units
    for b in (0, 2):
        now = copy_state(env, b)
        assert now["t"] == 0 and not now["done"]
        assert now["last_action"].eq(NO_ACTION).all()
        assert torch.equal(units.health[b], env.tab.health_max[b])
        assert torch.equal(units.shield[b], env.tab.shield_max[b])
        assert units.cooldown[b].eq(0).all()
        assert not torch.equal(now["units.pos"], before[b]["units.pos"])  # a new spawn
        assert now["rng.counter"] > before[b]["rng.counter"]  # drawn from its own stream
    assert not env.avail_actions()[[0, 2], :, 0].any()  # nobody dead: no-op unavailable


@pytest.mark.parametrize("map_name", MAPS)
def test_reset_copies_of_no_copy_changes_nothing(map_name: str) -> None:
    env = make(map_name)
    for k in range(3):
        env.step(scripted_actions(env, k))
    before = copy.deepcopy(env.state_dict())
    env.reset_copies(mask(False, False, False))
    assert_same_state_dict(env.state_dict(), before)


def step_together(batch: BattleEnv, single: BattleEnv, k: int) -> bool:
    """Check copy 0 of ``batch`` equals ``single``, step both with the same actions;
    whether the single env's episode is over."""
    assert_same(copy_state(batch, 0), copy_state(single, 0))
    actions = scripted_actions(batch, k)  # (B, N)
    r_batch, r_single = batch.step(actions), single.step(actions[:1])
    torch.testing.assert_close(r_batch.reward[:1], r_single.reward, rtol=0, atol=0)
    assert bool(r_batch.terminated[0]) == bool(r_single.terminated[0])
    return bool(single.state_dict()["done"][0])


@pytest.mark.parametrize("map_name", MAPS)
def test_a_reset_copy_draws_what_a_single_env_draws(map_name: str) -> None:
    # Copy 0 of a batch of 3 and a B = 1 env with the same seed play the same actions.
    # Copy 0's episode ends, the batch plays on 2 steps (copy 0 frozen), then the batch
    # restarts copy 0 alone and the single env resets: they stay equal bit for bit
    # through the whole next episode and its restart.
    batch, single = make(map_name), make(map_name, batch_size=1)
    k = 0
    for frozen_steps in (2, 0):
        while not step_together(batch, single, k):
            k += 1
        for _ in range(frozen_steps):
            k += 1
            step_together(batch, single, k)
        k += 1
        batch.reset_copies(mask(True, False, False))
        single.reset()
    assert_same(copy_state(batch, 0), copy_state(single, 0))


@pytest.mark.parametrize("map_name", MAPS)
def test_resetting_every_copy_is_reset(map_name: str) -> None:
    by_mask, by_reset = make(map_name), make(map_name)
    kill_allies(by_mask, 2)
    kill_allies(by_reset, 2)
    for k in range(4):
        by_mask.step(scripted_actions(by_mask, k))
        by_reset.step(scripted_actions(by_reset, k))
    by_mask.reset_copies(mask(True, True, True))
    by_reset.reset()
    assert_same_state_dict(by_mask.state_dict(), by_reset.state_dict())
    for b in range(B):
        assert_same(copy_state(by_mask, b), copy_state(by_reset, b))


@pytest.mark.parametrize("map_name", MAPS)
def test_state_dict_after_reset_copies_continues_exactly(map_name: str) -> None:
    env = make(map_name)
    for k in range(4):
        env.step(scripted_actions(env, k))
    env.reset_copies(mask(False, True, False))
    for k in range(2):
        env.step(scripted_actions(env, k))
    restored = make(map_name, seed=SEED + 94)  # its own teams and streams until loaded
    restored.load_state_dict(copy.deepcopy(env.state_dict()))
    for k in range(6):
        if k == 3:  # draws after the restore come from the restored streams
            env.reset_copies(mask(True, False, False))
            restored.reset_copies(mask(True, False, False))
        torch.testing.assert_close(restored.obs(), env.obs(), rtol=0, atol=0)
        torch.testing.assert_close(restored.state(), env.state(), rtol=0, atol=0)
        assert torch.equal(restored.avail_actions(), env.avail_actions())
        actions = scripted_actions(env, k)  # (B, N)
        got, want = restored.step(actions), env.step(actions)
        torch.testing.assert_close(got.reward, want.reward, rtol=0, atol=0)
        assert torch.equal(got.terminated, want.terminated)
    assert_same_state_dict(restored.state_dict(), env.state_dict())


@pytest.mark.parametrize("map_name", MAPS)
def test_a_copy_plays_the_same_whenever_another_copy_restarts(map_name: str) -> None:
    # Both batches restart copies 1 and 2 when they end; `often` also restarts copy 0
    # every 4 steps (SMACv2: a new team in copy 0 each time), `never` leaves it be.
    often, never = make(map_name), make(map_name)
    for k in range(24):
        for b in (1, 2):
            assert_same(copy_state(often, b), copy_state(never, b))
        ended_often = often.step(scripted_actions(often, k)).terminated  # (B,)
        ended_never = never.step(scripted_actions(never, k)).terminated  # (B,)
        ended_often[0] = k % 4 == 3
        ended_never[0] = False
        for env, ended in ((often, ended_often), (never, ended_never)):
            if bool(ended.any()):
                env.reset_copies(ended)


def test_reset_copies_refuses_while_recording() -> None:
    env = make("3m")
    env.set_recording(True)
    with pytest.raises(RuntimeError, match="reset every copy"):
        env.reset_copies(mask(True, False, False))


def test_smacv2_draws_move_only_the_streams_asked() -> None:
    # terran_1_vs_2: a lone medivac (an exception, drawn 1 time in 10) is redrawn, and
    # the second enemy is an extra draw. Copies not asked keep their counters, and draw
    # later exactly what they would have drawn first.
    team = get_map("terran_1_vs_2").team
    assert team is not None
    copies = 64
    asked = torch.arange(copies) % 2 == 0  # (64,)
    first, everyone = (
        CopyRNG(3, copies, torch.device("cpu")),
        CopyRNG(3, copies, torch.device("cpu")),
    )
    want_teams = draw_teams(everyone, team)  # (64, 1), (64, 2)
    want_pos = draw_positions(everyone, team)  # (64, 1, 2), (64, 2, 2), (64,)
    assert everyone.counter.gt(2).any()  # some copies redrew a lone medivac

    teams = draw_teams(first, team, asked)
    pos = draw_positions(first, team, asked)
    for got, want in zip(teams + pos, want_teams + want_pos, strict=True):
        assert torch.equal(got[asked], want[asked])
    assert first.counter[~asked].eq(0).all()
    torch.testing.assert_close(first.counter[asked], everyone.counter[asked], rtol=0, atol=0)

    teams = draw_teams(first, team, ~asked)
    pos = draw_positions(first, team, ~asked)
    for got, want in zip(teams + pos, want_teams + want_pos, strict=True):
        assert torch.equal(got[~asked], want[~asked])
    torch.testing.assert_close(first.counter, everyone.counter, rtol=0, atol=0)


def test_a_mask_of_the_wrong_shape_is_refused() -> None:
    env = make("3m")
    with pytest.raises(ValueError, match="copy mask must be"):
        env.reset_copies(torch.tensor([True]))  # would broadcast to every copy
    with pytest.raises(ValueError, match="copy mask must be"):
        env.reset_copies(torch.tensor([1, 0, 0]))
