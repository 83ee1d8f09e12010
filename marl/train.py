"""``marl-train``: the one entrypoint. Compose the config, then train or evaluate.

marl-train                                   # QMIX on the default env
marl-train algo=vdn env.game=climbing seed=2
marl-train -m algo=qmix,vdn seed=1,2,3       # a sweep
marl-train checkpoint_path=outputs/<run> evaluate=true
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from marl.config import register_configs
from marl.errors import UsageError

log = logging.getLogger("marl")


def run(cfg: DictConfig, run_dir: Path) -> None:
    """Train, or evaluate a checkpoint, in ``run_dir``."""
    from marl.experiment import Experiment

    if (cfg.evaluate or cfg.save_replay) and not cfg.checkpoint_path:
        raise UsageError("evaluate=true needs checkpoint_path=<run or checkpoints folder>.")
    experiment = Experiment(cfg, run_dir)
    if cfg.checkpoint_path:
        experiment.load(cfg.checkpoint_path, cfg.load_step)
    if cfg.evaluate or cfg.save_replay:
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
        log.error("%s", str(err).splitlines()[-2] if "\n" in str(err) else err)
        sys.exit(1)


def main() -> None:
    register_configs()
    _hydra_main()


if __name__ == "__main__":
    main()
