"""training.losses on hand-computed cases: known values, the mask, and which way the gradients push."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses import bpr_loss, sampled_softmax_loss

E1, E2 = [1.0, 0.0], [0.0, 1.0]


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_bpr_known_value(temperature: float) -> None:
    # s(u, pos) = 1 and s(u, neg) = 0, so the loss is -log sigmoid(1 / T) = log(1 + e^(-1/T)).
    u, pos, neg = torch.tensor([E1, E1]), torch.tensor([E1, E1]), torch.tensor([E2, E2])
    expected = math.log1p(math.exp(-1.0 / temperature))
    assert bpr_loss(u, pos, neg, temperature).item() == pytest.approx(expected, rel=1e-6)
    # Swapping positive and negative: -log sigmoid(-1 / T).
    assert bpr_loss(u, neg, pos, temperature).item() == pytest.approx(math.log1p(math.exp(1.0 / temperature)))


def test_bpr_averages_over_rows() -> None:
    u = torch.tensor([E1, E1])
    pos = torch.tensor([E1, E2])  # row 0: s(pos) - s(neg) = 1; row 1: 0 - 0, a tie
    neg = torch.tensor([E2, [0.0, 0.0]])
    expected = (math.log1p(math.exp(-1.0)) + math.log(2.0)) / 2
    assert bpr_loss(u, pos, neg, 1.0).item() == pytest.approx(expected, rel=1e-6)


def test_bpr_gradients_pull_the_user_to_the_positive_and_push_the_negative_away() -> None:
    u = torch.tensor([[0.6, 0.8]], requires_grad=True)
    pos = torch.tensor([E1], requires_grad=True)
    neg = torch.tensor([E2], requires_grad=True)
    bpr_loss(u, pos, neg, 0.1).backward()
    direction = torch.tensor(E1) - torch.tensor(E2)
    assert (u.grad[0] @ direction).item() < 0  # a descent step moves u towards pos - neg
    assert (pos.grad[0] @ u[0].detach()).item() < 0  # pos moves towards u
    assert (neg.grad[0] @ u[0].detach()).item() > 0  # neg moves away from u


def test_sampled_softmax_known_value_and_mask() -> None:
    u = torch.tensor([E1])
    cands = torch.tensor([E1, E2, [-1.0, 0.0]])  # logits 1, 0, -1 at T = 1
    pos = torch.tensor([0])
    expected = math.log(1 + math.exp(-1) + math.exp(-2))
    assert sampled_softmax_loss(u, cands, pos, None, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # A masked candidate (another positive of the same user) is no negative: it drops out of the sum.
    mask = torch.tensor([[False, True, False]])
    assert sampled_softmax_loss(u, cands, pos, mask, 1.0).item() == pytest.approx(math.log1p(math.exp(-2)), rel=1e-6)
    # Temperature scales the logits: 1 / 0.5 = 2.
    expected_t = math.log(1 + math.exp(-2) + math.exp(-4))
    assert sampled_softmax_loss(u, cands, pos, None, 0.5).item() == pytest.approx(expected_t, rel=1e-6)


def test_sampled_softmax_with_one_negative_is_bpr() -> None:
    gen = torch.Generator().manual_seed(0)
    u, p, n = (torch.nn.functional.normalize(torch.randn(8, 4, generator=gen), dim=1) for _ in range(3))
    # Row i's candidates are its own positive and its own negative: columns 2i and 2i + 1.
    cands = torch.stack([p, n], dim=1).reshape(16, 4)
    mask = torch.ones(8, 16, dtype=torch.bool)
    rows = torch.arange(8)
    mask[rows, 2 * rows] = False
    mask[rows, 2 * rows + 1] = False
    softmax = sampled_softmax_loss(u, cands, 2 * rows, mask, 0.2)
    torch.testing.assert_close(softmax, bpr_loss(u, p, n, 0.2))


def test_sampled_softmax_gradients_raise_the_positive_over_the_rest() -> None:
    u = torch.tensor([[0.6, 0.8]], requires_grad=True)
    cands = torch.tensor([E1, E2, [-1.0, 0.0]], requires_grad=True)
    sampled_softmax_loss(u, cands, torch.tensor([0]), None, 0.1).backward()
    user = u[0].detach()
    assert (cands.grad[0] @ user).item() < 0  # the positive moves towards the user
    assert (cands.grad[1] @ user).item() > 0 and (cands.grad[2] @ user).item() > 0  # the negatives away
    # The user moves towards the positive, away from the softmax-weighted negatives.
    assert (u.grad[0] @ torch.tensor(E1)).item() < 0


def test_sampled_softmax_log_q_correction_known_value() -> None:
    # logQ correction: each candidate's logit drops by the log of its chance of being drawn, so a popular
    # candidate (drawn often as an in-batch negative) is pushed down less.
    u = torch.tensor([E1])
    cands = torch.tensor([E1, E2, [-1.0, 0.0]])  # logits 1, 0, -1 at T = 1
    pos = torch.tensor([0])
    log_q = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    expected = -math.log(
        math.exp(1 - log_q[0]) / sum(math.exp(s - q) for s, q in zip([1, 0, -1], log_q.tolist(), strict=True))
    )
    got = sampled_softmax_loss(u, cands, pos, None, 1.0, log_q).item()
    assert got == pytest.approx(expected, rel=1e-6)
    # A uniform correction changes nothing (it shifts every logit alike) ...
    flat = torch.full((3,), math.log(1 / 3))
    assert sampled_softmax_loss(u, cands, pos, None, 1.0, flat).item() == pytest.approx(
        sampled_softmax_loss(u, cands, pos, None, 1.0).item(), rel=1e-6
    )
    # ... and a correction that favours the negatives raises the loss.
    assert got > sampled_softmax_loss(u, cands, pos, None, 1.0).item()
