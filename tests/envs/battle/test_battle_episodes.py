"""Whole episodes: the stock-AI opponent, seeding, checkpoints, replays, the SMAC view."""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import KERNELS, MakeEnv, Scenario, use_kernel

from marl.envs.battle import env as battle_env
from marl.envs.battle.env import BattleEnv
from marl.envs.battle.frame import BattleReplay
from marl.envs.battle.maps import MAPS
from marl.envs.battle.rng import CopyRNG
from marl.envs.battle.sim import alive
from marl.envs.battle.smac import BattleSMACEnv

STOP = 1


def idle_actions(env: BattleEnv) -> torch.Tensor:
    """Stop for the living, no-op for the dead, (B, N)."""
    return env.avail_actions()[..., STOP].long()  # (B, N): 1 if alive else 0


def random_actions(env: BattleEnv, gen: torch.Generator) -> torch.Tensor:
    avail = env.avail_actions().float()  # (B, N, A)
    flat = torch.multinomial(avail.view(-1, avail.shape[-1]), 1, generator=gen)  # (B * N, 1)
    return flat.view(avail.shape[:2])  # (B, N)


STATIC_ENEMY_MAPS = ("2s_vs_1sc",)  # the enemy cannot move: an idle team is never reached


@pytest.mark.parametrize(
    "map_name",
    [m for m in sorted(MAPS) if m not in STATIC_ENEMY_MAPS]
    + ["protoss_5_vs_5", "terran_5_vs_5", "zerg_10_vs_11"],
)
def test_stock_ai_beats_a_team_that_does_nothing(map_name: str) -> None:
    env = BattleEnv(map_name, batch_size=4, seed=3)
    limit = env.episode_limit
    ended = torch.zeros(4, dtype=torch.bool)
    for _ in range(limit):
        result = env.step(idle_actions(env))
        newly = result.terminated & ~ended
        assert not result.info["battle_won"][newly].any()
        ended |= result.terminated
        if ended.all():
            break
    assert ended.all()
    assert env.get_stats()["battles_game"] == 4 and env.get_stats()["timeouts"] == 0
    # Lost: every ally dead, or (Terran) only medivacs left.
    left = alive(env.units)[:, : env.n_agents] & ~env.tab.heals[:, : env.n_agents]  # (4, N)
    assert not left.any()


def test_spine_crawler_kills_a_team_in_range_and_ignores_one_out_of_range(
    make_env: MakeEnv, scenario: Scenario
) -> None:
    # 2s_vs_1sc: the crawler (unit 2, static, no order) shoots what is in its range
    # (7 + 0.5 + 0.625 = 8.125 between centres): it kills the stalker standing 8 away
    # and never reaches the one 10.2 away, so the battle times out (a draw), as an idle
    # team in SMAC does.
    env = make_env("2s_vs_1sc")
    scenario(env, {0: (13.9, 12.0), 1: (7.5, 12.0), 2: (13.9, 20.0)}, disarmed=(0, 1))
    ended = False
    for _ in range(env.episode_limit):
        result = env.step(idle_actions(env))
        if bool(result.terminated[0]):
            ended = True
            break
        if float(env.units.health[0, 0]) == 0.0:
            assert float(env.units.health[0, 1]) == 80.0 and float(env.units.shield[0, 1]) == 80.0
    assert ended and bool(result.info["episode_limit"][0]) is False
    assert float(env.units.health[0, 0]) == 0.0 and float(env.units.health[0, 1]) > 0
    assert env.get_stats()["timeouts"] == 1  # the far stalker is never shot: a draw
    assert env.units.pos[0, 2].tolist() == pytest.approx([13.9, 20.0])  # it never moved


def play(env: BattleEnv, steps: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = [env.obs().clone()]
    for _ in range(steps):
        result = env.step(random_actions(env, gen))
        out += [env.obs().clone(), result.reward.clone()]
    return out


def test_same_seed_same_trajectory_and_different_seed_differs() -> None:
    noisy = {"spawn_noise": 1.0}  # start noise (SMAC has none: off by default)
    a = play(BattleEnv("2s3z", batch_size=2, seed=7, **noisy), 30, seed=0)
    b = play(BattleEnv("2s3z", batch_size=2, seed=7, **noisy), 30, seed=0)
    c = play(BattleEnv("2s3z", batch_size=2, seed=8, **noisy), 30, seed=0)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.equal(a[0], c[0])  # spawn noise differs


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("map_name", ["3m", "2s3z", "corridor"])
def test_copy_zero_of_a_batch_plays_like_a_single_env(
    map_name: str, kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each copy has its own random stream keyed by (seed, copy index), and no op mixes
    # copies or sums in an order that depends on B (collisions in C: every pair, copy by
    # copy; in torch ops: every pair on small maps, K partners on corridor), so copy 0
    # of a batch of 3 sees exactly what a B = 1 env with the same seed sees.
    use_kernel(kernel, monkeypatch)
    single = BattleEnv(map_name, batch_size=1, seed=11)
    batch = BattleEnv(map_name, batch_size=3, seed=11)
    gen = torch.Generator().manual_seed(1)
    for _ in range(40):
        torch.testing.assert_close(batch.obs()[:1], single.obs(), rtol=0, atol=0)
        actions = random_actions(batch, gen)  # (3, N)
        r_batch, r_single = batch.step(actions), single.step(actions[:1])
        torch.testing.assert_close(r_batch.reward[:1], r_single.reward, rtol=0, atol=0)
        torch.testing.assert_close(batch.units.pos[:1], single.units.pos, rtol=0, atol=0)
        if bool(r_single.terminated[0]):
            single.reset()
            batch.reset()


def test_state_dict_round_trip_mid_episode() -> None:
    env = BattleEnv("2s3z", batch_size=3, seed=5)
    play(env, 6, seed=1)
    saved = copy.deepcopy(env.state_dict())
    after = play(env, 20, seed=2)
    other = BattleEnv("2s3z", batch_size=3, seed=99)
    other.load_state_dict(saved)
    again = play(other, 20, seed=2)
    for x, y in zip(after, again, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert other.get_stats() == env.get_stats()


def test_load_state_dict_rejects_another_map() -> None:
    with pytest.raises(ValueError, match="map"):
        BattleEnv("8m", batch_size=1, seed=0).load_state_dict(
            BattleEnv("3m", batch_size=1, seed=0).state_dict()
        )


def play_to_the_end(env: BattleEnv) -> list[int]:
    """Reset, then idle until every copy's episode ended; the steps each copy played."""
    env.reset()
    steps = torch.zeros(env.batch_size, dtype=torch.long)  # (B,)
    ended = torch.zeros(env.batch_size, dtype=torch.bool)  # (B,)
    while not bool(ended.all()):
        steps += (~ended).long()
        ended |= env.step(idle_actions(env)).terminated
    return steps.tolist()


def test_recording_keeps_every_copys_episode_in_copy_order() -> None:
    env = BattleEnv("3m", batch_size=2, seed=0, spawn_noise=1.0)  # copies spawn apart
    env.set_recording(True)
    steps = play_to_the_end(env)
    replays = env.recorded_replays()
    assert len(replays) == 2 and env.recorded_replays() == []
    for replay, played in zip(replays, steps, strict=True):
        assert isinstance(replay, BattleReplay)
        assert len(replay.frames) == played + 1  # reset frame + one per step it played
        assert replay.frames[0].step == 0 and replay.frames[-1].step == played
        assert replay.frames[-1].outcome == "lost"
        assert all(not f.outcome for f in replay.frames[:-1])
        assert any(a >= 0 for f in replay.frames for a in f.attacking)  # enemies fired
        assert len(replay.info.unit_types) == 6 and replay.info.is_ally[:3] == (True,) * 3
    assert replays[0].frames[0].x != replays[1].frames[0].x  # each copy its own battle


def test_save_replay_writes_one_gif_per_episode_played(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`save_replay=true` with `test_nepisode=4 batch_size_run=2`: four GIFs, not two."""
    written: list[Path] = []
    fake = types.ModuleType("marl.envs.battle.render")
    fake.save_gif = lambda rep, path: written.append(Path(path))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "marl.envs.battle.render", fake)
    env = BattleEnv("3m", batch_size=2, seed=0, spawn_noise=1.0)  # copies spawn apart
    env.set_recording(True)
    play_to_the_end(env)
    play_to_the_end(env)
    env.reset()
    env.step(idle_actions(env))  # an episode cut short by turning recording off is dropped
    env.set_recording(False)
    paths = env.save_replay(tmp_path)
    assert paths == written == [tmp_path / f"3m_{i}.gif" for i in range(4)]


def test_smac_view_api() -> None:
    env = BattleSMACEnv("3m", seed=0)
    obs, state = env.reset()
    assert len(obs) == 3 and all(o.shape == (30,) for o in obs)
    assert state.shape == (48,)
    assert env.get_obs_size() == 30 and env.get_state_size() == 48
    assert env.get_total_actions() == 9
    info = env.get_env_info()
    assert {"state_shape", "obs_shape", "n_actions", "n_agents", "episode_limit"} <= set(info)
    assert {"agent_features", "enemy_features"} <= set(info)
    avail = env.get_avail_actions()
    assert avail == [[0, 1, 1, 1, 1, 1, 0, 0, 0]] * 3
    assert env.get_avail_agent_actions(1) == avail[1]
    assert env.get_obs_agent(2).shape == (30,)
    reward, terminated, step_info = env.step([1, 1, 1])
    assert isinstance(reward, float) and isinstance(terminated, bool)
    assert set(step_info) == {"battle_won", "dead_allies", "dead_enemies"}
    assert isinstance(step_info["battle_won"], bool) and isinstance(step_info["dead_allies"], int)
    with pytest.raises(AssertionError, match="cannot perform action 0"):
        env.step([0, 1, 1])
    assert env.get_stats()["win_rate"] == 0.0


def test_smac_view_stats_after_episodes() -> None:
    env = BattleSMACEnv("3m", seed=1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        env.reset()
        terminated = False
        while not terminated:
            avail = torch.tensor(env.get_avail_actions(), dtype=torch.float32)
            actions = torch.multinomial(avail, 1, generator=gen).flatten().tolist()
            _, terminated, _ = env.step(actions)
    stats = env.get_stats()
    assert set(stats) == {
        "battles_won",
        "battles_game",
        "battles_draw",
        "win_rate",
        "timeouts",
        "restarts",
    }
    assert stats["battles_game"] == 3
    assert stats["win_rate"] == stats["battles_won"] / 3


@pytest.mark.parametrize(
    "map_name", ["1c3s5z", "MMM2", "bane_vs_bane", "2c_vs_64zg", "2s_vs_1sc", "terran_5_vs_5"]
)
@pytest.mark.parametrize("kernel", KERNELS)
def test_skipping_idle_work_changes_nothing(
    map_name: str, kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the CPU the simulator skips work nobody needs this loop (no shot, no splash,
    # nobody to route or to acquire); an accelerator always does it. Forcing the
    # always-do-it path on the CPU must give the same trajectory bit for bit (with the
    # torch collision pass's check that any pair overlaps).
    from marl.envs.battle import terrain

    use_kernel(kernel, monkeypatch)
    shortcut = play(BattleEnv(map_name, batch_size=3, seed=4), 25, seed=2)
    monkeypatch.setattr(terrain, "busy", lambda mask: True)
    monkeypatch.setattr(terrain, "busy_above", lambda values, floor: True)
    full = play(BattleEnv(map_name, batch_size=3, seed=4), 25, seed=2)
    for x, y in zip(shortcut, full, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("map_name", "kernel"), [("3s5z", "native"), ("MMM", "native"), ("3s5z", "torch")]
)
def test_compiled_game_loop_plays_the_same_episodes(
    map_name: str, kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """env.compile=true, one compiled call per game loop: the same observations and
    rewards as eager, to float rounding (about 6 s of compiling per map; Inductor fuses
    the loop's elementwise work; with torch ops it sums the collision pushes in its own
    order: 1e-3 after 40 steps). The C kernel is an op inside the compiled loop."""
    use_kernel(kernel, monkeypatch)
    monkeypatch.setattr(battle_env, "WHOLE_STEP_MAX_COPIES", 0)
    eager = play(BattleEnv(map_name, batch_size=3, seed=4), 40, seed=2)
    compiled = play(BattleEnv(map_name, batch_size=3, seed=4, compile=True), 40, seed=2)
    for x, y in zip(eager, compiled, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_compiled_whole_step_plays_the_same_game() -> None:
    """Up to WHOLE_STEP_MAX_COPIES copies env.compile makes all game loops of a step one
    call (about a minute of compiling). Fused across loops it rounds positions
    differently from the first step (about 2e-6), and a unit reaching its range a loop
    earlier then changes the game after a few steps: compared while that has not
    happened."""
    eager = play(BattleEnv("3m", batch_size=3, seed=4), 5, seed=2)
    env = BattleEnv("3m", batch_size=3, seed=4, compile=True)
    assert env._whole_step is not None
    for x, y in zip(eager, play(env, 5, seed=2), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-4)


def test_compiled_random_streams_draw_the_same_bits() -> None:
    """env.compile fuses the per-copy hashing; integer arithmetic, so the same numbers."""
    eager, fused = (CopyRNG(7, 64, torch.device("cpu"), compile=c) for c in (False, True))
    advance = torch.arange(64) % 3 == 0  # (B,)
    for k in (12, 48, 1, 12):
        assert torch.equal(eager.uniform(k, advance), fused.uniform(k, advance)), k
    assert torch.equal(eager.counter, fused.counter)
