"""The training loop every model shares: steps, a NaN guard, validation, early stopping, a time budget, history.

A model hands in its torch module, optimizer and a `step_loss(epoch, step) -> (loss, weight)` closure (which
draws its own batches from its own seeded generator), and optionally `validate() -> float` (higher is better).
The loop keeps the best validated state (the last state when nothing is validated) and loads it back into the
module before returning. Same closures and seeds give the same model.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

log = logging.getLogger(__name__)

StepLoss = Callable[[int, int], tuple[Tensor, float]]

# How many of the latest steps the time budget looks at to judge how long the next one will take.
_RECENT_STEPS = 8


class NonFiniteError(FloatingPointError):
    """NaN or Inf in the loss or gradients. `last_good_state` is the best state_dict validated before
    the failure (None if none was), so a caller can inspect it; nothing is saved by training."""

    def __init__(self, message: str, epoch: int, step: int, last_good_state: dict[str, Tensor] | None) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.last_good_state = last_good_state


@dataclass(frozen=True)
class Schedule:
    """How long to train: `steps_per_epoch` steps per epoch, up to `max_epochs`; stop after `patience`
    validations without gain (validating every `validate_every` epochs and at the end of the time budget),
    or before a step that would end past `time_budget_s` of wall time (counted from the loop's `start`), or
    after `max_steps` steps in all (None: no limit), which also ends with a validation. The budget is judged
    after each step: the next step is taken to last as long as the slowest of the last few, and the closing
    validation as long as the last one, so a fit ends inside its budget unless a step suddenly slows down.
    """

    max_epochs: int
    steps_per_epoch: int
    patience: int
    time_budget_s: float | None = None
    validate_every: int = 1
    max_steps: int | None = None

    def __post_init__(self) -> None:
        bad_steps = self.max_steps is not None and self.max_steps < 1
        if self.max_epochs < 1 or self.steps_per_epoch < 1 or self.validate_every < 1 or bad_steps:
            raise ValueError(f"invalid training schedule: {self}")


@dataclass
class LoopResult:
    """history: one dict per epoch (epoch, loss: weighted mean over its steps, val: None when not validated,
    seconds: cumulative); best_val/best_epoch: the kept state's validation figure (None without validation)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, Tensor] | None = None


M = TypeVar("M", bound=torch.nn.Module)


@dataclass
class TrainedVectors(Generic[M]):
    """A model after `train_loop` (its kept state loaded) and its final float32 vectors, user_vecs [U, d] and
    good_vecs [G, d]; history, best_val and best_epoch as in LoopResult; train_s: wall seconds of the whole fit."""

    model: M
    user_vecs: np.ndarray
    good_vecs: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float | None = None
    best_epoch: int | None = None
    train_s: float = 0.0

    @classmethod
    def of_loop(cls, model: M, user_vecs: np.ndarray, good_vecs: np.ndarray, loop: LoopResult, start: float) -> Self:
        """The result of `loop` (run with `start`, a time.perf_counter() value), timed up to now."""
        return cls(
            model=model,
            user_vecs=user_vecs,
            good_vecs=good_vecs,
            history=loop.history,
            best_val=loop.best_val,
            best_epoch=loop.best_epoch,
            train_s=time.perf_counter() - start,
        )


def _non_finite_gradient(model: torch.nn.Module) -> str | None:
    for name, p in model.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            return name
    return None


def train_loop(
    name: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step_loss: StepLoss,
    schedule: Schedule,
    *,
    validate: Callable[[], float] | None = None,
    start: float | None = None,
    progress: bool = False,
) -> LoopResult:
    """Train `model` and leave the best state loaded in it (eval mode). Raises NonFiniteError (naming the
    epoch and step) when a loss or a gradient stops being finite. `start` (perf_counter) is where the time
    budget and the history's seconds count from (default: now), so a model's setup can count too."""
    start = time.perf_counter() if start is None else start
    s = schedule
    result = LoopResult()
    stale = 0
    out_of_time = False
    out_of_steps = False
    steps_done = 0
    recent_steps: deque[float] = deque(maxlen=_RECENT_STEPS)
    last_validation_s = 0.0
    bar = tqdm(total=s.max_epochs * s.steps_per_epoch, desc=name, disable=not progress, unit="step")
    try:
        for epoch in range(1, s.max_epochs + 1):
            model.train()
            total, weight = 0.0, 0.0
            for step in range(s.steps_per_epoch):
                step_start = time.perf_counter()
                loss, w = step_loss(epoch, step)
                where = f"at epoch {epoch} step {step}; keeping the last good state, nothing saved"
                if not torch.isfinite(loss):
                    raise NonFiniteError(
                        f"{name}: loss is {float(loss.detach())} {where}", epoch, step, result.best_state
                    )
                optimizer.zero_grad()
                loss.backward()
                bad = _non_finite_gradient(model)
                if bad is not None:
                    raise NonFiniteError(
                        f"{name}: non-finite gradient of {bad} {where}", epoch, step, result.best_state
                    )
                optimizer.step()
                total += float(loss.detach()) * w
                weight += w
                bar.update(1)
                steps_done += 1
                best = result.best_val
                bar.set_postfix(
                    epoch=epoch, loss=f"{float(loss.detach()):.4f}", val="-" if best is None else f"{best:.4f}"
                )
                now = time.perf_counter()
                recent_steps.append(now - step_start)
                # last_validation_s stays 0 without validation: then nothing closes the fit.
                ahead = max(recent_steps) + last_validation_s
                if s.time_budget_s is not None and now - start + ahead > s.time_budget_s:
                    out_of_time = True
                    break
                if s.max_steps is not None and steps_done >= s.max_steps:
                    out_of_steps = True
                    break
            record: dict[str, Any] = {"epoch": epoch, "loss": total / weight, "val": None}
            if validate is None:
                result.best_state = copy.deepcopy(model.state_dict())
            elif epoch % s.validate_every == 0 or out_of_time or out_of_steps:
                model.eval()
                validation_start = time.perf_counter()
                with torch.no_grad():
                    val = float(validate())
                last_validation_s = time.perf_counter() - validation_start
                record["val"] = val
                if result.best_val is None or val > result.best_val:
                    result.best_val, result.best_epoch, stale = val, epoch, 0
                    result.best_state = copy.deepcopy(model.state_dict())
                else:
                    stale += 1
            record["seconds"] = time.perf_counter() - start
            result.history.append(record)
            log.info(
                "%s epoch %d loss %.4f val %s (%.0f s)", name, epoch, record["loss"], record["val"], record["seconds"]
            )
            if out_of_time:
                log.info("%s: time budget of %.0f s reached at epoch %d", name, s.time_budget_s, epoch)
                break
            if out_of_steps:
                log.info("%s: %d steps done at epoch %d", name, steps_done, epoch)
                break
            if validate is not None and stale >= s.patience:
                log.info("%s: no validation gain for %d validations, stopping at epoch %d", name, stale, epoch)
                break
    finally:
        bar.close()
    if result.best_state is not None:
        model.load_state_dict(result.best_state)
    model.eval()
    return result
