"""marl: cooperative multi-agent reinforcement learning from one Hydra command line."""

__version__ = "0.1.0"
