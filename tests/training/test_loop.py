"""training.loop on a one-parameter model: early stopping, best state, time budget, NaN guard, determinism."""

from __future__ import annotations

import pytest
import torch

from training.loop import NonFiniteError, Schedule, StepLoss, train_loop


def quadratic(seed: int = 0) -> tuple[torch.nn.Linear, torch.optim.Optimizer, StepLoss]:
    """A 1x1 linear layer pulled towards weight 3 with a little noise drawn from its own generator."""
    torch.manual_seed(seed)
    model = torch.nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(seed)

    def step_loss(epoch: int, step: int) -> tuple[torch.Tensor, float]:
        target = 3.0 + 0.1 * torch.randn((), generator=gen)
        return (model.weight.sum() - target) ** 2, 1.0

    return model, optimizer, step_loss


def test_patience_stops_and_the_best_validated_state_is_kept() -> None:
    model, opt, step = quadratic()
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.9])
    weights: list[float] = []

    def validate() -> float:
        weights.append(model.weight.item())
        return next(scores)

    result = train_loop(
        "toy", model, opt, step, Schedule(max_epochs=5, steps_per_epoch=3, patience=2), validate=validate
    )
    assert [h["val"] for h in result.history] == [0.1, 0.5, 0.4, 0.3]  # two epochs without gain after the best
    assert (result.best_val, result.best_epoch) == (0.5, 2)
    assert model.weight.item() == weights[1] and not model.training


def test_without_validation_every_epoch_runs_and_the_last_state_is_kept() -> None:
    model, opt, step = quadratic()
    result = train_loop("toy", model, opt, step, Schedule(max_epochs=4, steps_per_epoch=5, patience=1))
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4] and all(h["val"] is None for h in result.history)
    assert model.weight.item() == pytest.approx(3.0, abs=0.2)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def counting(step: StepLoss) -> tuple[StepLoss, list[int]]:
    """`step` that also records each call in the returned list."""
    calls: list[int] = []

    def counted(epoch: int, s: int) -> tuple[torch.Tensor, float]:
        calls.append(s)
        return step(epoch, s)

    return counted, calls


def test_a_budget_shorter_than_one_step_still_runs_and_validates_one() -> None:
    model, opt, step = quadratic()
    counted, calls = counting(step)
    result = train_loop("toy", model, opt, counted, Schedule(10, 100, 3, time_budget_s=0.0), validate=lambda: 1.0)
    assert len(calls) == 1 and len(result.history) == 1 and result.history[0]["val"] == 1.0


class FakeClock:
    """A perf_counter that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_stops_before_a_step_and_validation_that_would_cross_it(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("training.loop.time.perf_counter", clock)
    model, opt, step = quadratic()
    seconds = iter([5.0] + [1.0] * 100)  # a slow first step, then 1 s steps

    def timed(epoch: int, s: int) -> tuple[torch.Tensor, float]:
        clock.now += next(seconds)
        return step(epoch, s)

    def validate() -> float:
        clock.now += 2.0
        return 1.0

    counted, calls = counting(timed)
    result = train_loop("toy", model, opt, counted, Schedule(10, 6, 3, time_budget_s=20.0), validate=validate)
    # Epoch 1: steps of 5+1+1+1+1+1 s and a 2 s validation end at 12 s. In epoch 2 the slowest recent step (the
    # 5 s first one, still among the last 8) and the 2 s closing validation still fit after its 1st step
    # (13+5+2 = 20) but not after its 2nd (14+5+2 = 21): it stops there and validates, ending at 16 s, where
    # checking only whether the budget had passed would have gone on to 21 s and validated to 23 s.
    assert calls == [0, 1, 2, 3, 4, 5, 0, 1]
    assert [h["seconds"] for h in result.history] == [12.0, 16.0]
    assert result.history[-1]["val"] == 1.0 and result.history[-1]["seconds"] <= 20.0


def test_max_steps_ends_training_inside_an_epoch_with_a_validation() -> None:
    model, opt, step = quadratic()
    counted, calls = counting(step)
    result = train_loop("toy", model, opt, counted, Schedule(10, 4, 3, max_steps=6), validate=lambda: 1.0)
    assert calls == [0, 1, 2, 3, 0, 1]  # 4 steps of epoch 1, 2 of epoch 2
    assert [h["epoch"] for h in result.history] == [1, 2] and result.history[-1]["val"] == 1.0
    with pytest.raises(ValueError, match="invalid training schedule"):
        Schedule(10, 4, 3, max_steps=0)


def test_a_nan_loss_names_epoch_and_step_and_hands_back_the_last_good_state() -> None:
    model, opt, step = quadratic()

    def poisoned(epoch: int, s: int) -> tuple[torch.Tensor, float]:
        loss, w = step(epoch, s)
        return (loss * float("nan"), w) if (epoch, s) == (2, 1) else (loss, w)

    with pytest.raises(NonFiniteError, match="toy: loss is nan at epoch 2 step 1") as info:
        train_loop("toy", model, opt, poisoned, Schedule(3, 3, 3), validate=lambda: model.weight.item())
    assert (info.value.epoch, info.value.step) == (2, 1)
    assert info.value.last_good_state is not None and "weight" in info.value.last_good_state


def test_the_same_seed_gives_the_same_history() -> None:
    runs = []
    for seed in (0, 0, 1):
        model, opt, step = quadratic(seed)
        runs.append([h["loss"] for h in train_loop("toy", model, opt, step, Schedule(3, 4, 3)).history])
    assert runs[0] == runs[1] != runs[2]
