"""The benchmark scripts in scripts/ still run and print what their docs promise (tiny
settings: these are smoke tests, not measurements)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from marl.config import compose_config
from marl.envs.battle.env import BattleEnv

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
CONTEXT = {"marl", "torch", "device", "machine", "load_avg_1m"}


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def json_lines(*args: str) -> list[dict]:
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


BENCH_TRAIN = load_script("bench_train")


@pytest.mark.parametrize("name", sorted(BENCH_TRAIN.CONFIGS))
def test_bench_train_named_configs_compose(name: str) -> None:
    cfg = compose_config([*BENCH_TRAIN.CONFIGS[name], *BENCH_TRAIN.QUIET])
    assert cfg.test_nepisode == 0 and cfg.t_max > 0


def test_bench_train_measures_a_tiny_run() -> None:
    tiny = ["algo=qmix", "env=matrix", "batch_size_run=2", "t_max=60", "batch_size=4"]
    out = BENCH_TRAIN.measure(tiny, n_updates=3)
    assert out["t_env"] >= 60 and out["updates"] > 0
    for key in ("env_steps_per_s", "updates_per_s", "rollout_steps_per_s", "peak_rss_mb"):
        assert out[key] > 0
    assert out["threads"]["acting"] == 1 and out["threads"]["learner"] >= 1
    assert out["device"] == "cpu"


def test_bench_env_prints_one_line_per_map_and_batch() -> None:
    rows = json_lines(
        str(SCRIPTS / "bench_env.py"),
        *("--maps", "3m", "--batch", "1", "2", "--seconds", "0.05", "--repeats", "1"),
    )
    assert [(r["map"], r["batch_size"]) for r in rows] == [("3m", 1), ("3m", 2)]
    assert all(r["env_steps_per_s"] > 0 and set(r) >= CONTEXT for r in rows)


def test_bench_env_autoreset_counts_real_steps_of_copies_that_restart() -> None:
    (row,) = json_lines(
        str(SCRIPTS / "bench_env.py"),
        *("--maps", "3m", "--batch", "4", "--seconds", "0.2", "--repeats", "1"),
        *("--runner", "autoreset"),
    )
    assert row["runner"] == "autoreset"
    assert 0.9 < row["real_fraction"] < 1  # one step sat out per episode of ~20-60 steps
    assert row["env_steps_per_s"] < row["copy_steps_per_s"]


def test_time_to_win_reports_the_first_test_at_the_target() -> None:
    (row,) = json_lines(
        str(SCRIPTS / "time_to_win.py"),
        *("--override", "batch_size_run=2"),  # battle 3m
        *("--metric", "test/return_mean", "--target", "-1000"),
        *("--t-max", "400", "--test-interval", "100"),
    )
    assert row["reached"] is not None and row["reached"]["test/return_mean"] >= -1000
    # the first test reaches it, and training stops there instead of running to t_max
    assert row["tests"] == [[row["reached"]["t_env"], round(row["reached"]["test/return_mean"], 4)]]
    assert row["best"] == row["tests"][0] and row["train_wall_s"] >= row["reached"]["wall_s"]
    assert set(row) >= CONTEXT


TIME_TO_WIN = load_script("time_to_win")
BENCH_LEARNING = load_script("bench_learning")


@pytest.mark.parametrize("name", list(BENCH_LEARNING.ROWS))
def test_bench_learning_rows_compose_to_their_algo_and_env(name: str) -> None:
    row = BENCH_LEARNING.ROWS[name]
    cfg = compose_config(TIME_TO_WIN.train_overrides(row.experiment, list(row.overrides)))
    assert cfg.algo.name == row.algo
    if row.env.startswith("battle"):
        assert (cfg.env.map_name, row.metric) == (row.env.split()[1], "test/battle_won_mean")
    elif row.env.startswith("vmas"):  # "vmas balance": BenchMARL's task settings
        assert (cfg.env.scenario, row.metric) == (row.env.split()[1], "test/return_mean")
        assert cfg.env.kwargs.n_agents == {"balance": 4, "navigation": 3}[cfg.env.scenario]
    else:  # "lbf 8x8-2p-2f"
        assert cfg.env.key == "Foraging-8x8-2p-2f-v3" and row.metric == "test/return_mean"


def test_bench_learning_tabulates_the_last_run_of_each_row_and_seed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    context = {"machine": "cpu", "load_avg_1m": 2.0, "metric": "test/battle_won_mean"}
    results = iter(
        [  # run in --rows' order: ippo_battle_3m never reaches the target, mappo does
            {"reached": None, "best": [40_000, 0.5], "train_wall_s": 99.0},
            {"reached": {"t_env": 50_310, "wall_s": 31.2}, "best": [50_310, 1.0]},
        ]
    )

    def fake(name: str, row: object, seed: int) -> dict:
        labels = {"row": name, "algo": name[:5], "env": "battle 3m", "settings": "algo=x"}
        return {**labels, "seed": seed, "t_max": 1000, "target": 0.9, **context, **next(results)}

    monkeypatch.setattr(BENCH_LEARNING, "run_row", fake)
    runs, out = tmp_path / "runs.jsonl", tmp_path / "table.md"
    stale = {"row": "mappo_battle_3m", "seed": 1, "reached": None}  # replaced by the new run
    runs.write_text(json.dumps(stale) + "\n")
    argv = ["--rows", "ippo_battle_3m", "mappo_battle_3m", "--runs", str(runs), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["bench_learning.py", *argv])
    BENCH_LEARNING.main()
    assert len(runs.read_text().splitlines()) == 3  # appended, never rewritten
    mappo, ippo = out.read_text().splitlines()[-2:]  # in ROWS' order
    assert mappo.split(" | ")[4:7] == ["50,310", "31", "1.00 (50,310)"]
    assert ippo.split(" | ")[4:7] == ["not within 1,000", "(99 in all)", "0.50 (40,000)"]


def test_bench_threads_alternates_settings_and_compares_the_default_with_the_best(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_script("bench_threads")
    calls: list[tuple[str, ...]] = []
    rates = {(): 90.0, ("learner_threads=1",): 100.0, ("learner_threads=2",): 80.0}

    def fake(name: str, updates: int, overrides: list[str]) -> dict:
        calls.append(tuple(overrides))
        return {"env_steps_per_s": rates[tuple(overrides)]}

    monkeypatch.setattr(bench, "measure_in_subprocess", fake)
    monkeypatch.setattr(bench, "start_load", lambda n: [])
    monkeypatch.setattr(sys, "argv", ["bench_threads.py", "--rounds", "2", "--conditions", "busy"])
    bench.main()
    assert calls == [(), ("learner_threads=1",), ("learner_threads=2",)] * 2  # A B C A B C
    (line,) = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert line["best_explicit"] == "learner_threads=1" and line["default_vs_best"] == 0.9
    assert line["condition"] == "busy" and set(line) >= CONTEXT


BATTLE_FIDELITY = load_script("battle_fidelity")


def test_battle_fidelity_reports_crowding_and_the_scripted_policy_on_3m() -> None:
    env = BattleEnv("3m", batch_size=2, seed=0)
    crowd = BATTLE_FIDELITY.crowding(env, max_steps=3)
    assert crowd["measure"] == "crowding" and crowd["copies"] == 2
    assert crowd["max_in_reach"] == 0  # marines shoot from range: none in melee reach
    assert (crowd["ring_capacity"], crowd["ring_capacity_at_reach"]) == (6, 7)  # equal radii
    row = BATTLE_FIDELITY.scripted(env, episodes=3, max_steps=4)
    assert row["episodes"] == 4 and row["unfinished"] == 4  # two batches of 2, cut at 4 steps
    assert row["mean_length"] == 4 and 0 <= row["mean_dead_enemies"] <= 3
    assert {"win_rate", "wins", "distinct_episodes"} <= set(row)


def test_battle_fidelity_counts_living_enemies_in_melee_reach_of_each_ally() -> None:
    env = BattleEnv("8m", batch_size=2, seed=0)  # marines: radius 0.375, reach 0.9 centre to centre
    ring = [(0.8, 0.0), (0.0, 0.8), (-0.8, 0.0), (0.0, -0.8)]  # 4 enemies round ally 0
    allies = [(16.0, 16.0)] + [(3.0, 9.0 + 2 * i) for i in range(7)]  # the others far away
    enemies = [(16.0 + dx, 16.0 + dy) for dx, dy in ring] + [(29.0, 9.0 + 2 * i) for i in range(4)]
    env.set_unit_state(pos=torch.tensor(allies + enemies))  # (U, 2)
    counts = BATTLE_FIDELITY.enemies_in_reach(env)  # (B, N)
    assert counts[:, 0].tolist() == [4, 4] and counts[:, 1:].sum() == 0
    health = env.units.health.clone()  # (B, U)
    health[:, 8] = 0  # one of the 4 dies
    env.set_unit_state(health=health)
    assert BATTLE_FIDELITY.enemies_in_reach(env)[:, 0].tolist() == [3, 3]


def test_bench_peers_runs_marls_battle_side_as_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPTS))  # it imports its sibling scripts
    peers = importlib.import_module("bench_peers")
    row = peers.ROWS["smax_3m_64"]
    fast = peers.marl_env_command(row, 64, 5.0, 1, "autoreset", True)
    assert fast[fast.index("--runner") + 1] == "autoreset" and "--compile" in fast
    plain = peers.marl_env_command(row, 64, 5.0, 1, "episode", False)
    assert plain[plain.index("--runner") + 1] == "episode" and "--compile" not in plain
    assert set(peers.MARL_COUNTS) == {"episode", "autoreset"}


def test_compute_floor_counts_benchmarls_matrix_products(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    floor = load_script("bench_compute_floor")
    actor = floor.Pass(floor.ACTOR, rows=512, backward=True, times=1)
    # forward 3, weight gradients 3, input gradients 2 (none into the observations)
    assert len(floor.products(actor)) == 8
    assert floor.products(actor._replace(backward=False)) == [
        (512, 16, 256),
        (512, 256, 256),
        (512, 256, 9),
    ]
    # a QMIX update: 16 -> 256 -> 256 -> 9 forward and backward on 512 rows (216.8 MFLOP)
    # and forward on 512 target rows (73.7 MFLOP), 1,000 times per 6,000 frames
    saved = tmp_path / "side_by_side.jsonl"
    saved.write_text(json.dumps({"row": "qmix_b60_exact", "benchmarl": {"frames_per_s": 600}}))
    monkeypatch.setattr(floor, "SIDE_BY_SIDE", saved)
    line = floor.floor_row("qmix_b60_exact", threads=1, repeats=1)
    assert line["matmul_gflop_per_iteration"] == 290.5
    assert line["benchmarl_s_per_iteration"] == 10.0
    assert line["best_ratio"] == pytest.approx(10.0 / line["floor_s_per_iteration"], rel=0.01)
    assert line["bare_s_per_iteration"] > line["floor_s_per_iteration"] * 0.5  # same products
    assert set(line) >= CONTEXT
