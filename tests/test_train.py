"""The entrypoint end to end: training, outputs, determinism, evaluate-only, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from marl import train
from marl.config import compose_config
from marl.errors import UsageError
from marl.exploration.epsilon_greedy import EpsilonGreedy
from marl.learners.q_learning import QLearner
from marl.machine import SHARED_LEARNER_THREADS_CAP, usable_cpus
from marl.train import run
from tests.conftest import group_options


def read_metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_training_writes_namespaced_metrics(make_config, tmp_path: Path) -> None:
    run(make_config(), tmp_path)
    rows = read_metrics(tmp_path)
    assert all("t_env" in row for row in rows)
    keys = set().union(*rows)
    for key in ("test/return_mean", "train/return_mean", "train/epsilon", "learner/loss"):
        assert key in keys
    assert not any(k.startswith("time/") for k in keys)
    assert rows[-1]["t_env"] >= 200
    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert saved.algo.name == "qmix" and saved.t_max == 200


def test_test_nepisode_0_turns_testing_off(make_config, tmp_path: Path) -> None:
    run(make_config("test_nepisode=0"), tmp_path)
    keys = set().union(*read_metrics(tmp_path))
    assert not any(k.startswith("test/") for k in keys)
    assert {"train/return_mean", "learner/loss"} <= keys


def test_evaluating_zero_episodes_is_an_error(make_config, tmp_path: Path) -> None:
    run(make_config("save_model=true"), tmp_path / "train")
    cfg = make_config(f"checkpoint_path={tmp_path / 'train'}", "evaluate=true", "test_nepisode=0")
    with pytest.raises(UsageError, match="test_nepisode must be at least 1 to evaluate"):
        run(cfg, tmp_path / "eval")


@pytest.mark.gpu
@pytest.mark.parametrize(
    "overrides",
    [
        *([f"algo={algo}", "env=matrix"] for algo in group_options("algo")),
        ["algo=qmix", "env=battle", "batch_size_run=8", "t_max=800"],
        ["algo=qmix", "env=battle", "buffer_device=cpu"],
    ],
)
def test_training_on_a_gpu(make_config, tmp_path: Path, overrides: list[str]) -> None:
    """Every algorithm trains on CUDA end to end: rollouts, buffer and learner on the GPU
    (or the buffer in host memory), with the usual metrics."""
    run(make_config("device=cuda", *overrides), tmp_path)
    rows = read_metrics(tmp_path)
    keys = set().union(*rows)
    assert {"test/return_mean", "train/return_mean", "learner/loss"} <= keys
    losses = [row["learner/loss"] for row in rows if "learner/loss" in row]
    assert all(loss == loss and abs(loss) < 1e9 for loss in losses)  # finite
    assert rows[-1]["t_env"] >= 200


def test_save_replay_on_an_env_without_replays_is_an_error(make_config, tmp_path: Path) -> None:
    run(make_config("save_model=true"), tmp_path / "train")
    cfg = make_config(f"checkpoint_path={tmp_path / 'train'}", "save_replay=true")
    with pytest.raises(UsageError, match="cannot save replays"):
        run(cfg, tmp_path / "eval")


@pytest.mark.parametrize("algo", group_options("algo"))
def test_same_seed_gives_identical_metrics(make_config, tmp_path: Path, algo: str) -> None:
    for name in ("a", "b"):
        run(make_config(f"algo={algo}", "seed=3", "batch_size_run=2"), tmp_path / name)
    a = (tmp_path / "a" / "metrics.jsonl").read_text()
    assert a == (tmp_path / "b" / "metrics.jsonl").read_text()
    run(make_config(f"algo={algo}", "seed=4", "batch_size_run=2"), tmp_path / "c")
    assert a != (tmp_path / "c" / "metrics.jsonl").read_text()


def test_updates_per_rollout_trains_that_many_times(
    make_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = QLearner.train

    def counting(self: QLearner, batch, t_env: int, episode: int, **kwargs):
        calls.append(t_env)
        return original(self, batch, t_env, episode, **kwargs)

    monkeypatch.setattr(QLearner, "train", counting)
    cfg = make_config("updates_per_rollout=3", "batch_size_run=2", "t_max=40", "batch_size=4")
    run(cfg, tmp_path)
    # 2-step episodes: 10 rollouts of 2 episodes; 4 episodes can be sampled from the 2nd
    assert len(calls) == 3 * 9
    assert all(calls[i] == calls[i + 1] == calls[i + 2] for i in range(0, len(calls), 3))


@pytest.mark.parametrize(("setting", "expected"), [("1", 1), ("null", None), ("64", None)])
def test_learner_updates_run_with_learner_threads(
    make_config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    expected: int | None,
) -> None:
    """Updates take `learner_threads` torch threads (null: the CPU share up to a cap; never
    more than the CPUs); acting keeps `torch_threads`."""
    threads: dict[str, set[int]] = {"update": set(), "act": set()}
    train, select = QLearner.train, EpsilonGreedy.select

    def update(self: QLearner, *args, **kwargs):
        threads["update"].add(torch.get_num_threads())
        return train(self, *args, **kwargs)

    def act(self: EpsilonGreedy, *args, **kwargs):
        threads["act"].add(torch.get_num_threads())
        return select(self, *args, **kwargs)

    monkeypatch.setattr(QLearner, "train", update)
    monkeypatch.setattr(EpsilonGreedy, "select", act)
    run(make_config(f"learner_threads={setting}", "torch_threads=1"), tmp_path)
    share = min(usable_cpus(), SHARED_LEARNER_THREADS_CAP if setting == "null" else 64)
    assert threads["update"] == {expected or share}
    assert threads["act"] == {1}


def test_the_default_is_one_learner_thread(make_config) -> None:
    """Two threads were up to 12x slower than one beside another CPU-bound job."""
    assert compose_config([]).learner_threads == 1


def test_a_run_folder_with_metrics_is_never_overwritten(make_config, tmp_path: Path) -> None:
    run(make_config(), tmp_path)
    before = (tmp_path / "metrics.jsonl").read_text()
    run(make_config(), tmp_path)  # finished: nothing to do
    with pytest.raises(UsageError, match="finished at t_env 200 without checkpoints to continue"):
        run(make_config("t_max=400"), tmp_path)
    (tmp_path / "FINISHED").unlink()  # as if it had been killed before the end
    with pytest.raises(UsageError, match=r"stopped without a checkpoint .* hydra\.run\.dir"):
        run(make_config(), tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_evaluate_a_saved_checkpoint(make_config, tmp_path: Path) -> None:
    run(make_config("save_model=true", "save_model_interval=100"), tmp_path / "train")
    steps = sorted(int(p.name) for p in (tmp_path / "train" / "checkpoints").iterdir())
    assert steps[0] == 2 and steps[-1] >= 200  # after the first batch, and at the end
    cfg = make_config(
        f"checkpoint_path={tmp_path / 'train'}", "load_step=100", "evaluate=true", "test_nepisode=5"
    )
    run(cfg, tmp_path / "eval")
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    nearest = min(steps, key=lambda s: (abs(s - 100), s))
    assert result["t_env"] == nearest
    assert result["checkpoint"].endswith(f"checkpoints/{nearest}")
    assert result["n_episodes"] == 5 and result["seed"] == cfg.seed
    for key in ("return_mean", "return_std", "return_min", "return_max", "ep_length_mean"):
        assert key in result


def test_evaluate_without_checkpoint_is_an_error(make_config, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="checkpoint_path"):
        run(make_config("evaluate=true"), tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()


def marl_train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    cmd = [sys.executable, "-m", "marl", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_trains_from_any_directory(tmp_path: Path) -> None:
    args = ["env=matrix", "batch_size_run=1", "t_max=100", "test_interval=50", "batch_size=4"]
    out = marl_train(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    runs = list((tmp_path / "outputs" / "qmix" / "matrix_two_step" / "seed1").iterdir())
    assert len(runs) == 1
    assert (runs[0] / "metrics.jsonl").stat().st_size > 0
    assert (runs[0] / ".hydra" / "config.yaml").is_file()
    assert "test: ep_length_mean" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["learner.lrr=1"], "Key 'lrr' not in 'QLearnerConfig'"),
        (["t_max=abc"], "could not be converted to Integer"),
        (["algo=nope"], "Could not find 'algo/nope'"),
        (["evaluate=true"], "evaluate=true needs checkpoint_path"),
        (["checkpoint_path=/no/such/run"], "does not exist"),
        (["batch_size=64", "buffer_size=32"], "exceeds buffer_size"),
        (["updates_per_rollout=0"], "updates_per_rollout must be at least 1"),
        (["runner.sync_every=0"], "runner.sync_every must be at least 1"),
        (["learner_threads=0"], "learner_threads must be at least 1"),
        (["torch_threads=0"], "torch_threads must be at least 1"),
        (["test_nepisode=-1"], "test_nepisode must be at least"),
        (["buffer_obs_dtype=int4"], "buffer_obs_dtype must be one of"),
        (["env=matrix", "buffer_obs_dtype=int8"], "needs an env whose features lie in"),
        (["learner.compile=fastest"], "learner.compile must be null or one of"),
        pytest.param(
            ["device=cuda:0"],
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available"),
        ),
    ],
)
def test_cli_user_errors_exit_nonzero_with_one_message(
    args: list[str], message: str, tmp_path: Path
) -> None:
    out = marl_train(*args, cwd=tmp_path)
    assert out.returncode != 0
    assert message in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert not list(tmp_path.rglob("metrics.jsonl"))
    assert not list(tmp_path.rglob("*.log"))  # a failed run leaves no run folder behind


def test_evaluate_on_battle_saves_gif_replays(make_config, tmp_path: Path) -> None:
    battle = ["env=battle", "env.map_name=3m", "batch_size_run=2", "t_max=60", "save_model=true"]
    run(make_config(*battle), tmp_path / "train")
    cfg = make_config(
        *battle, f"checkpoint_path={tmp_path / 'train'}", "save_replay=true", "test_nepisode=2"
    )
    run(cfg, tmp_path / "eval")
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert 0.0 <= result["win_rate"] <= 1.0
    replays = sorted((tmp_path / "eval" / "replays").glob("*.gif"))
    assert [str(p) for p in replays] == result["replays"]
    assert len(replays) == 2  # one per evaluated episode
    assert replays[0].read_bytes()[:6] in (b"GIF87a", b"GIF89a")
    described = json.loads((tmp_path / "train" / "env_info.json").read_text())
    assert "approximation" in described["simulator"]


def test_evaluate_takes_algo_env_and_learner_from_the_checkpoint(
    make_config, tmp_path: Path
) -> None:
    """`marl-train checkpoint_path=<run> evaluate=true` needs no algo or env retyped."""
    trained = ["algo=vdn", "env.game=climbing", "save_model=true"]
    run(make_config(*trained), tmp_path / "train")
    given = [f"checkpoint_path={tmp_path / 'train'}", "evaluate=true"]
    with pytest.raises(UsageError, match="does not fit this env"):
        run(make_config(*given), tmp_path / "eval_api")  # scripts: the config as given
    run(make_config(*given), tmp_path / "eval", overrides=given)  # the command line's way
    saved = OmegaConf.load(tmp_path / "eval" / "config.yaml")
    assert saved.algo.name == "vdn" and saved.env.game == "climbing"
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["n_episodes"] == 4
    # What the command line sets wins: here an env the checkpoint does not fit.
    with pytest.raises(UsageError, match="does not fit this env"):
        run(make_config(*given, "env=battle"), tmp_path / "eval2", overrides=[*given, "env=battle"])


def test_preflight_names_a_missing_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train.shutil, "which", lambda name: None)
    with pytest.raises(
        UsageError, match="hydra/launcher=slurm needs SLURM, and there is no sbatch"
    ):
        train.preflight(["-m", "seed=1,2", "hydra/launcher=slurm"])
    train.preflight(["-m", "seed=1,2", "hydra/launcher=local_parallel"])


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_preflight_names_a_read_only_or_full_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str
) -> None:
    args = ["-m"] if key == "hydra.sweep.dir" else []
    args.append(f"{key}={tmp_path / 'new' / 'run'}")
    train.preflight(args)
    monkeypatch.setattr(train.os, "access", lambda path, mode: False)
    with pytest.raises(UsageError, match=f"{tmp_path} is not writable .* set {key}="):
        train.preflight(args)
    monkeypatch.undo()
    usage = shutil.disk_usage(tmp_path)._replace(free=1024)
    monkeypatch.setattr(train.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(UsageError, match=r"has 0\.0 MB free; free some space"):
        train.preflight(args)


def test_evaluate_keeps_the_command_lines_algo_for_an_older_checkpoint_layout(
    make_config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A checkpoint whose saved algo predates `algo.modules` still evaluates."""
    run(make_config("save_model=true"), tmp_path / "train")
    for meta_file in (tmp_path / "train" / "checkpoints").glob("*/meta.json"):
        meta = json.loads(meta_file.read_text())
        algo = meta["config"]["algo"]
        meta["config"]["algo"] = {"name": "qmix", "agent": algo["modules"]["mac"]["agent"]}
        meta_file.write_text(json.dumps(meta))  # meta.json is not hashed
    given = [f"checkpoint_path={tmp_path / 'train'}", "evaluate=true"]
    run(make_config(*given), tmp_path / "eval", overrides=given)
    assert "the checkpoint's algo settings do not fit this marl" in caplog.text
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["n_episodes"] == 4
