#!/usr/bin/env python
"""marl beside EPyMARL and JaxMARL, measured side by side: one JSON line per row.

    python scripts/bench_peers.py --setup --epymarl /tmp/epymarl   # once: scratch venvs
    python scripts/bench_peers.py                                  # every row, 3 pairs
    python scripts/bench_peers.py --rows qmix_lbf_b1 smax_3m_1024 --repeats 5

The peers live in scratch venvs under ``--venvs`` (default ``~/.cache/marl-peers``);
``--setup`` makes them, without it the script uses the ones there. Peers' code is run,
never copied into marl:

- EPyMARL is not on PyPI: ``--epymarl`` names a checkout (a snapshot of
  uoe-agents/epymarl). Setup copies it to ``<venvs>/epymarl`` and patches that copy only
  (its unconditional ``smaclite`` import made optional), then makes ``epymarl-venv``:
  ``torch==2.13.0`` first, then its ``requirements.txt`` and ``lbforaging`` with torch
  pinned and ``setuptools<81`` (sacred imports ``pkg_resources``).
- ``jaxmarl-venv``: ``jaxmarl`` and ``jax`` (CPU) from PyPI. It runs
  ``scripts/peers_smax_driver.py``, our code calling jaxmarl's API.

Rows (``--rows``; the work is the same on both sides):

- ``qmix_lbf_b1``, ``qmix_lbf_b4``: QMIX on LBF 8x8-2p-2f (limit 50) for ``--t-max`` env
  steps with one env / 4 envs. EPyMARL: ``src/main.py --config=qmix --env-config=gymma``
  (its ``qmix.yaml``; the parallel runner with ``batch_size_run=4``); marl: ``python -m
  marl`` with bench_train.py's ``qmix_lbf_epymarl_b1`` / ``_b4`` overrides. Both sides
  without tests, logging files or checkpoints (EPyMARL: sacred's ``-u``, and one test
  round at its first step, which it cannot skip: 1 or 4 episodes). Measured: the
  whole process's wall time, start-up included; steps/s is ``t_max`` / wall time
  (EPyMARL runs while ``t_env <= t_max``: up to one rollout more).
- ``qmix_foraging_b1``, ``qmix_foraging_b4``: the same, marl on ``env=foraging`` (its own
  LBF: lbforaging's game and, seed for seed, its episodes) with bench_train.py's
  ``qmix_foraging_epymarl_b1`` / ``_b4``; EPyMARL on lbforaging as above.
- ``smax_<map>_<copies>``: random valid actions on the battle maps 3m (1,024 and 64
  copies), 2s3z and 3s5z (1,024). JaxMARL: ``HeuristicEnemySMAX`` jitted and vmapped,
  auto-reset (peers_smax_driver.py); marl: ``scripts/bench_env.py``'s live env
  steps/s (whole episode batches). Each side's own steps/s after its warm-up
  (compiling excluded), each in a fresh process.

The pairs alternate, marl then the peer, ``--repeats`` times (A B A B A B). Each line
gives both sides' median, min and max, the ratio of the medians marl / peer (speed:
above 1 marl is faster), each run, the work and both commands, and the 1-minute load
average before the row and after each pair. Compare ratios, not absolute numbers,
across days: these VMs drift.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_benchmarl import emit, timed
from bench_train import CONFIGS

from marl.machine import run_context

REPO = Path(__file__).resolve().parent.parent
SMAX_DRIVER = Path(__file__).resolve().parent / "peers_smax_driver.py"
TORCH = "torch==2.13.0"
"""The CPU build on disk; installed first so that no requirement pulls another torch."""
EPYMARL_CONSTRAINTS = [TORCH, "setuptools<81"]
"""sacred 0.8.7 imports ``pkg_resources``, gone from setuptools 81 on."""
SMACLITE_IMPORT = "from .smaclite_wrapper import SMACliteWrapper\n"
SMACLITE_OPTIONAL = (
    "try:\n"
    "    from .smaclite_wrapper import SMACliteWrapper\n"
    "except ImportError:  # patched by marl's scripts/bench_peers.py: smaclite optional\n"
    "    pass\n"
)
MARL_QUIET = ["test_nepisode=0", "logger=[jsonl]", "save_model=false"]
"""marl: no test episodes, no console logger, no checkpoints."""
EPYMARL_QUIET = [
    "test_nepisode=1",  # raised to batch_size_run: one test round, at the first step
    "test_interval=1000000000",
    "save_model=False",
    "use_tensorboard=False",
    "use_wandb=False",
]
"""EPyMARL: its checkpoints, tensorboard and W&B off; tests as few as it allows."""


@dataclass(frozen=True)
class TrainRow:
    """QMIX on LBF: EPyMARL's whole process (lbforaging) beside marl's, on ``env=lbf``
    (lbforaging) or ``env=foraging`` (marl's own, the same game and episodes)."""

    envs: int
    marl_env: str = "lbf"

    @property
    def marl_config(self) -> str:
        return f"qmix_{self.marl_env}_epymarl_b{self.envs}"

    def work(self, t_max: int) -> str:
        runner = "1 env" if self.envs == 1 else f"{self.envs} envs in parallel"
        lbf = "LBF Foraging-8x8-2p-2f-v3, limit 50"
        marl_env = f"marl env={self.marl_env}"
        return f"QMIX (EPyMARL's qmix.yaml), {lbf}, {runner}, t_max={t_max}, {marl_env}"


@dataclass(frozen=True)
class EnvRow:
    """Random valid actions on a battle map: SMAX's steps/s beside marl's battle."""

    map_name: str
    copies: int

    def work(self, copies: int) -> str:
        return f"random valid actions, battle {self.map_name}, {copies} copies"


ROWS: dict[str, TrainRow | EnvRow] = {
    "qmix_lbf_b1": TrainRow(1),
    "qmix_lbf_b4": TrainRow(4),
    "qmix_foraging_b1": TrainRow(1, "foraging"),
    "qmix_foraging_b4": TrainRow(4, "foraging"),
    "smax_3m_1024": EnvRow("3m", 1024),
    "smax_3m_64": EnvRow("3m", 64),
    "smax_2s3z_1024": EnvRow("2s3z", 1024),
    "smax_3s5z_1024": EnvRow("3s5z", 1024),
}


@dataclass(frozen=True)
class Venvs:
    """Where the scratch venvs and EPyMARL's patched copy live."""

    root: Path

    @property
    def epymarl_src(self) -> Path:
        return self.root / "epymarl"

    @property
    def epymarl_python(self) -> Path:
        return self.root / "epymarl-venv" / "bin" / "python"

    @property
    def jaxmarl_python(self) -> Path:
        return self.root / "jaxmarl-venv" / "bin" / "python"


# --- SETUP ---


def pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", *args], check=True)


def make_venv(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def setup_epymarl(venvs: Venvs, checkout: Path) -> None:
    """Copy the checkout, make smaclite optional in the copy, install its requirements."""
    requirements = checkout / "requirements.txt"
    if not (checkout / "src" / "main.py").exists() or not requirements.exists():
        sys.exit(f"{checkout} is not an EPyMARL checkout (no src/main.py, requirements.txt)")
    if venvs.epymarl_src.exists():
        shutil.rmtree(venvs.epymarl_src)
    shutil.copytree(checkout, venvs.epymarl_src, ignore=shutil.ignore_patterns(".git"))
    envs_init = venvs.epymarl_src / "src" / "envs" / "__init__.py"
    text = envs_init.read_text()
    if SMACLITE_IMPORT not in text:
        sys.exit(f"{envs_init}: no `{SMACLITE_IMPORT.strip()}` to make optional")
    envs_init.write_text(text.replace(SMACLITE_IMPORT, SMACLITE_OPTIONAL))
    source = {"checkout": str(checkout.resolve()), "commit": git_head(checkout)}
    (venvs.epymarl_src / "MARL_BENCH_SOURCE.json").write_text(json.dumps(source) + "\n")

    python = make_venv(venvs.root / "epymarl-venv")
    pip(python, TORCH)
    constraints = venvs.root / "epymarl-constraints.txt"
    constraints.write_text("\n".join(EPYMARL_CONSTRAINTS) + "\n")
    pip(python, "-r", str(requirements), "-c", str(constraints), TORCH, "lbforaging")


def setup_jaxmarl(venvs: Venvs) -> None:
    python = make_venv(venvs.root / "jaxmarl-venv")
    pip(python, "jaxmarl", "jax")


def git_head(folder: Path) -> str | None:
    if not (folder / ".git").exists():
        return None
    out = subprocess.run(
        ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or None


def package_version(python: Path, package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


def require(python: Path, name: str) -> None:
    if not python.exists():
        sys.exit(
            f"No {name} venv at {python.parent.parent}: create it with "
            "`python scripts/bench_peers.py --setup --epymarl <EPyMARL checkout>` "
            "(add `--venvs DIR` if you use another folder)."
        )


# --- ONE RUN OF EACH SIDE ---


def marl_train_command(row: TrainRow, t_max: int, run_dir: Path) -> list[str]:
    kept = [o for o in CONFIGS[row.marl_config] if not o.startswith("t_max=")]
    overrides = [*kept, f"t_max={t_max}", *MARL_QUIET, f"hydra.run.dir={run_dir}"]
    return [sys.executable, "-m", "marl", *overrides]


def epymarl_command(venvs: Venvs, row: TrainRow, t_max: int) -> list[str]:
    cmd = [str(venvs.epymarl_python), "src/main.py", "--config=qmix", "--env-config=gymma"]
    cmd += ["-u", "with"]  # -u: sacred without observers (no results/ files)
    cmd += ["env_args.key=lbforaging:Foraging-8x8-2p-2f-v3", "env_args.time_limit=50"]
    cmd += [f"t_max={t_max}", *EPYMARL_QUIET]
    if row.envs > 1:
        cmd += ["runner=parallel", f"batch_size_run={row.envs}"]
    return cmd


def marl_env_command(
    row: EnvRow, copies: int, seconds: float, threads: int, runner: str, compile: bool
) -> list[str]:
    script = str(REPO / "scripts" / "bench_env.py")
    cmd = [sys.executable, script, "--maps", row.map_name, "--batch", str(copies)]
    cmd += ["--repeats", "1", "--seconds", str(seconds), "--threads", str(threads)]
    return [*cmd, "--runner", runner, *(["--compile"] if compile else [])]


def smax_command(venvs: Venvs, row: EnvRow, copies: int, seconds: float) -> list[str]:
    cmd = [str(venvs.jaxmarl_python), str(SMAX_DRIVER), "--map", row.map_name]
    return [*cmd, "--envs", str(copies), "--seconds", str(seconds)]


def last_json(log: Path) -> dict[str, Any]:
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def run_marl_train(row: TrainRow, t_max: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        # From the repo: `python -m marl` imports the working folder's marl first.
        out = timed(marl_train_command(row, t_max, run_dir), REPO, Path(tmp) / "log")
        out["t_env"] = int((run_dir / "FINISHED").read_text())
    return out


def run_epymarl(venvs: Venvs, row: TrainRow, t_max: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return timed(epymarl_command(venvs, row, t_max), venvs.epymarl_src, Path(tmp) / "log")


def run_env_side(cmd: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log"
        out = timed(cmd, REPO, log)
        return {**out, "reported": last_json(log)}


# --- ROWS ---


def spread(values: list[float], digits: int = 1) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }


def process_stats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cpu_per_wall": round(statistics.median(r["cpu_s"] / r["wall_s"] for r in runs), 2),
        "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs)),
    }


def alternate(marl: Any, peer: Any, repeats: int) -> tuple[list[Any], list[Any], list[float]]:
    """``repeats`` pairs of whole processes, marl then the peer; the load before and
    after each pair."""
    loads = [round(os.getloadavg()[0], 2)]
    marl_runs, peer_runs = [], []
    for _ in range(repeats):
        marl_runs.append(marl())
        peer_runs.append(peer())
        loads.append(round(os.getloadavg()[0], 2))
    return marl_runs, peer_runs, loads


def measure_train(name: str, row: TrainRow, venvs: Venvs, args: argparse.Namespace) -> dict:
    t_max = args.t_max
    marl_runs, peer_runs, loads = alternate(
        lambda: run_marl_train(row, t_max),
        lambda: run_epymarl(venvs, row, t_max),
        args.repeats,
    )
    marl_wall = [r["wall_s"] for r in marl_runs]
    peer_wall = [r["wall_s"] for r in peer_runs]
    marl = {
        "wall_s": spread(marl_wall),
        "env_steps_per_s": spread([t_max / w for w in marl_wall]),
        "t_env": [r["t_env"] for r in marl_runs],
        **process_stats(marl_runs),
    }
    peer = {
        "wall_s": spread(peer_wall),
        "env_steps_per_s": spread([t_max / w for w in peer_wall]),
        **process_stats(peer_runs),
    }
    return {
        "row": name,
        "work": row.work(t_max),
        "measured": "whole-process wall time, start-up included; steps/s = t_max / wall",
        "marl": marl,
        "peer": {"name": "EPyMARL", **peer},
        "ratio": round(statistics.median(peer_wall) / statistics.median(marl_wall), 2),
        "commands": {
            "marl": " ".join(marl_train_command(row, t_max, Path("<tmp>"))[1:]),
            "peer": " ".join(epymarl_command(venvs, row, t_max)[1:]),
        },
        "peer_versions": {
            "epymarl": json.loads((venvs.epymarl_src / "MARL_BENCH_SOURCE.json").read_text()),
            "torch": package_version(venvs.epymarl_python, "torch"),
        },
        "repeats": args.repeats,
        "load_avg_1m": loads,
    }


MARL_COUNTS = {
    "episode": "live env steps of whole episode batches (bench_env.py)",
    "autoreset": "real env steps, copies restarting as they end, one step sat out per "
    "episode (bench_env.py --runner autoreset)",
}


def measure_env(name: str, row: EnvRow, venvs: Venvs, args: argparse.Namespace) -> dict:
    copies = args.copies or row.copies
    marl_cmd = marl_env_command(
        row, copies, args.seconds, args.marl_threads, args.marl_runner, args.marl_compile
    )
    peer_cmd = smax_command(venvs, row, copies, args.seconds)
    marl_runs, peer_runs, loads = alternate(
        lambda: run_env_side(marl_cmd), lambda: run_env_side(peer_cmd), args.repeats
    )
    marl_sps = [r["reported"]["env_steps_per_s"] for r in marl_runs]
    peer_sps = [r["reported"]["env_steps_per_s"] for r in peer_runs]
    peer_first = peer_runs[0]["reported"]
    return {
        "row": name,
        "work": row.work(copies),
        "measured": "each side's env steps/s after its warm-up, each run a fresh process",
        "marl": {
            "env_steps_per_s": spread(marl_sps),
            "counts": MARL_COUNTS[args.marl_runner],
            "compile": args.marl_compile,
            "copy_steps_per_s": spread([r["reported"]["copy_steps_per_s"] for r in marl_runs]),
            "torch_threads": args.marl_threads,
            "process_wall_s": spread([r["wall_s"] for r in marl_runs]),
            **process_stats(marl_runs),
        },
        "peer": {
            "name": f"JaxMARL {peer_first['env']}",
            "env_steps_per_s": spread(peer_sps),
            "counts": "every copy every step (auto-reset)",
            "first_call_s": spread([r["reported"]["first_call_s"] for r in peer_runs]),
            "process_wall_s": spread([r["wall_s"] for r in peer_runs]),
            **process_stats(peer_runs),
        },
        "ratio": round(statistics.median(marl_sps) / statistics.median(peer_sps), 2),
        "commands": {
            "marl": " ".join(marl_cmd[1:]).replace(str(REPO) + "/", ""),
            "peer": " ".join(peer_cmd[1:]).replace(str(REPO) + "/", ""),
        },
        "peer_versions": {"jax": peer_first["jax"], "jaxmarl": peer_first["jaxmarl"]},
        "repeats": args.repeats,
        "load_avg_1m": loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", action="store_true", help="(re)create the scratch venvs")
    parser.add_argument("--epymarl", type=Path, help="EPyMARL checkout, for --setup")
    parser.add_argument(
        "--venvs", type=Path, default=Path.home() / ".cache" / "marl-peers", help="venv folder"
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=list(ROWS),
        default=list(ROWS),
        metavar="ROW",
        help=", ".join(ROWS),
    )
    parser.add_argument("--repeats", type=int, default=3, help="pairs of whole processes")
    parser.add_argument("--t-max", type=int, default=50000, help="env steps, training rows")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed time, env rows")
    parser.add_argument("--copies", type=int, help="env copies for every env row (smoke)")
    parser.add_argument("--marl-threads", type=int, default=1, help="bench_env.py --threads")
    parser.add_argument(
        "--marl-runner",
        choices=sorted(MARL_COUNTS),
        default="autoreset",
        help="bench_env.py --runner: lock-step batches or copies restarting as they end",
    )
    parser.add_argument(
        "--marl-compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bench_env.py --compile (env.compile=true: the game loop fused by torch.compile)",
    )
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args()
    venvs = Venvs(args.venvs)

    if args.setup:
        venvs.root.mkdir(parents=True, exist_ok=True)
        if args.epymarl:
            setup_epymarl(venvs, args.epymarl)
        else:
            print("No --epymarl checkout: EPyMARL's venv not made.", file=sys.stderr)
        setup_jaxmarl(venvs)
        print(f"Peers' venvs ready in {venvs.root}.", file=sys.stderr)

    names = args.rows
    if any(isinstance(ROWS[n], TrainRow) for n in names):
        require(venvs.epymarl_python, "EPyMARL")
    if any(isinstance(ROWS[n], EnvRow) for n in names):
        require(venvs.jaxmarl_python, "jaxmarl")
    context = run_context("cpu")
    for name in names:
        row = ROWS[name]
        if isinstance(row, TrainRow):
            result = measure_train(name, row, venvs, args)
        else:
            result = measure_env(name, row, venvs, args)
        result.update(marl=result["marl"] | {"version": context["marl"]})
        result.update(torch=context["torch"], machine=context["machine"])
        emit(result, args.out)


if __name__ == "__main__":
    main()
