#!/usr/bin/env python
"""Learning curves, a summary table and a marl-eval export from run or sweep folders.

    python scripts/plot.py outputs/multirun/2026-11-24 --out results/
    python scripts/plot.py outputs/qmix outputs/vdn --metric test/return_mean \
        --metric test/battle_won_mean --out results/

Writes ``<metric>.png`` and ``.svg`` (a panel per env/task, mean and 95% bootstrap CI
across seeds per algorithm), ``summary.md``, ``summary.csv`` and ``marl_eval.json``
into ``--out``. All the work is in :mod:`marl.results`; ``--help`` lists the options.
"""

from __future__ import annotations

import sys

from marl.results import main

if __name__ == "__main__":
    sys.exit(main())
