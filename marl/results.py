"""Results of finished (or running) runs: curves, a summary table and a marl-eval export.

Reads only the run folders' ``metrics.jsonl`` and ``config.yaml`` (never W&B)::

    marl-plot outputs/multirun/2026-11-24 --metric test/return_mean --out results/
    python scripts/plot.py outputs/qmix outputs/vdn --metric test/battle_won_mean

- **Discovery**: every folder under the given paths that holds a ``metrics.jsonl``
  is a run. Runs are grouped by (env, task, algo): the env is named by the module
  (``marl.envs.<env>.*``) or class of ``env._target_``, the task by the first of
  ``marl.envs.base.TASK_KEYS`` the env config sets (``map_name``, ``game``, ...), the
  algo by ``algo.name``, the seed by ``seed``. Without a ``config.yaml`` these come
  from ``.hydra/config.yaml`` or, failing that, from the folder names Hydra makes
  (``<algo>/<env>_<task>/seed<k>/<time>`` or ``<n>_<algo>_<env>_<task>_seed<k>``).
- **Selection** (each step warns on stderr about what it sets aside, so a folder of many
  runs, such as ``outputs/``, gives honest seed counts):

  - A run that logs none of the plotted metrics is set aside: an evaluate-only run
    (``eval.json``; its rows hold ``eval/...`` keys) or one stopped before its first test.
  - Runs of a group whose settings differ besides the seed (``learner.lr``, the env's
    options, ...) are different experiments, not seeds: each setting becomes its own
    line, named ``<algo>[<key>=<value>]``. Only settings that every run of the group
    records are compared (a key added by a later version of marl splits nothing), and
    those that do not change what a run learns are ignored (``IGNORED_SETTINGS``: the
    seed, ``t_max``, intervals, checkpoints, devices, threads, loggers).
  - Runs with the same seed are reruns of ONE seed (``marl-train`` run twice, or
    ``resume=never``'s ``<dir>_1``): the one that reached the most env steps is kept,
    ties to the newest ``metrics.jsonl``. Pass one run folder per seed to choose another.
    Runs without a known seed each count as a seed.
- **Curves**: a run's curve of a metric is its rows that hold the metric. The seeds
  of a group are put on a common grid, the union of their logged steps (evenly spaced
  points instead when that union is longer than ``max_points``), by **linear
  interpolation inside each run's own range, never extrapolated past its first or last
  step**. By default the grid covers only the steps every seed reached, so a curve
  ends where its shortest seed ends; ``require_all=False`` (``--allow-partial``) keeps
  later points, averaged over the seeds that reached them. A warning names every curve
  cut by more than ``CUT_TOLERANCE`` of its seeds' range, every group left out because its
  seeds' steps do not overlap (and the panel, when that empties it), and every seed that
  does not log a metric its group plots; when nothing at all is left to plot, marl-plot
  exits with an error. A group that never logs a metric simply has no line for it.
- **Statistics**: the mean across seeds and a 95% percentile bootstrap confidence
  interval of that mean (seeds resampled with replacement, ``n_boot`` resamples from a
  ``numpy`` Generator with a fixed seed, so figures are reproducible). The summary
  gives, per metric, the *final* value (each seed's last logged value) and the *best*
  (each seed's maximum), each as mean [CI] across seeds.
- **marl-eval**: ``marl_eval.json`` follows the raw-data layout in the README of
  InstaDeep's marl-eval (github.com/instadeepai/marl-eval, "Data Structure for Raw
  Experiment data")::

      {env: {task: {algo: {"run_<seed>": {
          "step_1": {"step_count": <t_env>, "return": [<value>], "win_rate": [<value>]},
          ...,
          "step_k": {...},
          "absolute_metrics": {"return": [<value>], "win_rate": [<value>]}}}}}}

  Its tools need the same number of runs and of steps everywhere in an env and look
  runs up by name across algorithms, so each run's logged evaluations are cut to the
  shortest run of its env (a warning says so) and runs are named ``run_<i>`` instead
  of ``run_<seed>`` when the algorithms of an env do not share one set of seeds.
  Values are one-element lists (``metrics.jsonl`` holds each evaluation's mean).
  There is no separate absolute evaluation: ``absolute_metrics`` holds the final
  (default) or best value of the kept evaluations. Names are lower case, as marl-eval
  looks them up; load with ``data_process_pipeline(raw, metrics_to_normalize=["return"])``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from marl.envs.base import TASK_KEYS
from marl.errors import UsageError

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"
DEFAULT_METRICS = ("test/return_mean", "test/battle_won_mean")
"""Plotted when no ``--metric`` is given; the win rate only where some run logs it."""
PLAIN_NAMES = {"test/return_mean": "return", "test/battle_won_mean": "win_rate"}
"""Metric keys -> the plain names used in tables and the marl-eval export."""
LABELS = {"test/return_mean": "test return", "test/battle_won_mean": "test win rate"}
"""Metric keys -> axis labels; other metrics are labelled with their key."""

EVAL_FILE = "eval.json"
"""Written by an evaluate-only run (``evaluate=true``)."""
IGNORED_SETTINGS = (
    "seed",
    "t_max",
    "test_interval",
    "log_interval",
    "learner_log_interval",
    "save_model",
    "save_model_interval",
    "checkpoint",
    "checkpoint_path",
    "load_step",
    "resume",
    "evaluate",
    "save_replay",
    "device",
    "torch_threads",
    "learner_threads",
    "buffer_device",
    "logger",
    "hydra",
    "learner.compile",
    "runner.sync_every",
    "env.workers",
)
"""Settings (and the keys under them) that do not change what a run learns, only how long
it runs, what it records and how fast: runs differing only in these are one experiment."""
CUT_TOLERANCE = 0.05
"""A curve cut to the steps every seed reached is warned about when it loses more than
this share of its seeds' step range; seeds that end a few env steps apart (episodes of
different lengths) lose less."""

GroupKey = tuple[str, str, str]
"""(env, task, algo); the algo carries ``[<key>=<value>]`` where settings split a group."""
Panels = dict[tuple[str, str], dict[str, "Curve"]]
"""(env, task) -> algo -> the algo's curve in that panel."""


# --------------------------------------------------------------------------- loading


@dataclass
class Run:
    """One run folder: where it is, what it ran, and its logged rows."""

    path: Path
    env: str
    task: str
    algo: str
    seed: int | None
    rows: list[dict[str, float]] = field(repr=False)
    """``metrics.jsonl`` rows in file order; each has ``t_env`` and numeric metrics."""
    settings: dict[str, str] = field(default_factory=dict, repr=False)
    """The config flattened to ``dotted.key -> value``, less ``IGNORED_SETTINGS``."""
    evaluate_only: bool = False
    """An ``evaluate=true`` (or ``save_replay=true``) run: one evaluation of a checkpoint,
    no training curve."""
    written_ns: int = 0
    """When ``metrics.jsonl`` was last written (ns since the epoch): "newest" among reruns."""

    @property
    def key(self) -> GroupKey:
        return (self.env, self.task, self.algo)

    @property
    def last_step(self) -> float:
        """The most env steps this run logged."""
        return max((row["t_env"] for row in self.rows), default=0.0)

    def has(self, metric: str) -> bool:
        """Whether any row logs ``metric``."""
        return any(metric in row for row in self.rows)

    def curve(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of the rows holding ``metric``, by step; a repeated step keeps
        its last value."""
        points: dict[int, float] = {}
        for row in self.rows:
            if metric in row:
                points[int(row["t_env"])] = row[metric]
        steps = np.array(sorted(points), dtype=np.int64)
        return steps, np.array([points[s] for s in steps.tolist()], dtype=np.float64)


def discover_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Every folder under ``paths`` (each a run or a folder of runs) with a ``metrics.jsonl``."""
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"{path} does not exist.")
        if path.is_file():
            if path.name != METRICS_FILE:
                raise UsageError(f"{path} is a file; give run or sweep folders (or metrics.jsonl).")
            found.add(path.parent.resolve())
            continue
        for folder, _dirs, files in os.walk(path):
            if METRICS_FILE in files:
                found.add(Path(folder).resolve())
    if not found:
        names = ", ".join(str(p) for p in paths)
        raise UsageError(f"no run folders (folders holding {METRICS_FILE}) were found in {names}.")
    return sorted(found)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a ``metrics.jsonl``; non-numeric or non-finite values are left out and a cut
    last line (a run still writing) is skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rows: list[dict[str, float]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise UsageError(f"{path}:{number} is not a JSON object.") from None
        if not isinstance(record, dict) or "t_env" not in record:
            raise UsageError(f"{path}:{number} has no t_env.")
        row = {
            key: float(value)
            for key, value in record.items()
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        }
        if "t_env" in row:
            rows.append(row)
    return rows


def env_name(target: str) -> str:
    """``marl.envs.matrix.MatrixEnv`` -> ``matrix``; ``pkg.StarCraft2Env`` -> ``starcraft2``."""
    parts = target.split(".")
    if len(parts) >= 3 and parts[:2] == ["marl", "envs"]:
        return parts[2]
    name = parts[-1].lower()
    if name.endswith("env") and len(name) > 3:
        name = name[:-3]
    return name


def _load_yaml(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def _plain(value: Any) -> str | None:
    """A config value usable as a name: set, and not an unresolved interpolation."""
    if value is None or value == "" or (isinstance(value, str) and "${" in value):
        return None
    return str(value)


SWEEP_JOB = re.compile(r"^\d+_(?P<algo>[^_]+)_(?P<tag>.+)_seed(?P<seed>\d+)$")
SEED_DIR = re.compile(r"^seed(?P<seed>\d+)$")


def _names_from_folders(run_dir: Path) -> dict[str, str | None]:
    """What Hydra's folder names say: (algo, env tag, seed); ``None`` where they say nothing."""
    for folder in (run_dir, *run_dir.parents[:3]):
        if match := SWEEP_JOB.match(folder.name):
            return {"algo": match["algo"], "tag": match["tag"], "seed": match["seed"]}
    parts = run_dir.parts
    for i in range(len(parts) - 1, 1, -1):
        if match := SEED_DIR.match(parts[i]):
            return {"algo": parts[i - 2], "tag": parts[i - 1], "seed": match["seed"]}
    return {"algo": None, "tag": None, "seed": None}


def flat_settings(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"learner": {"lr": 0.001}}`` -> ``{"learner.lr": "0.001"}``, less ``IGNORED_SETTINGS``."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if any(name == i or name.startswith(f"{i}.") for i in IGNORED_SETTINGS):
            continue
        if isinstance(value, Mapping) and value:
            flat.update(flat_settings(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value, default=str)
    return flat


def load_run(run_dir: Path) -> Run:
    """Read one run folder (see the module docstring for where each name comes from)."""
    cfg = _load_yaml(run_dir / CONFIG_FILE) or _load_yaml(run_dir / ".hydra" / CONFIG_FILE) or {}
    algo_cfg = cfg["algo"] if isinstance(cfg.get("algo"), dict) else {}
    env_cfg = cfg["env"] if isinstance(cfg.get("env"), dict) else {}
    algo = _plain(algo_cfg.get("name"))
    target = _plain(env_cfg.get("_target_"))
    env = env_name(target) if target else None
    task = next((v for k in TASK_KEYS if (v := _plain(env_cfg.get(k)))), None)
    seed = _plain(cfg.get("seed"))
    if algo is None or env is None or seed is None:
        folders = _names_from_folders(run_dir)
        algo = algo or folders["algo"]
        seed = seed or folders["seed"]
        if env is None and folders["tag"]:
            env, _, tag_task = folders["tag"].partition("_")
            task = task or tag_task or None
    return Run(
        path=run_dir,
        env=env or "unknown",
        task=task or (env or "unknown"),
        algo=algo or "unknown",
        seed=int(seed) if seed is not None and seed.isdigit() else None,
        rows=read_metrics(run_dir / METRICS_FILE),
        settings=flat_settings(cfg),
        evaluate_only=(run_dir / EVAL_FILE).is_file()
        or any(cfg.get(k) is True for k in ("evaluate", "save_replay")),
        written_ns=(run_dir / METRICS_FILE).stat().st_mtime_ns,
    )


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Discover and read every run under ``paths``."""
    return [load_run(p) for p in discover_runs(paths)]


def group_runs(runs: Iterable[Run]) -> dict[GroupKey, list[Run]]:
    """Runs by (env, task, algo), keys sorted, each group's runs by seed then folder: one
    entry per run folder (``select_runs`` makes the groups that are plotted)."""
    groups: dict[GroupKey, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.key, []).append(run)
    return {
        key: sorted(groups[key], key=lambda r: (r.seed is None, r.seed or 0, str(r.path)))
        for key in sorted(groups)
    }


def shown(path: Path) -> str:
    """A path for a message: relative to the working folder when under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def describe(key: GroupKey) -> str:
    """``qmix on battle/3m`` (``qmix on lbf`` where the task is the env)."""
    env, task, algo = key
    return f"{algo} on {env if task == env else f'{env}/{task}'}"


def _n(count: int, noun: str) -> str:
    """``1 seed``, ``2 seeds``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _listed(paths: Sequence[Path], most: int = 3) -> str:
    """Up to ``most`` paths, then how many more."""
    names = ", ".join(shown(p) for p in paths[:most])
    return names + (f" and {len(paths) - most} more" if len(paths) > most else "")


def set_aside_unplotted(runs: Sequence[Run], metrics: Sequence[str]) -> tuple[list[Run], list[str]]:
    """The runs that log some of ``metrics``, and warnings naming those set aside."""
    kept: list[Run] = []
    aside: list[Run] = []
    for run in runs:
        (kept if any(run.has(m) for m in metrics) else aside).append(run)
    names = ", ".join(metrics)
    warnings = []
    if evaluations := [run.path for run in aside if run.evaluate_only]:
        warnings.append(
            f"set aside {_n(len(evaluations), 'evaluate-only run folder')} ({EVAL_FILE}, "
            f"eval/... keys, not {names}): {_listed(evaluations)}."
        )
    if others := [run.path for run in aside if not run.evaluate_only]:
        warnings.append(
            f"set aside {_n(len(others), 'run folder')} logging none of {names} "
            f"(stopped before their first test?): {_listed(others)}."
        )
    return kept, warnings


def split_by_settings(key: GroupKey, runs: Sequence[Run]) -> tuple[dict[GroupKey, list[Run]], str]:
    """A group split where its runs' settings differ (see the module docstring), and a
    warning naming the settings ('' when nothing differs)."""
    shared = set.intersection(*(set(run.settings) for run in runs))
    differing = sorted(k for k in shared if len({run.settings[k] for run in runs}) > 1)
    if not differing:
        return {key: list(runs)}, ""
    env, task, algo = key
    variants: dict[GroupKey, list[Run]] = {}
    for run in runs:
        label = ", ".join(f"{k}={run.settings[k]}" for k in differing)
        variants.setdefault((env, task, f"{algo}[{label}]"), []).append(run)
    warning = (
        f"{describe(key)}: the runs differ in {', '.join(differing)} besides the seed; "
        f"each setting is its own line: {', '.join(k[2] for k in sorted(variants))}."
    )
    return variants, warning


def one_run_per_seed(key: GroupKey, runs: Sequence[Run]) -> tuple[list[Run], str]:
    """One run per seed (the longest, ties to the newest; see the module docstring) and a
    warning naming the seeds that had several ('' when none had)."""
    by_seed: dict[int | None, list[Run]] = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run)
    reruns = {s: same for s, same in by_seed.items() if s is not None and len(same) > 1}
    if not reruns:
        return list(runs), ""
    chosen = {
        s: max(same, key=lambda r: (r.last_step, r.written_ns, str(r.path)))
        for s, same in reruns.items()
    }
    kept = [run for run in runs if run.seed not in reruns or chosen[run.seed] is run]
    counts = [f"seed {s} has {len(same)} run folders" for s, same in reruns.items()]
    aside = len(runs) - len(kept)
    if len(reruns) == 1:
        using = f"using the longest, {shown(next(iter(chosen.values())).path)},"
    else:
        using = (
            "using the longest of each ("
            + "; ".join(f"seed {s}: {shown(run.path)}" for s, run in chosen.items())
            + ")"
        )
    warning = (
        f"{describe(key)}: {' and '.join(counts)}; {using} and setting {aside} aside; "
        "pass one run folder per seed to choose."
    )
    return kept, warning


def select_runs(
    runs: Sequence[Run], metrics: Sequence[str]
) -> tuple[dict[GroupKey, list[Run]], list[str]]:
    """The groups to plot, one run per seed, and warnings about every run set aside or
    group split on the way (see the module docstring)."""
    plotted, warnings = set_aside_unplotted(runs, metrics)
    groups: dict[GroupKey, list[Run]] = {}
    for key, group in group_runs(plotted).items():
        variants, split = split_by_settings(key, group)
        warnings += [split] if split else []
        for variant, variant_runs in variants.items():
            groups[variant], reruns = one_run_per_seed(variant, variant_runs)
            warnings += [reruns] if reruns else []
    return dict(sorted(groups.items())), warnings


def check_metrics(runs: Iterable[Run], metrics: Sequence[str]) -> None:
    """A metric that no run logs is a usage error."""
    runs = list(runs)
    for metric in metrics:
        if not any(run.has(metric) for run in runs):
            raise UsageError(f"no run logs the metric {metric!r}; check the name in metrics.jsonl.")


# ------------------------------------------------------------------------ statistics


def bootstrap_ci(
    values: np.ndarray | Sequence[float],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the mean over axis 0 (seeds); one interval per column.

    The same resampled seeds serve every column (grid point), drawn from
    ``numpy.random.default_rng(seed)``. Columns whose values are all equal (and a single
    seed) get the point interval ``[value, value]``. 1-D input gives 0-d arrays.
    """
    data = np.asarray(values, dtype=np.float64)
    flat = data.reshape(data.shape[0], -1)
    n = flat.shape[0]
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    mean = flat.mean(axis=0)
    low, high = mean.copy(), mean.copy()
    varies = np.ptp(flat, axis=0) > 0
    if n > 1 and varies.any():
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
        boot = counts @ flat[:, varies] / n
        alpha = (1.0 - confidence) / 2.0
        low[varies], high[varies] = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    shape = data.shape[1:]
    return low.reshape(shape), high.reshape(shape)


@dataclass
class Curve:
    """A group's learning curve: mean and CI across seeds at each grid step."""

    steps: np.ndarray
    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    n_seeds: np.ndarray
    """Seeds covering each step (all of them unless ``require_all=False``)."""
    n_runs: int
    """Runs of the group that log the metric."""


def make_grid(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], require_all: bool, max_points: int
) -> np.ndarray:
    """The common grid of some runs' curves (see the module docstring)."""
    firsts = [int(s[0]) for s, _ in curves]
    lasts = [int(s[-1]) for s, _ in curves]
    lo, hi = (max(firsts), min(lasts)) if require_all else (min(firsts), max(lasts))
    if lo > hi:
        return np.array([], dtype=np.float64)
    union = np.unique(np.concatenate([s for s, _ in curves]))
    grid = union[(union >= lo) & (union <= hi)].astype(np.float64)
    if len(grid) > max_points:
        grid = np.linspace(lo, hi, max_points)
    return grid


def aggregate_curve(
    runs: Sequence[Run],
    metric: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    require_all: bool = True,
    max_points: int = 500,
) -> Curve | None:
    """Mean and bootstrap CI of ``metric`` across ``runs`` on their common grid.

    ``None`` when no run logs the metric (or, with ``require_all``, their ranges do not
    overlap). Linear interpolation inside each run's range, no extrapolation.
    """
    curves = [run.curve(metric) for run in runs]
    curves = [(s, v) for s, v in curves if len(s)]
    if not curves:
        return None
    grid = make_grid(curves, require_all, max_points)
    if not len(grid):
        return None
    table = np.full((len(curves), len(grid)), np.nan)
    for i, (steps, values) in enumerate(curves):
        inside = (grid >= steps[0]) & (grid <= steps[-1])
        table[i, inside] = np.interp(grid[inside], steps, values)
    covered = ~np.isnan(table)
    mean = np.full(len(grid), np.nan)
    low, high = mean.copy(), mean.copy()
    # Columns covered by the same seeds are bootstrapped together (same resamples).
    masks, inverse = np.unique(covered, axis=1, return_inverse=True)
    for j in range(masks.shape[1]):
        rows, cols = masks[:, j], np.flatnonzero(inverse.reshape(-1) == j)
        sub = table[np.ix_(rows, cols)]
        mean[cols] = sub.mean(axis=0)
        low[cols], high[cols] = bootstrap_ci(sub, n_boot=n_boot, seed=seed)
    return Curve(grid, mean, low, high, covered.sum(axis=0), len(curves))


@dataclass
class Stat:
    """Mean and CI across seeds of one number per seed."""

    mean: float
    ci_low: float
    ci_high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float], n_boot: int = 2000, seed: int = 0) -> Stat:
        low, high = bootstrap_ci(np.asarray(values, dtype=np.float64), n_boot=n_boot, seed=seed)
        return cls(float(np.mean(values)), float(low), float(high), len(values))


@dataclass
class SummaryRow:
    """One (env, task, algo) line of the summary table."""

    env: str
    task: str
    algo: str
    n_seeds: int
    stats: dict[str, dict[str, Stat]]
    """metric -> {"final": Stat, "best": Stat}; metrics no run of the group logs are absent."""


def summarize(
    groups: Mapping[GroupKey, Sequence[Run]],
    metrics: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> list[SummaryRow]:
    """Final (last logged) and best (max) value of each seed, as mean [CI] across seeds."""
    table = []
    for (env, task, algo), runs in groups.items():
        stats: dict[str, dict[str, Stat]] = {}
        for metric in metrics:
            values = [v for v in (run.curve(metric)[1] for run in runs) if len(v)]
            if values:
                stats[metric] = {
                    "final": Stat.of([v[-1] for v in values], n_boot, seed),
                    "best": Stat.of([v.max() for v in values], n_boot, seed),
                }
        table.append(SummaryRow(env, task, algo, len(runs), stats))
    return table


# --------------------------------------------------------------------------- outputs


def plain_names(metrics: Sequence[str]) -> dict[str, str]:
    """``test/return_mean`` -> ``return``, ``test/battle_won_mean`` -> ``win_rate``,
    ``test/x_mean`` -> ``x``, ``ns/x`` -> ``ns_x``; full keys (``/`` -> ``_``) on a clash."""
    names = {}
    for metric in metrics:
        namespace, _, name = metric.rpartition("/")
        name = name.removesuffix("_mean") or name
        default = name if namespace in ("test", "") else f"{namespace.replace('/', '_')}_{name}"
        names[metric] = PLAIN_NAMES.get(metric, default).lower()
    if len(set(names.values())) < len(names):
        names = {m: m.replace("/", "_").lower() for m in metrics}
    return names


def fmt(stat: Stat) -> str:
    """``mean [low, high]``, with 3 decimals for a mean below 10 (win rates), 2 below 1000,
    none above."""
    m = abs(stat.mean)
    d = 3 if m < 10 else 2 if m < 1000 else 0
    return f"{stat.mean:.{d}f} [{stat.ci_low:.{d}f}, {stat.ci_high:.{d}f}]"


def write_summary_csv(rows: Sequence[SummaryRow], metrics: Sequence[str], path: Path) -> None:
    """One line per group; per metric ``<name>_{final,best}_{mean,ci_low,ci_high}`` columns
    (empty where the group does not log it)."""
    names = plain_names(metrics)
    header = ["env", "task", "algo", "n_seeds"]
    for metric in metrics:
        for kind in ("final", "best"):
            header += [f"{names[metric]}_{kind}_{x}" for x in ("mean", "ci_low", "ci_high")]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            line: list[Any] = [row.env, row.task, row.algo, row.n_seeds]
            for metric in metrics:
                for kind in ("final", "best"):
                    s = row.stats.get(metric, {}).get(kind)
                    line += [s.mean, s.ci_low, s.ci_high] if s else ["", "", ""]
            writer.writerow(line)


def write_summary_markdown(rows: Sequence[SummaryRow], metrics: Sequence[str], path: Path) -> None:
    """A Markdown table: ``mean [low, high]`` per metric, final and best."""
    names = plain_names(metrics)
    header = ["env", "task", "algo", "seeds"]
    header += [f"{names[m]} {kind}" for m in metrics for kind in ("final", "best")]
    lines = [
        "Mean across seeds [95% bootstrap CI]. final: each seed's last logged value; "
        "best: each seed's maximum. Metrics: "
        + ", ".join(f"{names[m]} = `{m}`" for m in metrics)
        + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|",
    ]
    for row in rows:
        cells = [row.env, row.task, row.algo, str(row.n_seeds)]
        for metric in metrics:
            for kind in ("final", "best"):
                s = row.stats.get(metric, {}).get(kind)
                cells.append(fmt(s) if s else "–")
        lines.append("| " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _steps(value: float) -> str:
    return f"{round(value):,}"


def _seed_names(runs: Sequence[Run]) -> str:
    """``seed 1, seed 3`` (a run without a known seed by its folder)."""
    return ", ".join(f"seed {r.seed}" if r.seed is not None else shown(r.path) for r in runs)


def _spans(runs: Sequence[Run], metric: str) -> str:
    """``seed 1: 0-200, seed 2: 400-1,000``: each run's logged steps of ``metric``."""
    spans = []
    for run in runs:
        steps, _ = run.curve(metric)
        name = f"seed {run.seed}" if run.seed is not None else shown(run.path)
        spans.append(f"{name}: {_steps(steps[0])}-{_steps(steps[-1])}")
    return ", ".join(spans)


def cut_warning(key: GroupKey, runs: Sequence[Run], metric: str, curve: Curve) -> str:
    """A warning when ``curve`` (on the steps every seed reached) loses more than
    ``CUT_TOLERANCE`` of its seeds' step range; '' otherwise."""
    curves = [run.curve(metric)[0] for run in runs]
    first, last = min(s[0] for s in curves), max(s[-1] for s in curves)
    kept = curve.steps[-1] - curve.steps[0]
    if kept >= (1.0 - CUT_TOLERANCE) * (last - first):
        return ""
    return (
        f"{metric}: {describe(key)} is cut to steps {_steps(curve.steps[0])}-"
        f"{_steps(curve.steps[-1])}, those every seed reached ({_spans(runs, metric)}); "
        "pass --allow-partial to also plot the steps only some seeds reached."
    )


def collect_curves(
    groups: Mapping[GroupKey, Sequence[Run]],
    metric: str,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    require_all: bool = True,
    max_points: int = 500,
) -> tuple[Panels, list[str]]:
    """Each group's curve of ``metric`` by panel, and a warning for each seed, group or
    panel left out and each curve cut (see the module docstring)."""
    panels: Panels = {}
    # panel -> algo -> its seeds' step ranges, for groups whose seeds do not overlap
    left_out: dict[tuple[str, str], dict[str, str]] = {}
    warnings = []
    for key, runs in groups.items():
        env, task, algo = key
        logging = [run for run in runs if run.has(metric)]
        if not logging:
            continue
        if silent := [run for run in runs if not run.has(metric)]:
            warnings.append(
                f"{metric}: {describe(key)} has none in {_seed_names(silent)}; "
                f"its curve averages the other {_n(len(logging), 'seed')}."
            )
        curve = aggregate_curve(
            logging,
            metric,
            n_boot=n_boot,
            seed=seed,
            require_all=require_all,
            max_points=max_points,
        )
        if curve is None:
            left_out.setdefault((env, task), {})[algo] = _spans(logging, metric)
            continue
        panels.setdefault((env, task), {})[algo] = curve
        if require_all and (cut := cut_warning(key, logging, metric, curve)):
            warnings.append(cut)
    for (env, task), algos in left_out.items():
        name = env if task == env else f"{env}/{task}"
        what = f"the panel {name}" if (env, task) not in panels else f"{', '.join(algos)} in {name}"
        ranges = "; ".join(f"{algo}: {seeds}" for algo, seeds in algos.items())
        warnings.append(
            f"{metric}: left out {what}: the seeds' logged steps do not overlap ({ranges}); "
            "pass --allow-partial to plot each step over the seeds that reached it."
        )
    return panels, warnings


def plot_metric(
    panels: Panels,
    metric: str,
    out_dir: Path,
    *,
    formats: Sequence[str] = ("png", "svg"),
) -> list[Path]:
    """``<metric>.<format>``: a panel per (env, task), a line and CI band per algo."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    algos = sorted({algo for curves in panels.values() for algo in curves})
    palette = [f"C{i}" for i in range(10)]
    colors = {algo: palette[i % len(palette)] for i, algo in enumerate(algos)}

    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(max(6.0, 5.2 * ncols), 3.8 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, ((env, task), curves) in zip(axes, panels.items(), strict=False):
        for algo, c in curves.items():
            few = len(c.steps) < 2
            label = f"{algo} ({c.n_runs} seed{'s' if c.n_runs > 1 else ''})"
            ax.plot(
                c.steps,
                c.mean,
                color=colors[algo],
                lw=1.8,
                label=label,
                marker="o" if few else None,
            )
            ax.fill_between(c.steps, c.ci_low, c.ci_high, color=colors[algo], alpha=0.2, lw=0)
        ax.set_title(env if task == env else f"{env}: {task}")
        ax.set_xlabel("env steps")
        ax.set_ylabel(LABELS.get(metric, metric))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    label = LABELS.get(metric, metric)
    sep = "\n" if ncols == 1 else ": "  # one panel is too narrow for one line
    fig.suptitle(
        f"{label[0].upper()}{label[1:]} ({metric}){sep}mean and 95% bootstrap CI across seeds"
    )

    stem = metric.replace("/", "_")
    written = []
    for ext in formats:
        path = out_dir / f"{stem}.{ext}"
        with rc_context({"svg.hashsalt": "marl", "svg.fonttype": "none"}):
            meta = {"Date": None} if ext == "svg" else {}
            fig.savefig(path, dpi=150, metadata=meta)
        written.append(path)
    return written


def _pick(values: list[float], index: int | None) -> float:
    """``values[index]``, or the maximum when ``index`` is None."""
    return max(values) if index is None else values[index]


def to_marl_eval(
    groups: Mapping[GroupKey, Sequence[Run]],
    metrics: Sequence[str],
    *,
    absolute: Literal["final", "best"] = "final",
) -> tuple[dict[str, Any], list[str]]:
    """The marl-eval raw-data dict of ``groups`` and the warnings about what was adapted.

    See the module docstring for the layout and the adaptations (common step count per
    env, run names, one-element lists, ``absolute_metrics``).
    """
    names = plain_names(metrics)
    warnings: list[str] = []
    data: dict[str, Any] = {}
    envs = sorted({env for env, _, _ in groups})
    for env in envs:
        env_groups = {k: v for k, v in groups.items() if k[0] == env}
        runs = [run for group in env_groups.values() for run in group]
        kept = [m for m in metrics if all(run.has(m) for run in runs)]
        if dropped := [m for m in metrics if m not in kept and any(r.has(m) for r in runs)]:
            warnings.append(f"{env}: left out {', '.join(dropped)}: not logged by every run.")
        if not kept:
            continue
        evaluations = {
            id(run): [
                (int(row["t_env"]), [row[m] for m in kept])
                for row in run.rows
                if all(m in row for m in kept)
            ]
            for run in runs
        }
        lengths = {len(e) for e in evaluations.values()}
        k = min(lengths)
        if k == 0:
            warnings.append(f"{env}: left out: a run has no row with {', '.join(kept)}.")
            continue
        if len(lengths) > 1:
            warnings.append(
                f"{env}: runs logged {min(lengths)} to {max(lengths)} evaluations; "
                f"kept the first {k} of each (marl-eval needs equal counts)."
            )
        seed_sets = {tuple(r.seed for r in group) for group in env_groups.values()}
        seeds = next(iter(seed_sets))
        by_seed = len(seed_sets) == 1 and None not in seeds and len(set(seeds)) == len(seeds)
        if not by_seed:
            warnings.append(f"{env}: runs named run_<i>: algorithms do not share one set of seeds.")
        algo_sets = {
            frozenset(a for _, t, a in env_groups if t == task) for _, task, _ in env_groups
        }
        if len(algo_sets) > 1:
            warnings.append(
                f"{env}: tasks do not all have the same algorithms (marl-eval needs it)."
            )
        if len({len(group) for group in env_groups.values()}) > 1:
            warnings.append(
                f"{env}: algorithms have different numbers of runs (marl-eval needs one)."
            )
        env_data: dict[str, Any] = data.setdefault(env.lower(), {})
        for (_, task, algo), group in env_groups.items():
            algo_data = env_data.setdefault(task.lower(), {}).setdefault(algo.lower(), {})
            for i, run in enumerate(group):
                rows = evaluations[id(run)][:k]
                run_data: dict[str, Any] = {
                    f"step_{j + 1}": {
                        "step_count": t,
                        **{names[m]: [v] for m, v in zip(kept, values, strict=True)},
                    }
                    for j, (t, values) in enumerate(rows)
                }
                last = -1 if absolute == "final" else None
                run_data["absolute_metrics"] = {
                    names[m]: [_pick([values[c] for _, values in rows], last)]
                    for c, m in enumerate(kept)
                }
                algo_data[f"run_{run.seed if by_seed else i}"] = run_data
    return data, warnings


# ------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marl-plot",
        description="Learning curves, a summary table and a marl-eval export from run folders.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="run or sweep folders")
    parser.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="KEY",
        help="metric key in metrics.jsonl, repeatable (default: test/return_mean and "
        "test/battle_won_mean where logged)",
    )
    parser.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap RNG seed")
    parser.add_argument("--max-points", type=int, default=500, help="most grid points a curve has")
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="extend curves past the shortest seed (averaging the seeds that got there)",
    )
    parser.add_argument(
        "--absolute",
        choices=("final", "best"),
        default="final",
        help="value written as marl-eval's absolute_metrics",
    )
    return parser


def warn(warnings: Iterable[str], prefix: str = "") -> None:
    """Print each warning on stderr, one line each."""
    for warning in warnings:
        print(f"marl-plot: warning: {prefix}{warning}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """``marl-plot``: writes ``<metric>.png/.svg``, ``summary.md/.csv``, ``marl_eval.json``."""
    args = build_parser().parse_args(argv)
    try:
        if args.n_boot < 1 or args.max_points < 2:
            raise UsageError("--n-boot must be at least 1 and --max-points at least 2.")
        runs = load_runs(args.paths)
        if args.metrics:
            metrics = list(dict.fromkeys(args.metrics))
            check_metrics(runs, metrics)
        else:
            metrics = [m for m in DEFAULT_METRICS if any(r.has(m) for r in runs)]
            if not metrics:
                check_metrics(runs, DEFAULT_METRICS[:1])
        groups, selected = select_runs(runs, metrics)
        warn(selected)
        options = {"n_boot": args.n_boot, "seed": args.seed}
        figures: dict[str, Panels] = {}
        dropped: list[str] = []
        for metric in metrics:
            figures[metric], left_out = collect_curves(
                groups,
                metric,
                require_all=not args.allow_partial,
                max_points=args.max_points,
                **options,
            )
            dropped += left_out
            if not figures[metric]:
                dropped.append(f"{metric}: no figure, every panel was left out.")
        if not any(figures.values()):
            raise UsageError(
                f"nothing to plot: in every group the seeds' logged steps of {', '.join(metrics)} "
                "do not overlap; pass --allow-partial to plot each step over the seeds that "
                "reached it."
            )
        warn(dropped)
        args.out.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for metric, panels in figures.items():
            written += plot_metric(panels, metric, args.out) if panels else []
        rows = summarize(groups, metrics, **options)
        for path, write in (
            (args.out / "summary.md", write_summary_markdown),
            (args.out / "summary.csv", write_summary_csv),
        ):
            write(rows, metrics, path)
            written.append(path)
        data, warnings = to_marl_eval(groups, metrics, absolute=args.absolute)
        path = args.out / "marl_eval.json"
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    except (UsageError, OSError) as err:
        print(f"marl-plot: error: {err}", file=sys.stderr)
        return 1
    warn(warnings, "marl_eval.json: ")
    n_seeds = ", ".join(f"{'/'.join(k)}: {len(v)}" for k, v in groups.items())
    used = sum(len(v) for v in groups.values())
    print(f"{len(runs)} run folders, {used} used; seeds per group: {n_seeds}")
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
