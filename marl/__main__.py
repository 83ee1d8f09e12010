"""``python -m marl`` is ``marl-train``."""

from marl.train import main

main()
