"""``marl-train``: the one entrypoint. Compose the config, then train or evaluate.

marl-train                                   # QMIX on the default env
marl-train algo=vdn env=matrix env.game=climbing seed=2
marl-train -m algo=qmix,vdn seed=1,2,3       # a sweep
marl-train checkpoint_path=outputs/<run> evaluate=true   # algo and env from the checkpoint
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from marl.checkpoint import CheckpointError, move_aside, newest_good_step, select_checkpoint
from marl.config import AlgoConfig, register_configs, register_resolvers
from marl.envs.base import env_task
from marl.errors import UsageError
from marl.interrupt import Interrupted
from marl.machine import usable_cpus
from marl.run_folder import RunFolder
from marl.validation import schema_of, validate_config

log = logging.getLogger("marl")

# Launchers (joblib, submitit) unpickle the task function in fresh processes and
# resolve the run folder name there, before it runs: the resolver must exist as
# soon as this module is imported.
register_resolvers()


ADOPTED_GROUPS = ("algo", "env", "learner")
"""What ``evaluate=true`` takes from the checkpoint's own config unless the command line
sets it (``experiment=`` sets algo and env, so it counts for all three)."""
FAILED_JOBS = ".failed_jobs"
"""Folder of a sweep where each failed job leaves ``<job number>.txt`` with its error."""
MIN_FREE_MB = 16
"""A run does not start on a disk with less free space (its logs and config need little;
checkpoints need more and fail with their own message)."""


def fresh_sibling(run_dir: Path) -> Path:
    """``<run dir>_<k>`` for the smallest free k."""
    k = 1
    while (candidate := run_dir.with_name(f"{run_dir.name}_{k}")).exists():
        k += 1
    candidate.mkdir(parents=True)
    return candidate


def claim_run_folder(run_dir: Path, resume: str, evaluating: bool) -> RunFolder:
    """Lock ``run_dir``, or with ``resume=never`` a fresh sibling when it holds a run
    (or another live process holds it)."""
    from marl.experiment import CHECKPOINTS, RESOLVED_CONFIG

    folder = RunFolder(run_dir)
    locked = folder.try_lock()
    holds_run = (run_dir / RESOLVED_CONFIG).exists() or (run_dir / CHECKPOINTS).is_dir()
    if resume == "never" and not evaluating and (holds_run or not locked):
        folder.release()
        folder = RunFolder(fresh_sibling(run_dir)).lock()
        log.info("resume=never: this run starts fresh in %s", folder.path)
        return folder
    return folder if locked else folder.lock()  # .lock() raises, naming the holder


def adopt_checkpoint_config(cfg: DictConfig, step_dir: Path, overrides: list[str]) -> None:
    """For evaluation: take ``algo``, ``env`` and ``learner`` from the checkpoint's saved
    config, except those the command line sets."""
    from marl.checkpoint import META_FILE

    try:
        saved = json.loads((step_dir / META_FILE).read_text()).get("config") or {}
    except (OSError, ValueError):
        return  # loading the checkpoint reports what is wrong with it
    keys = {o.lstrip("+~").split("=", 1)[0].replace("/", ".").split(".", 1)[0] for o in overrides}
    given = set(ADOPTED_GROUPS) if "experiment" in keys else keys & set(ADOPTED_GROUPS)
    adopted = []
    for group in ADOPTED_GROUPS:
        if group in given or group not in saved or cfg[group] == saved[group]:
            continue
        previous = cfg[group]
        try:
            schema = AlgoConfig if group == "algo" else schema_of(OmegaConf.create(saved[group]))
            # Merging into the schema refuses keys it lacks (a checkpoint of an older marl).
            cfg[group] = OmegaConf.merge(OmegaConf.structured(schema), saved[group])
            validate_config(cfg)
            adopted.append(group)
        except (OmegaConfBaseException, UsageError, ValueError) as err:
            cfg[group] = previous
            log.warning(
                "the checkpoint's %s settings do not fit this marl (%s); evaluating with the "
                "command line's %s",
                group,
                str(err).splitlines()[0],
                group,
            )
    if adopted:
        log.info(
            "evaluating with the checkpoint's %s (set them on the command line to change)",
            ", ".join(f"{group} ({describe(saved[group])})" for group in adopted),
        )


def describe(node: dict[str, Any]) -> str:
    """A saved config node in a few words: ``qmix``, ``MatrixEnv climbing``."""
    if node.get("name"):
        return str(node["name"])
    words = [str(node.get("_target_", "")).rpartition(".")[2], env_task(node) or ""]
    return " ".join(w for w in words if w)


def save_hydra_files(run_dir: Path, cfg: DictConfig) -> None:
    """Hydra's record of the launch (composed config, its own config, the overrides), which
    ``marl-train`` writes itself once it holds the folder (``hydra.output_subdir`` is null so
    that Hydra never writes into a folder another run holds)."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    out = run_dir / ".hydra"
    out.mkdir(exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (out / "hydra.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})))
    (out / "overrides.yaml").write_text(OmegaConf.to_yaml(hydra_cfg.overrides.task))


def run(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str] | None = None,
    parallel_jobs: int = 1,
) -> None:
    """Train (fresh, resumed or fine-tuned) or evaluate a checkpoint, in ``run_dir``.

    - The run holds ``run_dir`` (a lock) until it ends; a folder another live run holds is
      an error (``resume=never``: a new sibling folder instead).
    - ``evaluate=true`` (or ``save_replay=true``): load ``checkpoint_path``, play
      ``test_nepisode`` greedy episodes, write ``eval.json``. With ``overrides`` (the
      command line's), the algo, env and learner come from the checkpoint unless set there.
    - A run folder that already ran (``resume=auto``): continue from its newest good
      checkpoint, cutting its logs back to that point; with no checkpoint yet, start over in
      place; a finished run without checkpoints is left as it is.
    - ``checkpoint_path`` otherwise: continue from that checkpoint's full state in
      this folder, or with ``finetune=true`` start from its network weights only.
    - ``parallel_jobs``: jobs sharing this machine's CPUs (a local parallel sweep).
    """
    try:
        validate_config(cfg)  # before the folder is touched
    except UsageError:
        RunFolder(run_dir).remove_if_unused()  # the folder Hydra made for this attempt
        raise
    evaluating = bool(cfg.evaluate or cfg.save_replay)
    with claim_run_folder(run_dir, cfg.resume, evaluating) as folder:
        save_hydra_files(folder.path, cfg)
        _run_in(cfg, folder.path, evaluating, overrides, parallel_jobs)


def _run_in(
    cfg: DictConfig,
    run_dir: Path,
    evaluating: bool,
    overrides: list[str] | None,
    parallel_jobs: int,
) -> None:
    """``run`` once the folder is held."""
    from marl.experiment import CHECKPOINTS, FINISHED, RESOLVED_CONFIG, Experiment

    # Pick the checkpoint first, so that a bad path fails before anything is built.
    source = select_checkpoint(cfg.checkpoint_path, cfg.load_step) if cfg.checkpoint_path else None
    mode = "eval" if evaluating else "weights" if cfg.finetune else "resume"
    if evaluating and source is not None and overrides is not None:
        adopt_checkpoint_config(cfg, source, overrides)

    restart_in_place = False
    own = run_dir / CHECKPOINTS
    if not evaluating and ((run_dir / RESOLVED_CONFIG).exists() or own.is_dir()):
        good = newest_good_checkpoint(own)
        if good is not None:
            source, mode = good, "resume"
            log.info("resuming this run from its latest checkpoint %s", source)
        elif own.is_dir():
            restart_in_place = True
            log.warning("%s stopped before its first checkpoint; starting it over", run_dir)
        elif (run_dir / FINISHED).is_file():
            finished_at = int((run_dir / FINISHED).read_text().split()[0])
            if finished_at >= cfg.t_max:
                log.info("%s already finished (t_env %d); nothing to do", run_dir, finished_at)
                return
            raise UsageError(
                f"{run_dir} holds a run that finished at t_env {finished_at} without "
                "checkpoints to continue from (save_model=false); use resume=never for a new "
                f"folder beside it, or another {run_dir_key()}."
            )
        else:
            raise UsageError(
                f"{run_dir} holds a run that stopped without a checkpoint to resume from "
                f"(save_model=false); use resume=never for a new folder beside it, or another "
                f"{run_dir_key()}."
            )

    experiment = Experiment(cfg, run_dir, parallel_jobs=parallel_jobs)
    if restart_in_place:
        experiment.restart_in_place()
    if source is not None:
        experiment.load(source, mode)
    if evaluating:
        result = experiment.evaluate()
        (run_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
        log.info("evaluation: %s", json.dumps(result))
        return
    experiment.train()


def newest_good_checkpoint(root: Path) -> Path | None:
    """The run's newest checkpoint that verifies. Newer damaged ones are moved aside (kept,
    renamed ``damaged-<step>``) with a warning; with none good but some damaged, an error."""
    good, bad = newest_good_step(root)
    for step_dir, reason in bad:
        moved = move_aside(step_dir)
        log.warning("%s It is kept as %s; resuming from %s.", reason, moved, good or "the start")
    if good is None and bad:
        raise CheckpointError(
            f"no checkpoint of {root.parent} can be loaded (each is named above, moved aside "
            "but kept); use resume=never to start a new run beside it."
        )
    return good


def run_dir_key() -> str:
    """The setting that names this job's folder: ``hydra.sweep.dir`` in a sweep."""
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return "hydra.sweep.dir" if multirun else "hydra.run.dir"


def parallel_jobs_here() -> int:
    """Jobs of this sweep that share this machine's CPUs: a local parallel launcher's
    ``n_jobs`` (joblib: -1 is every CPU, -2 all but one, ...); 1 otherwise (one job at a
    time, or SLURM, which gives each job its own CPUs)."""
    hydra_cfg = HydraConfig.get()
    n_jobs = OmegaConf.select(hydra_cfg.launcher, "n_jobs", default=None)
    if hydra_cfg.mode != RunMode.MULTIRUN or n_jobs is None:
        return 1
    return max(1, int(n_jobs) if n_jobs > 0 else usable_cpus() + 1 + int(n_jobs))


def error_sentence(err: BaseException) -> str:
    """The one sentence ``marl-train`` prints for an error a user can cause."""
    if isinstance(err, InstantiationException):
        if isinstance(err.__cause__, UsageError):  # e.g. an env's missing optional package
            return str(err.__cause__)
        text = str(err)
        return text.splitlines()[-2] if "\n" in text else text
    if isinstance(err, OSError) and not isinstance(err, FileExistsError) and err.filename:
        return f"cannot write {err.filename}: {err.strerror or err}."
    return str(err)


USER_ERRORS = (UsageError, FileExistsError, InstantiationException, OSError)


@hydra.main(version_base="1.3", config_path="pkg://marl.conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweep_job = hydra_cfg.mode == RunMode.MULTIRUN
    job = hydra_cfg.job.num if sweep_job else 0
    failure = Path(hydra_cfg.sweep.dir) / FAILED_JOBS / f"{job}.txt"
    if sweep_job:
        failure.unlink(missing_ok=True)  # a rerun of the sweep starts this job afresh
    try:
        run(cfg, run_dir, list(hydra_cfg.overrides.task), parallel_jobs_here())
    except Interrupted as stop:
        log.warning("%s", stop)
        if stop.forward is not None:  # submitit's requeue: the checkpoint is on disk now
            stop.forward(stop.signum, None)
        sys.exit(stop.exit_code)
    except USER_ERRORS as err:
        sentence = error_sentence(err)
        log.error("%s", sentence)
        if not sweep_job:
            sys.exit(1)
        # One failed job does not stop the others; the sweep reports it at the end.
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(f"#{job} [{' '.join(hydra_cfg.overrides.task)}]: {sentence}\n")
    finally:
        release_job_memory()


class SweepReport(Callback):
    """At the end of a sweep: name every job that failed, and exit 1 if any did."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(config.hydra.sweep.dir) / FAILED_JOBS
        reports = sorted(folder.glob("*.txt"), key=lambda p: int(p.stem)) if folder.is_dir() else []
        if not reports:
            return
        lines = [p.read_text().strip() for p in reports]
        log.error(
            "%d job(s) of this sweep failed, the others ran; rerun the same command to retry "
            "them (finished jobs are skipped):\n%s",
            len(lines),
            "\n".join(lines),
        )
        sys.exit(1)


def preflight(argv: list[str]) -> None:
    """What Hydra would fail on with a traceback, checked before it starts: a SLURM
    launcher where there is no SLURM, and an output folder that cannot be written."""
    values = dict(arg.split("=", 1) for arg in argv if "=" in arg and not arg.startswith("-"))
    launcher = values.get("hydra/launcher", "")
    if launcher in ("slurm", "submitit_slurm") and shutil.which("sbatch") is None:
        raise UsageError(
            f"hydra/launcher={launcher} needs SLURM, and there is no sbatch on this machine's "
            "PATH; run it on a SLURM login node, or use hydra/launcher=local_parallel here."
        )
    key = "hydra.sweep.dir" if ("-m" in argv or "--multirun" in argv) else "hydra.run.dir"
    check_writable(Path(values.get(key, "outputs")), key)


def check_writable(target: Path, key: str) -> None:
    """The nearest existing folder at or above ``target`` is writable with some free space."""
    existing = target.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        raise UsageError(
            f"cannot create run folders in {target}: {existing} is not writable (read-only "
            f"disk or no permission); run from a writable folder or set {key}=<writable path>."
        )
    free_mb = shutil.disk_usage(existing).free / 2**20
    if free_mb < MIN_FREE_MB:
        raise UsageError(
            f"cannot start a run in {target}: the disk holding {existing} has {free_mb:.1f} MB "
            f"free; free some space or set {key}=<a folder on another disk>."
        )


def release_job_memory() -> None:
    """Sequential multirun jobs share a process: free what one job cached for the next."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    register_configs()
    try:
        preflight(sys.argv[1:])
        _hydra_main()
    except UsageError as err:
        print(f"[marl][ERROR] - {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(
            "[marl][WARNING] - interrupted: stopped at once (checkpoints saved before are "
            "kept; rerun the same command to resume from the latest).",
            file=sys.stderr,
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
