"""SMAC's env_args that the built-in battle simulator and the real `sc2` env share.

Both schemas extend `SMACArgs`, so the names, defaults and meaning of SMAC's reward
and observation flags are declared once (PyMARL's `sc2` env_args, SMAC's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from marl.validation import bounds


@dataclass
class SMACArgs:
    """SMAC's map, time, reward and observation settings."""

    map_name: str = "3m"
    """SMAC map name."""
    step_mul: int = field(default=8, metadata=bounds(1))
    """Game loops per agent step."""
    move_amount: float = field(default=2.0, metadata=bounds(0, low_open=True))
    """How far away a move order points."""
    continuing_episode: bool = False
    """A timeout is a truncation (info episode_limit True, bootstrapped), as SMAC."""
    reward_sparse: bool = False
    """+1 for a win, -1 for a loss, nothing else."""
    reward_only_positive: bool = True
    """Reward is abs(damage dealt + kill bonus); ally losses are ignored."""
    reward_death_value: float = field(default=10.0, metadata=bounds(0))
    """Bonus per enemy killed (and penalty per ally lost when not only positive)."""
    reward_win: float = field(default=200.0, metadata=bounds(0))
    """Bonus for winning."""
    reward_defeat: float = field(default=0.0, metadata=bounds(high=0))
    """Bonus (<= 0) for losing."""
    reward_negative_scale: float = field(default=0.5, metadata=bounds(0))
    """Weight of damage taken and allies lost when not only positive."""
    reward_scale: bool = True
    """Divide rewards by max_reward / reward_scale_rate (a perfect episode returns ~20)."""
    reward_scale_rate: float = field(default=20.0, metadata=bounds(0, low_open=True))
    """A perfect episode returns about this much when scaling."""
    obs_all_health: bool = True
    """Observe the health (and shield) of every visible unit."""
    obs_own_health: bool = True
    """Observe the agent's own health (forced on by obs_all_health)."""
    obs_last_action: bool = False
    """Observe the last action of visible allies."""
    obs_pathing_grid: bool = False
    """Add the pathable cells around the agent (8) to its observation."""
    obs_terrain_height: bool = False
    """Add the terrain heights around the agent (9) to its observation."""
    obs_instead_of_state: bool = False
    """Use the concatenated observations as the state."""
    obs_timestep_number: bool = False
    """Append step / episode_limit to the observation."""
    state_last_action: bool = True
    """Append every agent's last action one-hot to the state."""
    state_timestep_number: bool = False
    """Append step / episode_limit to the state."""
