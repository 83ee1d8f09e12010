"""Known-answer tests for marl.learners.q_learning (IQL / VDN / QMIX Q-learning)."""

from __future__ import annotations

import copy
import functools
from typing import cast

import pytest
import torch
from torch import nn

import marl.learners.q_learning as ql
from marl.controllers.mac import MultiAgentController
from marl.data.episode_batch import EpisodeBatch
from marl.envs.base import EnvInfo
from marl.errors import UsageError
from marl.learners.common import Learner, valid_transitions
from marl.learners.q_learning import QLearner, next_action_values
from marl.modules.agents.rnn import RNNAgent
from marl.modules.mixers.qmix import QMixer
from marl.modules.mixers.qplex import QPLEXMixer
from marl.modules.mixers.vdn import VDNMixer
from marl.ops.returns import td_lambda_targets
from marl.runners.episode import transition_scheme

N_AGENTS, N_ACTIONS, OBS, STATE = 2, 3, 4, 5
INFO = EnvInfo(N_AGENTS, N_ACTIONS, OBS, STATE, episode_limit=4)


# ----------------------------------------------------------------------------- helpers
def make_batch(
    lengths: list[int],
    terminal: list[int | None],
    seed: int = 0,
    info: EnvInfo = INFO,
) -> EpisodeBatch:
    """Random episodes with ``lengths[b]`` filled steps and a terminated flag at ``terminal[b]``.

    Every step holds data (as in the runner, padding may be written); ``filled`` marks the
    first ``lengths[b]`` steps only. Filled steps have at least one available action per
    agent and the chosen action is always available; unfilled steps have none available.
    """
    g = torch.Generator().manual_seed(seed)
    b, steps = len(lengths), info.episode_limit + 1
    n, a = info.n_agents, info.n_actions
    batch = EpisodeBatch(transition_scheme(info), b, steps)
    avail = torch.rand(b, steps, n, a, generator=g) < 0.6  # (B, T+1, N, A)
    avail[..., 0] |= ~avail.any(-1)  # at least one available action
    actions = torch.multinomial(avail.reshape(-1, a).float(), 1, generator=g).view(b, steps, n, 1)
    terminated = torch.zeros(b, steps, 1, dtype=torch.bool)
    for i, (length, t_end) in enumerate(zip(lengths, terminal, strict=True)):
        avail[i, length:] = False
        if t_end is not None:
            terminated[i, t_end] = True
    values = {
        "state": torch.randn(b, steps, info.state_shape, generator=g),
        "obs": torch.randn(b, steps, n, info.obs_shape, generator=g),
        "avail_actions": avail,
        "actions": actions,
        "reward": torch.randn(b, steps, 1, generator=g),
        "terminated": terminated,
    }
    batch.update(values, ts=slice(None), mark_filled=False)
    for t in range(steps):
        batch.mark_filled(t, torch.tensor([t < length for length in lengths]))
    return batch


def make_mac(seed: int = 0, hidden_dim: int = 8, info: EnvInfo = INFO) -> MultiAgentController:
    torch.manual_seed(seed)
    agent = functools.partial(RNNAgent, hidden_dim=hidden_dim)
    return MultiAgentController(agent, info)


def make_mixer(kind: str | None, seed: int = 0) -> nn.Module | None:
    torch.manual_seed(seed)
    if kind == "vdn":
        return VDNMixer(INFO)
    if kind == "qmix":
        return QMixer(INFO, embed_dim=8, hypernet_embed=16)
    if kind == "qplex":
        return QPLEXMixer(INFO, hypernet_embed=16, attention_layers=2, attention_embed=8)
    return None


def perturb_(module: nn.Module | None, seed: int, scale: float = 0.5) -> None:
    """Add noise to every parameter, so target and live networks differ."""
    if module is None:
        return
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def flat_params(module: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def record(monkeypatch: pytest.MonkeyPatch, name: str) -> list[torch.Tensor]:
    """Wrap ``marl.learners.q_learning.<name>`` to record the tensors it returns."""
    out: list[torch.Tensor] = []
    fn = getattr(ql, name)

    def wrapper(*args: object, **kwargs: object) -> torch.Tensor:
        result = fn(*args, **kwargs)
        out.append(result.clone())
        return result

    monkeypatch.setattr(ql, name, wrapper)
    return out


# ----------------------------------------------------------------------------- valid_transitions
def test_valid_transitions_known_answer() -> None:
    info = EnvInfo(N_AGENTS, N_ACTIONS, OBS, STATE, episode_limit=4)  # 5 stored steps, T=4
    batch = make_batch(
        lengths=[5, 5, 3, 2, 5],
        terminal=[3, 1, None, 0, 0],
        info=info,
    )
    # Also flag a second termination later in episode 4 (must not "re-open" anything).
    batch["terminated"][4, 2] = True
    expected = torch.tensor(
        [
            [1, 1, 1, 1],  # ep0: full length, terminates at the last transition t=3
            [1, 1, 0, 0],  # ep1: terminates at t=1; steps 2..4 still filled -> masked
            [1, 1, 0, 0],  # ep2: truncated, 3 filled steps: t=1 valid (next state t=2 filled)
            [1, 0, 0, 0],  # ep3: terminates at t=0, then padding
            [1, 0, 0, 0],  # ep4: terminates at t=0 and again at t=2, all filled
        ],
        dtype=torch.bool,
    ).unsqueeze(-1)
    out = valid_transitions(batch)
    assert out.shape == (5, 4, 1) and out.dtype == torch.bool
    assert torch.equal(out, expected)


def test_valid_transitions_padding_only_and_terminal_flag_on_padding() -> None:
    batch = make_batch(lengths=[0, 1, 4], terminal=[None, None, None])
    batch["terminated"][2, 3] = True  # flag on the transition whose next state is unfilled
    out = valid_transitions(batch)[..., 0]
    # ep0: nothing filled; ep1: one state, no transition; ep2: 4 states -> transitions 0, 1, 2
    expected = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    assert torch.equal(out, expected)


# ----------------------------------------------------------------------------- next_action_values
def _t(x: list) -> torch.Tensor:
    """(N, A) nested list -> (B=1, T=1, N, A) tensor."""
    return torch.tensor(x).view(1, 1, len(x), -1)


def test_next_action_values_max_over_available_only() -> None:
    target = _t([[5.0, 1.0, 2.0], [0.0, -3.0, -1.0]])
    avail = _t([[False, True, True], [True, True, False]])
    out = next_action_values(target, None, avail)
    # agent0: max(1, 2) = 2 (5 is unavailable); agent1: max(0, -3) = 0 (-1 unavailable)
    assert torch.equal(out.values, torch.tensor([[[2.0, 0.0]]]))
    assert torch.equal(out.actions, torch.tensor([[[[2], [0]]]]))  # the target's argmax
    assert torch.equal(out.max_values, out.values)


def test_next_action_values_double_q() -> None:
    live = _t([[1.0, 3.0, 2.0], [9.0, 1.0, 2.0], [0.0, 5.0, 4.0]])
    target = _t([[10.0, 4.0, 7.0], [-1.0, 4.0, 7.0], [1.0, 2.0, 8.0]])
    avail = _t([[True, True, True], [False, True, True], [True, False, True]])
    out = next_action_values(target, live, avail)
    # agent0: live argmax = 1 -> target[1] = 4 (target's own max would be 10)
    # agent1: live argmax over {1, 2} = 2 (action 0 is unavailable) -> target[2] = 7
    # agent2: live argmax over {0, 2} = 2 -> target[2] = 8
    assert torch.equal(out.values, torch.tensor([[[4.0, 7.0, 8.0]]]))
    assert torch.equal(out.actions, torch.tensor([[[[1], [2], [2]]]]))
    # the target's own max over available actions, which without double Q is the value
    assert torch.equal(out.max_values, torch.tensor([[[10.0, 7.0, 8.0]]]))
    assert torch.equal(next_action_values(target, None, avail).values, out.max_values)


@pytest.mark.parametrize("double_q", [False, True])
def test_next_action_values_padding_is_exactly_zero(double_q: bool) -> None:
    target = _t([[1e30, -1e30, 5.0], [3.0, 4.0, 5.0]])
    live = _t([[7.0, 8.0, 9.0], [1.0, 0.0, 0.0]]) if double_q else None
    avail = _t([[False, False, False], [True, True, False]])
    out = next_action_values(target, live, avail)
    # agent0 is padding -> 0; agent1: double: live argmax 0 -> 3, else max(3, 4) = 4
    expected = torch.tensor([[[0.0, 3.0 if double_q else 4.0]]])
    assert torch.isfinite(out.values).all()
    assert torch.equal(out.values, expected)
    assert torch.equal(out.max_values, torch.tensor([[[0.0, 4.0]]]))  # padding: 0 too


# ----------------------------------------------------------------------------- one-step targets
class TableMAC(nn.Module):
    """A controller whose Q-values are a fixed table (B, T+1, N, A) for one batch."""

    steps_independent = False  # the table is the whole sequence: it cannot unroll a part

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone())

    def unroll_steps(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.table  # (B, T + 1, N, A)


def table_problem() -> tuple[EpisodeBatch, torch.Tensor, torch.Tensor]:
    """B=2 episodes of 3 stored steps (T=2 transitions), N=2 agents, A=3 actions.

    ep0: terminates at t=1, rewards (1, 2); ep1: truncated after one transition, reward 3,
    step 2 is padding (no available action). Returns (batch, live table, target table).
    """
    info = EnvInfo(2, 3, 1, 1, episode_limit=2)
    batch = EpisodeBatch(transition_scheme(info), 2, 3)
    yes, no = True, False
    avail = torch.tensor(
        [
            [[[yes] * 3] * 2, [[yes, yes, no], [no, yes, yes]], [[yes] * 3] * 2],
            [[[yes] * 3] * 2, [[yes, yes, no], [no, yes, yes]], [[no] * 3] * 2],
        ]
    )  # (B, 3, N, A)
    actions = torch.tensor([[[0, 1], [1, 2], [0, 0]], [[2, 1], [0, 0], [0, 0]]])  # (B, 3, N)
    batch.update(
        {
            "state": torch.zeros(2, 3, 1),
            "obs": torch.zeros(2, 3, 2, 1),
            "avail_actions": avail,
            "actions": actions.unsqueeze(-1),
            "reward": torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0]]),
            "terminated": torch.tensor([[no, yes, no], [no, no, no]]),
        },
        ts=slice(None),
        mark_filled=False,
    )
    batch.mark_filled(0, torch.tensor([yes, yes]))
    batch.mark_filled(1, torch.tensor([yes, yes]))
    batch.mark_filled(2, torch.tensor([yes, no]))
    z = [0.0, 0.0, 0.0]
    live = torch.tensor(
        [
            [[[0.5, 0, 0], [0, 1.0, 0]], [[5.0, 0, 0], [0, 0, 1.0]], [[9.0] * 3] * 2],
            [[[0, 0, 2.0], [0, -1.0, 0]], [[1.0, 0, 50.0], [100.0, -1.0, 0]], [[7.0, 8, 9]] * 2],
        ]
    )
    target = torch.tensor(
        [
            [[z, z], [[1.0, 2, 9], [7.0, 3, 4]], [[1000.0] * 3] * 2],
            [[z, z], [[0.0, 6, 100], [-100.0, -2, -4]], [[500.0] * 3] * 2],
        ]
    )
    return batch, live, target


# Chosen Q (live table at steps 0, 1 and the taken actions):
#   ep0 t0: [0.5, 1.0]   ep0 t1: [0, 1]   ep1 t0: [2.0, -1.0]
# Next values (step 1 avail: agent0 {0, 1}, agent1 {1, 2}; gamma = 0.5):
#   double:  ep0: agent0 live argmax 0 -> target 1; agent1 live argmax 2 -> 4
#            ep1: agent0 live argmax 0 -> target 0; agent1 live argmax 2 -> -4
#   max:     ep0: max(1, 2) = 2, max(3, 4) = 4;  ep1: max(0, 6) = 6, max(-2, -4) = -2
# ep0 t1 is terminal (target = r = 2, the 1000s at step 2 are ignored); ep1 t1 is padding
# (r = 0, V = 0 since nothing is available at step 2 -> target 0, masked out of the loss).
CASES = {
    # IQL double: ep0 t0 1 + .5*1 = 1.5, 1 + .5*4 = 3;  ep1 t0 3 + .5*0 = 3, 3 + .5*-4 = 1
    # td^2: (0.5-1.5)^2=1, (1-3)^2=4, (0-2)^2=4, (1-2)^2=1, (2-3)^2=1, (-1-1)^2=4 -> 15/6
    ("iql", True): ([[[1.5, 3.0], [2.0, 2.0]], [[3.0, 1.0], [0.0, 0.0]]], 15 / 6),
    # IQL max: ep0 t0 1 + .5*2 = 2, 1 + .5*4 = 3;  ep1 t0 3 + .5*6 = 6, 3 + .5*-2 = 2
    # td^2: 2.25, 4, 4, 1, (2-6)^2=16, (-1-2)^2=9 -> 36.25/6
    ("iql", False): ([[[2.0, 3.0], [2.0, 2.0]], [[6.0, 2.0], [0.0, 0.0]]], 36.25 / 6),
    # VDN double: ep0 t0 1 + .5*(1+4) = 3.5;  ep1 t0 3 + .5*(0-4) = 1
    # chosen sums 1.5, 1, 1 -> td^2: 4, 1, 0 -> 5/3
    ("vdn", True): ([[[3.5], [2.0]], [[1.0], [0.0]]], 5 / 3),
    # VDN max: ep0 t0 1 + .5*(2+4) = 4;  ep1 t0 3 + .5*(6-2) = 5 -> td^2: 6.25, 1, 16 -> 23.25/3
    ("vdn", False): ([[[4.0], [2.0]], [[5.0], [0.0]]], 23.25 / 3),
}


@pytest.mark.parametrize(("kind", "double_q"), list(CASES))
def test_one_step_targets_known_answer(
    monkeypatch: pytest.MonkeyPatch, kind: str, double_q: bool
) -> None:
    batch, live, target = table_problem()
    expected_targets, expected_loss = CASES[(kind, double_q)]
    mixer = VDNMixer(EnvInfo(2, 3, 1, 1, episode_limit=2)) if kind == "vdn" else None
    learner = QLearner(TableMAC(live), mixer, gamma=0.5, double_q=double_q)
    with torch.no_grad():
        learner.targets["mac"].table.copy_(target)
    seen = record(monkeypatch, "one_step_targets")
    stats = learner.train(batch, t_env=0, episode=0)
    assert len(seen) == 1
    assert torch.equal(seen[0], torch.tensor(expected_targets))
    # valid transitions: ep0 t0, ep0 t1, ep1 t0 (x 2 agents for IQL)
    valid_targets = torch.tensor(expected_targets)[[0, 0, 1], [0, 1, 0]]
    target_mean = valid_targets.mean().item()
    assert stats["learner/target_mean"] == pytest.approx(target_mean, abs=1e-6)
    assert stats["learner/loss"] == pytest.approx(expected_loss, abs=1e-6)


def test_td_lambda_known_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """IQL, double Q, lambda = 0.5 on the table problem."""
    batch, live, target = table_problem()
    learner = QLearner(TableMAC(live), None, gamma=0.5, double_q=True, td_lambda=0.5)
    with torch.no_grad():
        learner.targets["mac"].table.copy_(target)
    seen = record(monkeypatch, "td_lambda_targets")
    stats = learner.train(batch, t_env=0, episode=0)
    # G_t = r_t + g (1 - d_t) [(1 - lam) V_{t+1} + lam G'_{t+1}], G' = G if t+1 valid else V.
    # ep0: G1 = 2 (terminal); G0 = 1 + .5 * (.5 * V1 + .5 * 2) with V1 = (1, 4)
    #      -> agent0 1 + .5 * 1.5 = 1.75, agent1 1 + .5 * 3 = 2.5
    # ep1: G1 = 0 + .5 * 0 = 0 (padding); t=1 invalid so G'_1 = V1 = (0, -4):
    #      G0 = 3 + .5 * V1 = (3, 1), the one-step answer
    expected = torch.tensor([[[1.75, 2.5], [2.0, 2.0]], [[3.0, 1.0], [0.0, 0.0]]])
    assert len(seen) == 1
    assert torch.equal(seen[0], expected)
    # target mean over the 6 valid (transition, agent) pairs: (1.75+2.5+2+2+3+1)/6
    assert stats["learner/target_mean"] == pytest.approx(12.25 / 6, abs=1e-6)


class RecordingMixer(nn.Module):
    """VDN that records the joint action and max Qs of each call (QPLEX's inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(
        self,
        agent_qs: torch.Tensor,
        states: torch.Tensor,
        actions: torch.Tensor,
        max_qs: torch.Tensor,
    ) -> torch.Tensor:
        self.calls.append((actions.clone(), max_qs.clone()))
        return agent_qs.sum(dim=-1, keepdim=True)  # (B, T, 1)


@pytest.mark.parametrize("double_q", [True, False])
def test_the_mixer_sees_the_joint_actions_and_max_qs_of_both_sides(double_q: bool) -> None:
    """Table problem. Live side: the taken actions and each agent's live max over its
    available actions at steps 0, 1. Target side: the next actions (the live argmax with
    double Q, else the target's) and the target's max at steps 1, 2; padding gets 0."""
    batch, live, target = table_problem()
    learner = QLearner(TableMAC(live), RecordingMixer(), gamma=0.5, double_q=double_q)
    with torch.no_grad():
        learner.targets["mac"].table.copy_(target)
    learner.train(batch, t_env=0, episode=0)
    ((live_actions, live_max),) = cast(RecordingMixer, learner.mixer).calls
    ((next_actions, next_max),) = cast(RecordingMixer, learner.targets["mixer"]).calls
    assert torch.equal(live_actions, batch["actions"][:, :-1].long())
    # step 0: every action available; step 1: agent0 {0, 1}, agent1 {1, 2}
    expected_live_max = [[[0.5, 1.0], [5.0, 1.0]], [[2.0, 0.0], [1.0, 0.0]]]
    assert torch.equal(live_max, torch.tensor(expected_live_max))
    # step 1: live argmax (0, 2) in both episodes, target argmax (1, 2) and (1, 1);
    # step 2: ep0 all 1000s (argmax 0), ep1 padding (action 0, max 0)
    step1 = [[0, 2], [0, 2]] if double_q else [[1, 2], [1, 1]]
    expected_actions = [[step1[0], [0, 0]], [step1[1], [0, 0]]]
    assert torch.equal(next_actions.squeeze(-1), torch.tensor(expected_actions))
    expected_next_max = [[[2.0, 4.0], [1000.0, 1000.0]], [[6.0, -2.0], [0.0, 0.0]]]
    assert torch.equal(next_max, torch.tensor(expected_next_max))


def independent_targets(
    learner: QLearner, batch: EpisodeBatch, td_lambda: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Targets, chosen Qs and mask computed without the learner's own helpers.

    Uses the learner's (live and target) networks, before its update.
    """
    with torch.no_grad():
        q = learner.mac.unroll_steps(batch.float("obs"), batch["actions"])  # (B, T+1, N, A)
        tq = learner.targets["mac"].unroll_steps(
            batch.float("obs"), batch["actions"]
        )  # (B, T+1, N, A)
    b, steps, n, _ = q.shape
    avail = batch["avail_actions"]
    filled = batch["filled"][..., 0]
    term = batch["terminated"][..., 0]
    next_v = torch.zeros(b, steps - 1, n)
    mask = torch.zeros(b, steps - 1, 1)
    for i in range(b):
        ended = False
        for t in range(steps - 1):
            mask[i, t] = float(bool(filled[i, t]) and bool(filled[i, t + 1]) and not ended)
            ended = ended or bool(term[i, t])
            for k in range(n):
                ok = [a for a in range(q.shape[-1]) if avail[i, t + 1, k, a]]
                if not ok:
                    continue  # padding: value 0
                if learner.double_q:
                    best = max(ok, key=lambda a, i=i, t=t, k=k: q[i, t + 1, k, a].item())
                    next_v[i, t, k] = tq[i, t + 1, k, best]
                else:
                    next_v[i, t, k] = max(tq[i, t + 1, k, a].item() for a in ok)
    actions = batch["actions"][:, :-1].long()
    chosen = q[:, :-1].gather(-1, actions).squeeze(-1)  # (B, T, N)
    states = batch["state"]
    if learner.mixer is not None:
        with torch.no_grad():
            chosen = learner.mixer(chosen, states[:, :-1])
            next_v = learner.targets["mixer"](next_v, states[:, 1:])
    rewards = batch["reward"][:, :-1]
    d = batch["terminated"][:, :-1].float()
    if td_lambda > 0:
        targets = td_lambda_targets(rewards, d, mask, next_v, learner.gamma, td_lambda)
    else:
        targets = rewards + learner.gamma * (1 - d) * next_v
    return targets, chosen, mask


@pytest.mark.parametrize("td_lambda", [0.0, 0.6])
@pytest.mark.parametrize("double_q", [True, False])
@pytest.mark.parametrize("mixer_kind", [None, "vdn", "qmix"])
def test_targets_match_target_network(
    mixer_kind: str | None, double_q: bool, td_lambda: float
) -> None:
    """Stats of one train() call equal r + gamma (1 - d) V' computed from the target nets."""
    batch = make_batch(lengths=[5, 5, 3, 4], terminal=[3, 1, None, None], seed=3)
    learner = QLearner(
        make_mac(1), make_mixer(mixer_kind, 2), gamma=0.9, double_q=double_q, td_lambda=td_lambda
    )
    perturb_(learner.targets["mac"], seed=4)
    if mixer_kind is not None:
        perturb_(learner.targets["mixer"], seed=5)
    targets, chosen, mask = independent_targets(learner, batch, td_lambda)
    stats = learner.train(batch, t_env=0, episode=0)
    m = mask.expand_as(targets)
    assert stats["learner/target_mean"] == pytest.approx(
        (targets * m).sum().item() / m.sum().item(), rel=1e-5, abs=1e-6
    )
    loss = (((chosen - targets) ** 2) * m).sum() / m.sum()
    assert stats["learner/loss"] == pytest.approx(loss.item(), rel=1e-5, abs=1e-6)
    q_mean = (chosen * m).sum() / m.sum()
    assert stats["learner/q_taken_mean"] == pytest.approx(q_mean.item(), rel=1e-5, abs=1e-6)


# ----------------------------------------------------------------------------- optimisation
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
@pytest.mark.parametrize("mixer_kind", [None, "vdn", "qmix", "qplex"])
def test_loss_goes_down(mixer_kind: str | None, optimizer: str) -> None:
    batch = make_batch(lengths=[5, 4, 3], terminal=[4, None, 2], seed=7)
    learner = QLearner(
        make_mac(0, hidden_dim=16), make_mixer(mixer_kind), lr=0.01, optimizer=optimizer
    )
    losses = [learner.train(batch, t_env=0, episode=0)["learner/loss"] for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]


def test_updates_without_stats_are_the_same_updates() -> None:
    batch = make_batch(lengths=[5, 4, 3], terminal=[4, None, 2], seed=7)
    learners = [QLearner(make_mac(0, hidden_dim=16), make_mixer("qmix"), lr=0.01) for _ in "ab"]
    learners[1].load_state_dict(learners[0].state_dict())
    for _ in range(3):
        assert learners[1].train(batch, t_env=0, episode=0, stats=False) == {}
        assert "learner/loss" in learners[0].train(batch, t_env=0, episode=0)
    for a, b in zip(learners[0].params, learners[1].params, strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- target networks
def test_hard_target_update_schedule() -> None:
    """Both target networks are copied after the optimiser step of every third episode."""
    batch = make_batch(lengths=[5, 3], terminal=[4, None], seed=1)
    learner = QLearner(make_mac(), make_mixer("qmix"), lr=0.01, target_update_interval=3)

    def same() -> bool:
        live = learner.networks()
        mac_eq, mixer_eq = (
            torch.equal(flat_params(learner.targets[name]), flat_params(live[name]))
            for name in ("mac", "mixer")
        )
        assert mac_eq == mixer_eq
        return mac_eq

    assert same()  # starts as a copy
    # episode - last copy: 1, 2 < 3 -> no copy; 3 >= 3 -> copy
    for episode, copied in [(1, False), (2, False), (3, True), (4, False), (5, False), (7, True)]:
        learner.train(batch, t_env=0, episode=episode)
        assert same() == copied, episode
    assert learner.state_dict()["last_target_update_episode"] == 7


def test_soft_target_update_moves_by_tau() -> None:
    tau = 0.25
    batch = make_batch(lengths=[5, 3], terminal=[4, None], seed=1)
    learner = QLearner(make_mac(), make_mixer("qmix"), lr=0.01, tau=tau, target_update_interval=1)
    learner.train(batch, t_env=0, episode=10)  # target now differs from live
    before = {name: flat_params(learner.targets[name]) for name in ("mac", "mixer")}
    learner.train(batch, t_env=0, episode=1000)  # huge episode: still no hard copy with tau
    for name, live in learner.networks().items():
        # lerp: target <- target + tau * (live - target), live after this step's update
        old, new = before[name], flat_params(learner.targets[name])
        torch.testing.assert_close(new, old + tau * (flat_params(live) - old))
        assert not torch.equal(new, flat_params(live))


# ----------------------------------------------------------------------------- gradient clipping
def _grad_norm_at_step(learner: QLearner) -> list[float]:
    """Record the global gradient norm the optimiser sees at each step."""
    seen: list[float] = []

    def hook(opt: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        grads = [p.grad.reshape(-1) for p in learner.params if p.grad is not None]
        seen.append(torch.cat(grads).norm().item())

    learner.optimiser.register_step_pre_hook(hook)
    return seen


def test_grad_norm_is_pre_clip_and_update_is_clipped() -> None:
    batch = make_batch(lengths=[5, 4, 3], terminal=[4, None, 2], seed=5)
    mac, mixer = make_mac(3), make_mixer("qmix", 4)
    clip = 1e-3
    clipped = QLearner(copy.deepcopy(mac), copy.deepcopy(mixer), grad_norm_clip=clip)
    free = QLearner(copy.deepcopy(mac), copy.deepcopy(mixer), grad_norm_clip=1e9)
    seen_clipped, seen_free = _grad_norm_at_step(clipped), _grad_norm_at_step(free)
    stats_clipped = clipped.train(batch, t_env=0, episode=0)
    stats_free = free.train(batch, t_env=0, episode=0)
    raw = seen_free[0]  # no clipping happened here
    assert raw > 100 * clip
    assert stats_free["learner/grad_norm"] == pytest.approx(raw, rel=1e-5)
    # the reported norm is the norm before clipping ...
    assert stats_clipped["learner/grad_norm"] == pytest.approx(raw, rel=1e-5)
    # ... and the optimiser saw the clipped gradient
    assert seen_clipped[0] <= clip * (1 + 1e-4)
    assert seen_clipped[0] == pytest.approx(clip, rel=1e-3)


def test_standardised_rewards_known_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """IQL, double Q, rewards standardised by the moments of the real transitions only.

    Real rewards 1, 2, 3 (the padding reward 0 is not counted): mean 2, std sqrt(2/3),
    so r' = (-s, 0, s) with s = sqrt(3/2); targets are the double-Q case's with r'.
    """
    batch, live, target = table_problem()
    learner = QLearner(TableMAC(live), None, gamma=0.5, double_q=True, standardise_rewards=True)
    with torch.no_grad():
        learner.targets["mac"].table.copy_(target)
    seen = record(monkeypatch, "one_step_targets")
    learner.train(batch, t_env=0, episode=0)
    s = 1.5**0.5
    expected = torch.tensor([[[-s + 0.5, -s + 2.0], [0.0, 0.0]], [[s, s - 2.0], [-2 * s, -2 * s]]])
    torch.testing.assert_close(seen[0], expected)
    assert learner.reward_stats is not None and learner.reward_stats.count == 3
    restored = QLearner(TableMAC(live), None, standardise_rewards=True)
    restored.load_state_dict(learner.state_dict())
    assert restored.reward_stats is not None
    assert restored.reward_stats.state_dict() == learner.reward_stats.state_dict()


# ----------------------------------------------------------------------------- checkpointing
CHECKPOINT_KEYS = {
    "mac",
    "target_mac",
    "mixer",
    "target_mixer",
    "optimiser",
    "train_steps",
    "last_target_update_episode",
    "reward_stats",
}
"""The learner state's keys before the learner stream: existing checkpoints hold these."""


def trained_learner(mixer_kind: str | None, optimizer: str, seed: int = 0) -> QLearner:
    """A learner after 3 updates, its target copied at episode 2; its generator advanced."""
    generator = torch.Generator().manual_seed(seed)
    kwargs = {"optimizer": optimizer, "lr": 0.01, "target_update_interval": 2}
    learner = QLearner(make_mac(seed), make_mixer(mixer_kind, seed), generator, **kwargs)
    batch = make_batch(lengths=[5, 4, 3], terminal=[4, None, 2], seed=9)
    for episode in range(1, 4):
        learner.train(batch, t_env=0, episode=episode)
    torch.rand(5, generator=generator)  # as a learner that draws minibatches would
    return learner


def test_q_learner_is_a_learner() -> None:
    learner = QLearner(make_mac(), make_mixer("vdn"))
    assert isinstance(learner, Learner) and not learner.on_policy
    assert list(learner.networks()) == ["mac", "mixer"]
    assert list(QLearner(make_mac(), None).networks()) == ["mac"]


@pytest.mark.parametrize("mixer_kind", [None, "qmix"])
def test_state_dict_keeps_the_checkpoint_keys(mixer_kind: str | None) -> None:
    state = trained_learner(mixer_kind, "rmsprop").state_dict()
    assert set(state) == CHECKPOINT_KEYS | {"generator"}
    assert state["last_target_update_episode"] == 2 and state["train_steps"] == 3
    if mixer_kind is None:
        assert state["mixer"] is None and state["target_mixer"] is None


@pytest.mark.parametrize(("mixer_kind", "optimizer"), [(None, "rmsprop"), ("qmix", "adam")])
@pytest.mark.parametrize("with_generator", [True, False])
def test_state_dict_round_trip(
    mixer_kind: str | None, optimizer: str, with_generator: bool
) -> None:
    """A restored learner makes the identical next update and continues the saved
    learner stream; a state saved before the stream existed loads all the rest."""
    learner = trained_learner(mixer_kind, optimizer)
    state = copy.deepcopy(learner.state_dict())
    if not with_generator:
        del state["generator"]
    fresh = trained_learner(mixer_kind, optimizer, seed=11)
    fresh_stream = fresh.generator.get_state()
    fresh.load_state_dict(state)
    batch = make_batch(lengths=[5, 3, 4], terminal=[None, 2, 3], seed=10)
    assert fresh.train(batch, t_env=0, episode=4) == learner.train(batch, t_env=0, episode=4)
    assert fresh.state_dict()["last_target_update_episode"] == 4
    for name, live in learner.networks().items():
        assert torch.equal(flat_params(fresh.networks()[name]), flat_params(live))
        assert torch.equal(flat_params(fresh.targets[name]), flat_params(learner.targets[name]))
    expected_stream = learner.generator.get_state() if with_generator else fresh_stream
    assert torch.equal(fresh.generator.get_state(), expected_stream)


def test_load_weights_copies_the_saved_live_networks_into_both() -> None:
    """Fine-tuning starts with targets equal to the saved live networks (the saved
    targets, last copied at episode 2, are older)."""
    learner, fresh = trained_learner("qmix", "adam"), trained_learner("qmix", "adam", seed=11)
    fresh.load_weights(learner.state_dict())
    for name, live in learner.networks().items():
        assert not torch.equal(flat_params(learner.targets[name]), flat_params(live))
        assert torch.equal(flat_params(fresh.networks()[name]), flat_params(live))
        assert torch.equal(flat_params(fresh.targets[name]), flat_params(live))


# ----------------------------------------------------------------------------- torch.compile
@pytest.mark.slow
@pytest.mark.parametrize(
    ("mixer_kind", "mode", "device"),
    [
        (None, "default", "cpu"),
        ("qmix", "default", "cpu"),
        pytest.param("qmix", "reduce-overhead", "cuda", marks=pytest.mark.gpu),
    ],
)
def test_compiled_loss_gives_the_same_updates(
    mixer_kind: str | None, mode: str, device: str
) -> None:
    """learner.compile: the same losses and weights as eager, over 3 updates on batches
    of two different lengths (about 30 s of compiling on a CPU). ``reduce-overhead``
    on a GPU replays CUDA graphs."""
    batches = [make_batch([5, 4, 3], [4, None, 2], seed=s).to(device) for s in (1, 2)]
    batches.append(batches[0].slice_time(3))

    def learner(compile: str | None) -> QLearner:
        mixer = make_mixer(mixer_kind, 0)
        return QLearner(
            make_mac(0).to(device),
            None if mixer is None else mixer.to(device),
            optimizer="adam",
            compile=compile,
        )

    eager_learner, compiled_learner = learner(None), learner(mode)
    for episode, batch in enumerate(batches):
        eager = eager_learner.train(batch, 0, episode)
        compiled = compiled_learner.train(batch, 0, episode)
        assert compiled["learner/loss"] == pytest.approx(eager["learner/loss"], rel=1e-5)
    torch.testing.assert_close(flat_params(compiled_learner.mac), flat_params(eager_learner.mac))


def test_unknown_compile_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="must be null or one of"):
        QLearner(make_mac(0), None, compile="fastest")


@pytest.mark.parametrize("double_q", [True, False])
@pytest.mark.parametrize("lengths", [[2, 2, 1], [5, 3, 4]])  # T = 1 (transitions), T = 4
def test_independent_steps_unrolled_apart_give_the_same_update(
    monkeypatch: pytest.MonkeyPatch, lengths: list[int], double_q: bool
) -> None:
    """Feed-forward agents without last actions: `live_q` unrolls steps 0 .. T - 1 (with
    gradient) apart from 1 .. T (T = 1, or no double Q), the target network only 1 .. T;
    the loss and every gradient match one unroll of all the steps."""
    from marl.modules.agents.mlp import MLPAgent

    steps = max(lengths) - 1
    info = EnvInfo(N_AGENTS, N_ACTIONS, OBS, STATE, episode_limit=steps)
    batch = make_batch(lengths, [None] * len(lengths), info=info)
    grads = {}
    for split in (True, False):
        if not split:  # as for a recurrent controller: one unroll of every step
            whole = property(lambda self: False)
            monkeypatch.setattr(MultiAgentController, "steps_independent", whole)
        torch.manual_seed(0)
        mac = MultiAgentController(
            functools.partial(MLPAgent, hidden_dim=8), info, obs_last_action=False
        )
        assert mac.steps_independent == split
        learner = QLearner(mac, None, gamma=0.5, double_q=double_q)
        perturb_(learner.targets["mac"], seed=1)
        loss = learner.loss(*learner._loss_inputs(batch))[0]
        loss.backward()
        grads[split] = (loss.detach(), [p.grad.clone() for p in mac.parameters()])
    assert torch.allclose(grads[True][0], grads[False][0], atol=1e-6)
    for a, b in zip(grads[True][1], grads[False][1], strict=True):
        assert torch.allclose(a, b, atol=1e-6)
