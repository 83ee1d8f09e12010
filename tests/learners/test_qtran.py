"""Known-answer tests for marl.learners.qtran (QTRAN-base and QTRAN-alt)."""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import pytest
import torch

from marl.controllers.mac import MultiAgentController
from marl.errors import UsageError
from marl.learners.common import Learner, valid_transitions
from marl.learners.qtran import QTranLearner, alt_terms, base_terms, one_hot
from marl.modules.agents.mlp import MLPAgent
from marl.modules.agents.rnn import RNNAgent
from marl.modules.mixers.qtran import QTranMixer
from marl.modules.mixers.vdn import VDNMixer
from marl.ops.returns import td_lambda_targets
from tests.learners.test_q_learning import INFO, make_batch

HIDDEN = 8
INF = float("inf")


def t(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# ----------------------------------------------------------------------------- the losses
def test_base_terms_known_values() -> None:
    # B = 1, T = 3, N = 2; the third step is padding (mask 0) holding garbage.
    joint = t([[[5.0], [2.0], [INF]]])  # Q_jt(τ, u)
    joint_greedy = t([[[5.5], [3.0], [INF]]])  # Q̂_jt(τ, ū)
    v = t([[[1.0], [0.5], [-INF]]])
    targets = t([[[4.0], [0.0], [INF]]])
    q_taken = t([[[1.0, 2.0], [1.0, 1.0], [INF, 0.0]]])
    q_best = t([[[3.0, 2.0], [2.0, 1.5], [INF, 0.0]]])
    mask = t([[[1.0], [1.0], [0.0]]])
    terms = base_terms(joint, joint_greedy, v, targets, q_taken, q_best, mask)
    # L_td: errors 1 and 2 -> (1 + 4) / 2.
    assert terms.td.item() == pytest.approx(2.5)
    # L_opt: sum max Q_i - Q̂_jt(ū) + V = 5 - 5.5 + 1 = 0.5 and 3.5 - 3 + 0.5 = 1.
    assert terms.opt.item() == pytest.approx((0.25 + 1.0) / 2)
    # L_nopt: sum Q_i(u) - Q_jt(u) + V = 3 - 5 + 1 = -1 (counts) and 2 - 2 + 0.5 (>= 0: none).
    assert terms.nopt.item() == pytest.approx(1.0 / 2)
    torch.testing.assert_close(terms.td_error[:, :2], t([[[1.0], [2.0]]]))
    assert terms.joint_taken is joint


def test_base_terms_stop_the_gradient_of_the_joint_q_in_the_constraints() -> None:
    joint = t([[[5.0]]]).requires_grad_()
    v = t([[[1.0]]]).requires_grad_()
    q_taken = t([[[1.0, 2.0]]]).requires_grad_()
    q_best = t([[[3.0, 2.0]]]).requires_grad_()
    terms = base_terms(joint, t([[[5.5]]]), v, t([[[4.0]]]), q_taken, q_best, t([[[1.0]]]))
    (terms.opt + terms.nopt).backward()
    assert joint.grad is None  # L_opt and L_nopt train the agents and V only
    assert q_taken.grad is not None and q_best.grad is not None and v.grad is not None
    q_taken.grad = q_best.grad = v.grad = None
    terms.td.backward()
    assert joint.grad is not None  # L_td trains Q_jt only
    assert q_taken.grad is None and q_best.grad is None and v.grad is None


def test_alt_terms_known_values() -> None:
    # B = 1, T = 2, N = 2, A = 2; agent 1's action 1 is unavailable at step 0; step 1 is
    # padding (no available action, mask 0).
    q = t([[[[1.0, 3.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]])  # (1, 2, 2, 2)
    actions = torch.tensor([[[[0], [0]], [[0], [0]]]])  # (1, 2, 2, 1)
    avail = torch.tensor([[[[True, True], [True, False]], [[False, False], [False, False]]]])
    joint = t([[[[4.0, 7.0], [4.0, 9.0]], [[0.0, 0.0], [0.0, 0.0]]]])  # Q_jt(τ, ., u_-i)
    joint_greedy = t([[[6.0, 6.5], [0.0, 0.0]]])  # Q̂_jt(τ, ū_i, ū_-i) per agent row
    v = t([[[1.5], [0.0]]])
    targets = t([[[5.0, 3.0], [0.0, 0.0]]])
    q_best = t([[[3.0, 2.0], [0.0, 0.0]]])
    mask = t([[[1.0], [0.0]]])
    terms = alt_terms(joint, joint_greedy, v, targets, q, actions, q_best, avail, mask)
    # L_td per row: Q_jt^i(u) = 4 and 4 against 5 and 3.
    torch.testing.assert_close(terms.joint_taken[:, 0], t([[4.0, 4.0]]))
    assert terms.td.item() == pytest.approx(1.0)
    # L_opt per row: 5 - 6 + 1.5 = 0.5 and 5 - 6.5 + 1.5 = 0.
    assert terms.opt.item() == pytest.approx(0.25 / 2)
    # L_nopt-min, row 0: Q_0(a) + Q_1(u_1) - Q_jt + V = [0.5, -0.5], min -0.5.
    # Row 1: [0.5, -6.5], but action 1 is unavailable: min 0.5 (42.25 if it counted).
    assert terms.nopt.item() == pytest.approx((0.25 + 0.25) / 2)


def test_alt_terms_have_finite_gradients_over_padding() -> None:
    q = torch.zeros(1, 1, 2, 3, requires_grad=True)
    joint = torch.zeros(1, 1, 2, 3)
    avail = torch.zeros(1, 1, 2, 3, dtype=torch.bool)  # a padding step
    actions = torch.zeros(1, 1, 2, 1, dtype=torch.long)
    zeros = torch.zeros(1, 1, 2)
    terms = alt_terms(joint, zeros, torch.zeros(1, 1, 1), zeros, q, actions, zeros, avail, zeros)
    (terms.td + terms.opt + terms.nopt).backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


# ----------------------------------------------------------------------------- the learner
def make_learner(
    variant: str = "base", seed: int = 0, share_params: bool = True, **settings: Any
) -> QTranLearner:
    torch.manual_seed(seed)
    agent = functools.partial(RNNAgent, hidden_dim=HIDDEN)
    mac = MultiAgentController(agent, INFO, share_params=share_params)
    mixer = QTranMixer(INFO, variant=variant, embed_dim=16, agent_hidden_dim=HIDDEN)
    return QTranLearner(mac, mixer, torch.Generator().manual_seed(seed), **settings)


def weights(learner: QTranLearner) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.clone()
        for name, net in learner.networks().items()
        for key, value in net.state_dict().items()
    }


BATCH = functools.partial(make_batch, [5, 3, 4], [3, None, 2])
"""Three episodes: terminated, truncated (time limit) and terminated, with padding."""


@pytest.mark.parametrize(
    ("variant", "settings"),
    [
        ("base", {}),
        ("alt", {}),
        ("base", {"double_q": False, "td_lambda": 0.6}),
        ("alt", {"standardise_rewards": True, "share_params": False}),
    ],
)
def test_one_update_trains_every_network_with_finite_stats(
    variant: str, settings: dict[str, Any]
) -> None:
    settings = dict(settings)  # the parametrised dict is shared between runs
    share = bool(settings.pop("share_params", True))
    learner = make_learner(variant, share_params=share, **settings)
    assert isinstance(learner, Learner)
    before = weights(learner)
    stats = learner.train(BATCH(), t_env=10, episode=1)
    assert set(stats) >= {"learner/td_loss", "learner/opt_loss", "learner/nopt_loss"}
    assert all(math.isfinite(v) for v in stats.values()), stats
    after = weights(learner)
    changed = {key.split(".")[0] for key in before if not torch.equal(before[key], after[key])}
    assert changed == {"mac", "mixer"}
    mixer_changed = {
        k for k in before if k.startswith("mixer.") and not torch.equal(before[k], after[k])
    }
    assert {k.split(".")[1] for k in mixer_changed} == {"encoding", "Q", "V"}


@pytest.mark.parametrize("variant", ["base", "alt"])
@pytest.mark.parametrize("lam", [0.0, 0.8])
def test_targets_are_the_target_joint_q_at_the_live_greedy_next_actions(
    variant: str, lam: float
) -> None:
    """Independently of the learner's code path: y = TD(lambda) over Q_jt^-(s', h'^-, ū')."""
    learner = make_learner(variant, td_lambda=lam, lr=0.05)
    learner.train(BATCH(seed=1), t_env=10, episode=1, stats=False)  # live and target now differ
    batch = BATCH()
    obs, actions, avail = batch.float("obs"), batch["actions"], batch["avail_actions"]
    states = batch.float("state")
    rewards, terminated = batch["reward"][:, :-1], batch["terminated"][:, :-1].float()
    mask = valid_transitions(batch).float()
    _, targets, _ = learner.loss(obs, actions, avail, states, rewards, terminated, mask)

    with torch.no_grad():
        q, _ = learner.mac.unroll_hidden(obs, actions)  # (B, T + 1, N, A)
        q = q.masked_fill(~avail, -INF)
        greedy = q.argmax(dim=-1, keepdim=True)[:, 1:]  # (B, T, N, 1)
        target_mac = learner.targets["mac"]
        _, h = target_mac.unroll_hidden(obs, actions)  # type: ignore[operator]
        next_joint = learner.targets["mixer"](states[:, 1:], h[:, 1:], one_hot(greedy, 3))
        if variant == "alt":
            next_joint = next_joint.gather(-1, greedy).squeeze(-1)  # (B, T, N)
        want = td_lambda_targets(rewards, terminated, mask, next_joint, learner.gamma, lam)
    assert targets.shape == want.shape == (3, 4, 1 if variant == "base" else 2)
    torch.testing.assert_close(targets * mask, want * mask)


@pytest.mark.parametrize("variant", ["base", "alt"])
def test_a_restored_learner_makes_the_identical_next_update(variant: str) -> None:
    original = make_learner(variant, seed=0, standardise_rewards=True)
    original.train(BATCH(seed=1), t_env=10, episode=1, stats=False)
    restored = make_learner(variant, seed=5, standardise_rewards=True)
    restored.load_state_dict(copy.deepcopy(original.state_dict()))
    assert torch.equal(restored.generator.get_state(), original.generator.get_state())
    assert original.train(BATCH(seed=2), 20, 2) == restored.train(BATCH(seed=2), 20, 2)
    got, want = weights(restored), weights(original)
    assert all(torch.equal(got[key], want[key]) for key in want)


def test_load_weights_copies_the_networks_into_the_targets() -> None:
    source = make_learner("alt", seed=0)
    learner = make_learner("alt", seed=3)
    learner.load_weights(source.state_dict())
    for name, net in source.networks().items():
        for key, value in net.state_dict().items():
            assert torch.equal(learner.targets[name].state_dict()[key], value)


def test_a_feed_forward_agent_needs_agent_hidden_dim_zero() -> None:
    mac = MultiAgentController(functools.partial(MLPAgent, hidden_dim=HIDDEN), INFO)
    with pytest.raises(UsageError, match="agent_hidden_dim is 8; set it to 0"):
        QTranLearner(mac, QTranMixer(INFO, agent_hidden_dim=HIDDEN))
    learner = QTranLearner(mac, QTranMixer(INFO, agent_hidden_dim=0))
    assert math.isfinite(learner.train(BATCH(), 10, 1)["learner/loss"])


def test_another_mixer_is_refused() -> None:
    mac = MultiAgentController(functools.partial(RNNAgent, hidden_dim=HIDDEN), INFO)
    with pytest.raises(UsageError, match="algo=qtran"):
        QTranLearner(mac, VDNMixer(INFO))  # type: ignore[arg-type]
