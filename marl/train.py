"""``marl-train``: the one entrypoint. Compose the config, then train or evaluate.

marl-train                                   # QMIX on the default env
marl-train algo=vdn env.game=climbing seed=2
marl-train -m algo=qmix,vdn seed=1,2,3       # a sweep
marl-train checkpoint_path=outputs/<run> evaluate=true
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from marl.checkpoint import list_steps, select_checkpoint
from marl.config import register_configs, register_resolvers
from marl.errors import UsageError

log = logging.getLogger("marl")

# Launchers (joblib, submitit) unpickle the task function in fresh processes and
# resolve the run folder name there, before it runs: the resolver must exist as
# soon as this module is imported.
register_resolvers()


RESUME_MODES = ("auto", "never")


def fresh_sibling(run_dir: Path) -> Path:
    """``<run dir>_<k>`` for the smallest free k, with this launch's ``.hydra`` copied in."""
    k = 1
    while (candidate := run_dir.with_name(f"{run_dir.name}_{k}")).exists():
        k += 1
    candidate.mkdir(parents=True)
    if (run_dir / ".hydra").is_dir():
        shutil.copytree(run_dir / ".hydra", candidate / ".hydra")
    return candidate


def run(cfg: DictConfig, run_dir: Path) -> None:
    """Train (fresh, resumed or fine-tuned) or evaluate a checkpoint, in ``run_dir``.

    - ``evaluate=true`` (or ``save_replay=true``): load ``checkpoint_path``, play
      ``test_nepisode`` greedy episodes, write ``eval.json``.
    - A run folder that already ran (``resume=auto``): continue from its latest
      complete checkpoint, cutting its logs back to that point; with no complete
      checkpoint yet, start over in place. ``resume=never``: a new sibling folder.
    - ``checkpoint_path`` otherwise: continue from that checkpoint's full state in
      this folder, or with ``finetune=true`` start from its network weights only.
    """
    from marl.experiment import CHECKPOINTS, RESOLVED_CONFIG, Experiment

    evaluating = bool(cfg.evaluate or cfg.save_replay)
    if cfg.resume not in RESUME_MODES:
        raise UsageError(f"resume must be one of {', '.join(RESUME_MODES)}, got {cfg.resume!r}.")
    if evaluating and not cfg.checkpoint_path:
        raise UsageError("evaluate=true needs checkpoint_path=<run or checkpoints folder>.")
    if cfg.finetune and (evaluating or not cfg.checkpoint_path):
        raise UsageError("finetune=true needs checkpoint_path and trains (no evaluate=true).")
    # Pick the checkpoint first, so that a bad path fails before anything is built.
    source = select_checkpoint(cfg.checkpoint_path, cfg.load_step) if cfg.checkpoint_path else None
    mode = "eval" if evaluating else "weights" if cfg.finetune else "resume"

    restart_in_place = False
    own = run_dir / CHECKPOINTS
    if not evaluating and ((run_dir / RESOLVED_CONFIG).exists() or own.is_dir()):
        complete, _ = list_steps(own)
        if cfg.resume == "never":
            run_dir = fresh_sibling(run_dir)
            log.info("resume=never: this run starts fresh in %s", run_dir)
        elif complete:
            source, mode = own / str(complete[-1]), "resume"
            log.info("resuming this run from its latest checkpoint %s", source)
        elif own.is_dir():
            restart_in_place = True
            log.warning("%s stopped before its first checkpoint; starting it over", run_dir)

    experiment = Experiment(cfg, run_dir)
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


@hydra.main(version_base="1.3", config_path="pkg://marl.conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run(cfg, run_dir)
    except (UsageError, FileExistsError) as err:
        log.error("%s", err)
        sys.exit(1)
    except InstantiationException as err:
        if isinstance(err.__cause__, UsageError):  # e.g. an env's missing optional package
            log.error("%s", err.__cause__)
        else:
            log.error("%s", str(err).splitlines()[-2] if "\n" in str(err) else err)
        sys.exit(1)
    finally:
        release_job_memory()


def release_job_memory() -> None:
    """Sequential multirun jobs share a process: free what one job cached for the next."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main() -> None:
    register_configs()
    _hydra_main()


if __name__ == "__main__":
    main()
