"""marl.results and scripts/plot.py on synthetic run folders with hand-computed statistics."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from marl.results import (
    Run,
    aggregate_curve,
    bootstrap_ci,
    discover_runs,
    group_runs,
    load_runs,
    main,
    plain_names,
    summarize,
    to_marl_eval,
)

ROOT = Path(__file__).resolve().parents[1]
STEPS = [0, 100, 200, 300]
SEEDS = [1, 2, 3]


def qmix_returns(seed: int) -> list[float]:
    """Seed k: k, 2k, 5k, 3k -> final 3k, best 5k."""
    return [seed, 2 * seed, 5 * seed, 3 * seed]


def qmix_wins(seed: int) -> list[float]:
    return [0.0, 0.1 * seed, 0.2 * seed, 0.1 * seed]


VDN_RETURNS = [1.0, 2.0, 3.0, 4.0]
"""The same for every seed: the CI is a point."""
VDN_WINS = [0.0, 0.5, 0.5, 1.0]


def write_run(
    folder: Path,
    algo: str,
    game: str,
    seed: int,
    returns: list[float],
    wins: list[float] | None,
    config: bool = True,
    steps: list[int] = STEPS,
    settings: str = "",
) -> Path:
    """A run folder as marl-train leaves it: metrics.jsonl (test rows at ``steps``, each
    followed by train and learner rows), config.yaml (plus the YAML ``settings``) and
    .hydra/."""
    folder.mkdir(parents=True)
    (folder / ".hydra").mkdir()
    lines = []
    for i, t in enumerate(steps):
        test = {"t_env": t, "test/return_mean": returns[i], "test/ep_length_mean": 2.0}
        if wins is not None:
            test["test/battle_won_mean"] = wins[i]
        lines.append(test)
        lines.append({"t_env": t + 50, "train/return_mean": 99.0, "learner/loss": 0.5})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if config:
        (folder / "config.yaml").write_text(
            f"seed: {seed}\nt_max: 300\nalgo:\n  name: {algo}\n"
            f"env:\n  _target_: marl.envs.matrix.MatrixEnv\n  game: {game}\n  rounds: 1\n"
            + settings
        )
    return folder


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """qmix and vdn x seeds 1-3 on matrix/two_step (a sweep folder and single-run folders),
    plus one qmix run on matrix/climbing without a win rate."""
    root = tmp_path / "outputs"
    for job, seed in enumerate(SEEDS):
        sweep_dir = root / "multirun" / "2026-01-01" / "12-00-00"
        name = f"{job}_qmix_matrix_two_step_seed{seed}"
        write_run(sweep_dir / name, "qmix", "two_step", seed, qmix_returns(seed), qmix_wins(seed))
        single = root / "vdn" / "matrix_two_step" / f"seed{seed}" / "2026-01-01_12-00-00"
        write_run(single, "vdn", "two_step", seed, VDN_RETURNS, VDN_WINS)
    climbing = root / "qmix" / "matrix_climbing" / "seed7" / "2026-01-02_12-00-00"
    write_run(climbing, "qmix", "climbing", 7, [5.0, 6.0, 11.0, 7.0], None)
    return root


def test_discovery_and_grouping(sweep: Path) -> None:
    assert len(discover_runs([sweep])) == 7
    # A run folder given directly, and twice, is found once.
    one = next((sweep / "vdn").rglob("metrics.jsonl")).parent
    assert discover_runs([one, one]) == [one.resolve()]
    groups = group_runs(load_runs([sweep]))
    assert list(groups) == [
        ("matrix", "climbing", "qmix"),
        ("matrix", "two_step", "qmix"),
        ("matrix", "two_step", "vdn"),
    ]
    assert [r.seed for r in groups["matrix", "two_step", "qmix"]] == SEEDS
    assert [r.seed for r in groups["matrix", "climbing", "qmix"]] == [7]


def test_names_from_folders_without_config(tmp_path: Path) -> None:
    single = tmp_path / "iql" / "matrix_two_step" / "seed4" / "2026-01-01_00-00-00"
    job = tmp_path / "multirun" / "d" / "t" / "3_vdn_matrix_penalty_seed5"
    write_run(single, "x", "x", 0, VDN_RETURNS, None, config=False)
    write_run(job, "x", "x", 0, VDN_RETURNS, None, config=False)
    runs = {r.algo: r for r in load_runs([tmp_path])}
    assert (runs["iql"].env, runs["iql"].task, runs["iql"].seed) == ("matrix", "two_step", 4)
    assert (runs["vdn"].env, runs["vdn"].task, runs["vdn"].seed) == ("matrix", "penalty", 5)


def test_mean_curve_is_the_mean_of_the_seeds(sweep: Path) -> None:
    groups = group_runs(load_runs([sweep]))
    curve = aggregate_curve(groups["matrix", "two_step", "qmix"], "test/return_mean")
    assert curve is not None
    np.testing.assert_array_equal(curve.steps, STEPS)
    expected = np.mean([qmix_returns(s) for s in SEEDS], axis=0)  # 2, 4, 10, 6
    np.testing.assert_allclose(curve.mean, expected)
    assert np.all(curve.ci_low <= curve.mean) and np.all(curve.mean <= curve.ci_high)
    assert np.all(curve.ci_high - curve.ci_low > 0)
    assert curve.n_runs == 3 and np.all(curve.n_seeds == 3)

    vdn = aggregate_curve(groups["matrix", "two_step", "vdn"], "test/return_mean")
    assert vdn is not None
    np.testing.assert_array_equal(vdn.mean, VDN_RETURNS)
    np.testing.assert_array_equal(vdn.ci_low, VDN_RETURNS)
    np.testing.assert_array_equal(vdn.ci_high, VDN_RETURNS)


def make_run(steps: list[int], values: list[float], seed: int) -> Run:
    rows = [{"t_env": float(t), "m": v} for t, v in zip(steps, values, strict=True)]
    return Run(Path(f"r{seed}"), "env", "task", "algo", seed, rows)


def test_grid_interpolates_within_each_run_and_never_extrapolates() -> None:
    a = make_run([0, 100, 200], [0.0, 10.0, 20.0], 1)
    b = make_run([0, 50, 150], [0.0, 7.0, 17.0], 2)
    both = aggregate_curve([a, b], "m")
    assert both is not None
    np.testing.assert_array_equal(both.steps, [0, 50, 100, 150])  # ends with the shorter run
    # a at 50 and 150: 5, 15; b at 100: 12 (linear between 7 at 50 and 17 at 150).
    np.testing.assert_allclose(both.mean, [0.0, 6.0, 11.0, 16.0])
    partial = aggregate_curve([a, b], "m", require_all=False)
    assert partial is not None
    np.testing.assert_array_equal(partial.steps, [0, 50, 100, 150, 200])
    assert partial.mean[-1] == 20.0 and partial.n_seeds.tolist() == [2, 2, 2, 2, 1]
    assert partial.ci_low[-1] == partial.ci_high[-1] == 20.0
    many = aggregate_curve([a, b], "m", max_points=3)
    assert many is not None
    np.testing.assert_array_equal(many.steps, [0, 75, 150])
    assert aggregate_curve([a], "missing") is None


def test_bootstrap_ci() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(3.0, 2.0, size=400)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert bootstrap_ci(values) == (low, high)  # fixed seed: reproducible
    assert bootstrap_ci([2.5, 2.5, 2.5]) == (2.5, 2.5)
    assert bootstrap_ci([4.0]) == (4.0, 4.0)


def test_cli_writes_figures_tables_and_marl_eval(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    argv = [str(sweep), "--metric", "test/return_mean", "--metric", "test/battle_won_mean"]
    assert main([*argv, "--out", str(out)]) == 0
    for stem in ("test_return_mean", "test_battle_won_mean"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (out / f"{stem}.svg").read_text()

    with (out / "summary.csv").open() as f:
        rows = {(r["task"], r["algo"]): r for r in csv.DictReader(f)}
    qmix, vdn = rows["two_step", "qmix"], rows["two_step", "vdn"]
    assert qmix["n_seeds"] == "3" and qmix["env"] == "matrix"
    assert float(qmix["return_final_mean"]) == pytest.approx(6.0)  # mean of 3, 6, 9
    assert float(qmix["return_best_mean"]) == pytest.approx(10.0)  # mean of 5, 10, 15
    assert float(qmix["return_final_ci_low"]) < 6.0 < float(qmix["return_final_ci_high"])
    assert float(qmix["win_rate_final_mean"]) == pytest.approx(0.2)  # mean of .1, .2, .3
    assert float(qmix["win_rate_best_mean"]) == pytest.approx(0.4)  # mean of .2, .4, .6
    assert float(vdn["return_final_mean"]) == float(vdn["return_final_ci_low"]) == 4.0
    assert float(vdn["return_best_ci_high"]) == 4.0 and float(vdn["win_rate_best_mean"]) == 1.0
    climbing = rows["climbing", "qmix"]
    assert climbing["n_seeds"] == "1" and float(climbing["return_best_mean"]) == 11.0
    assert climbing["win_rate_final_mean"] == ""

    md = (out / "summary.md").read_text().splitlines()
    header = "| env | task | algo | seeds | return final | return best | win_rate final |"
    assert md[2] == header + " win_rate best |"
    vdn_line = next(line for line in md if "| vdn |" in line)
    four, one = "4.000 [4.000, 4.000]", "1.000 [1.000, 1.000]"
    assert vdn_line == f"| matrix | two_step | vdn | 3 | {four} | {four} | {one} | {one} |"
    qmix_line = next(line for line in md if "| two_step | qmix |" in line)
    assert (
        "| 6.000 [" in qmix_line
        and "| 10.00 [5.00, 15.00] |" in qmix_line
        and "| 0.200 [" in qmix_line
    )
    climbing_line = next(line for line in md if "climbing" in line)
    assert climbing_line.endswith("| 7.000 [7.000, 7.000] | 11.00 [11.00, 11.00] | – | – |")

    data = json.loads((out / "marl_eval.json").read_text())
    # The climbing run has no win rate (marl-eval needs one metric set per env) and
    # another seed (runs are named by position when an env has no common seed set).
    run = data["matrix"]["two_step"]["qmix"]["run_1"]  # seed 2
    assert list(run) == ["step_1", "step_2", "step_3", "step_4", "absolute_metrics"]
    assert run["step_3"] == {"step_count": 200, "return": [10.0]}
    assert run["absolute_metrics"] == {"return": [6.0]}
    assert list(data["matrix"]["two_step"]["vdn"]) == ["run_0", "run_1", "run_2"]
    assert list(data["matrix"]["climbing"]["qmix"]) == ["run_0"]


def test_marl_eval_layout(sweep: Path) -> None:
    groups = group_runs(load_runs([sweep]))
    two_step = {k: v for k, v in groups.items() if k[1] == "two_step"}
    metrics = ["test/return_mean", "test/battle_won_mean"]
    data, warnings = to_marl_eval(two_step, metrics)
    assert warnings == []
    assert set(data) == {"matrix"} and set(data["matrix"]) == {"two_step"}
    assert set(data["matrix"]["two_step"]) == {"qmix", "vdn"}
    run = data["matrix"]["two_step"]["qmix"]["run_3"]
    assert run["step_1"] == {"step_count": 0, "return": [3.0], "win_rate": [0.0]}
    assert run["absolute_metrics"] == {"return": [9.0], "win_rate": [pytest.approx(0.3)]}
    best, _ = to_marl_eval(two_step, metrics, absolute="best")
    assert best["matrix"]["two_step"]["qmix"]["run_3"]["absolute_metrics"]["return"] == [15.0]
    json.dumps(data)  # plain JSON types only

    data, warnings = to_marl_eval(groups, metrics)
    assert any("left out test/battle_won_mean" in w for w in warnings)
    assert any("same algorithms" in w for w in warnings)


def test_plain_names_and_summary_without_metric(sweep: Path) -> None:
    assert plain_names(["test/return_mean", "test/battle_won_mean", "train/return_mean"]) == {
        "test/return_mean": "return",
        "test/battle_won_mean": "win_rate",
        "train/return_mean": "train_return",
    }
    rows = summarize(group_runs(load_runs([sweep])), ["test/battle_won_mean"])
    assert [r.stats == {} for r in rows] == [True, False, False]


def test_default_metrics(sweep: Path, tmp_path: Path) -> None:
    assert main([str(sweep), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "test_battle_won_mean.svg").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{tmp}/nowhere"], "nowhere does not exist."),
        (["{tmp}/empty"], "no run folders (folders holding metrics.jsonl) were found"),
        (["{sweep}", "--metric", "test/nope"], "no run logs the metric 'test/nope'"),
    ],
)
def test_errors_exit_non_zero_with_one_sentence(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    argv = [a.format(tmp=tmp_path, sweep=sweep) for a in argv]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.startswith("marl-plot: error: ") and err.count("\n") == 1


def test_script_exits_non_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plot.py"), str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"marl-plot: error: {tmp_path / 'missing'} does not exist."


# ---------------------------------------------------- which runs count, what is dropped


def plot(argv: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``marl-plot argv --out out``: its exit status and its stderr."""
    status = main([*argv, "--out", str(out)])
    return status, capsys.readouterr().err


def summary_rows(out: Path) -> dict[str, dict[str, str]]:
    """summary.csv's rows by algo."""
    with (out / "summary.csv").open() as f:
        return {row["algo"]: row for row in csv.DictReader(f)}


def test_reruns_of_one_seed_count_as_one_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """outputs/ after marl-train ran seed 1 three times (once resumed in a ``_1`` sibling),
    seed 2 once, and evaluated a seed-1 checkpoint: 2 seeds, not 5 run folders."""
    seeds = tmp_path / "outputs" / "qmix" / "matrix_two_step"
    write_run(seeds / "seed1" / "2026-01-01_10-00-00", "qmix", "two_step", 1, [1.0] * 4, None)
    longest = seeds / "seed1" / "2026-01-02_10-00-00"
    write_run(longest, "qmix", "two_step", 1, [1, 2, 3, 4, 5, 7], None, steps=[*STEPS, 400, 500])
    write_run(seeds / "seed1" / "2026-01-01_10-00-00_1", "qmix", "two_step", 1, [2.0] * 4, None)
    write_run(seeds / "seed2" / "2026-01-01_10-00-00", "qmix", "two_step", 2, qmix_returns(2), None)
    evaluation = seeds / "seed1" / "2026-01-03_10-00-00"
    write_run(evaluation, "qmix", "two_step", 1, [0.0] * 4, None, settings="evaluate: true\n")
    (evaluation / "metrics.jsonl").write_text('{"t_env": 500, "eval/return_mean": 8.0}\n')
    (evaluation / "eval.json").write_text('{"return_mean": 8.0}\n')

    out = tmp_path / "results"
    status, err = plot([str(tmp_path / "outputs"), "--metric", "test/return_mean"], out, capsys)
    assert status == 0
    qmix = summary_rows(out)["qmix"]
    assert qmix["n_seeds"] == "2"
    assert float(qmix["return_final_mean"]) == pytest.approx(6.5)  # mean of 7 (longest), 6
    assert (
        "qmix on matrix/two_step: seed 1 has 3 run folders; "
        f"using the longest, {longest.resolve()}, and setting 2 aside; "
        "pass one run folder per seed to choose." in err
    )
    assert "set aside 1 evaluate-only run folder (eval.json, " in err
    data = json.loads((out / "marl_eval.json").read_text())
    assert list(data["matrix"]["two_step"]["qmix"]) == ["run_1", "run_2"]


def test_runs_with_other_settings_are_other_lines_not_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A learning-rate sweep of seeds 1 and 2: two lines of 2 seeds each; a setting that
    does not change learning (the device, t_max) splits nothing."""
    for job, (lr, seed) in enumerate([(a, s) for a in ("0.001", "0.0005") for s in (1, 2)]):
        name = tmp_path / "multirun" / f"{job}_qmix_matrix_two_step_seed{seed}"
        settings = f"learner:\n  lr: {lr}\ndevice: {'cuda' if job else 'cpu'}\n"
        write_run(name, "qmix", "two_step", seed, qmix_returns(seed), None, settings=settings)
    out = tmp_path / "results"
    status, err = plot([str(tmp_path), "--metric", "test/return_mean"], out, capsys)
    assert status == 0
    rows = summary_rows(out)
    assert {algo: row["n_seeds"] for algo, row in rows.items()} == {
        "qmix[learner.lr=0.0005]": "2",
        "qmix[learner.lr=0.001]": "2",
    }
    assert "qmix on matrix/two_step: the runs differ in learner.lr besides the seed" in err


def write_disjoint_seeds(root: Path) -> None:
    """qmix on matrix/penalty, seed 1 logging steps 0-100 and seed 2 steps 200-300."""
    for seed, steps in ((1, STEPS[:2]), (2, STEPS[2:])):
        folder = root / "qmix" / "matrix_penalty" / f"seed{seed}" / "2026-01-01_10-00-00"
        write_run(folder, "qmix", "penalty", seed, [1.0, 2.0], None, steps=steps)


def test_a_left_out_panel_is_warned_about(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_disjoint_seeds(sweep)
    argv = [str(sweep), "--metric", "test/return_mean"]
    status, err = plot(argv, tmp_path / "results", capsys)
    assert status == 0
    assert (
        "marl-plot: warning: test/return_mean: left out the panel matrix/penalty: the seeds' "
        "logged steps do not overlap (qmix: seed 1: 0-100, seed 2: 200-300); "
        "pass --allow-partial to plot each step over the seeds that reached it." in err
    )
    status, err = plot([*argv, "--allow-partial"], tmp_path / "partial", capsys)
    assert status == 0 and "left out" not in err


def test_a_cut_curve_and_a_seed_without_the_metric_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seed 2 stopped at step 100 (the curve is cut there); seed 3 logs no win rate."""
    runs = tmp_path / "qmix" / "matrix_two_step"
    write_run(runs / "seed1" / "t", "qmix", "two_step", 1, qmix_returns(1), qmix_wins(1))
    write_run(runs / "seed2" / "t", "qmix", "two_step", 2, [1.0, 2.0], [0.0, 0.1], steps=STEPS[:2])
    write_run(runs / "seed3" / "t", "qmix", "two_step", 3, qmix_returns(3), None)
    status, err = plot([str(tmp_path)], tmp_path / "results", capsys)
    assert status == 0
    assert (
        "test/return_mean: qmix on matrix/two_step is cut to steps 0-100, those every seed "
        "reached (seed 1: 0-300, seed 2: 0-100, seed 3: 0-300); pass --allow-partial" in err
    )
    assert (
        "test/battle_won_mean: qmix on matrix/two_step has none in seed 3; "
        "its curve averages the other 2 seeds." in err
    )


def test_nothing_left_to_plot_is_an_error_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_disjoint_seeds(tmp_path)
    status, err = plot([str(tmp_path)], tmp_path / "results", capsys)
    assert status == 1
    assert err == (
        "marl-plot: error: nothing to plot: in every group the seeds' logged steps of "
        "test/return_mean do not overlap; pass --allow-partial to plot each step over the "
        "seeds that reached it.\n"
    )
    assert not (tmp_path / "results").exists()
