"""Episode storage: schemes, padded episode batches and the episode replay buffer."""

from marl.data.episode_batch import EpisodeBatch
from marl.data.replay_buffer import EpisodeReplayBuffer
from marl.data.scheme import Field, Scheme, compact_index_dtype

__all__ = [
    "EpisodeBatch",
    "EpisodeReplayBuffer",
    "Field",
    "Scheme",
    "compact_index_dtype",
]
