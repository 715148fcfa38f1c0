"""Percentile bootstrap over users: how much a figure averaged over the evaluated users could move with a
different sample of users, and whether one row beats another on the same users.

Every row of an evaluation is resampled with the same resamples of the users (the same seed), so the
difference of two rows' resampled means is the paired bootstrap of their per-user differences.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
_CHUNK = 100  # resamples per matrix product: memory is chunk x users floats


def bootstrap_means(values: np.ndarray, n_boot: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of the users. float64 [R, n_boot].

    values: float [R, n] per-user figures of R series over the same n users (or [n] for one series); the
    same resamples are applied to every series. Deterministic for `seed`.
    """
    v = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n = v.shape[1]
    if n == 0:
        raise ValueError("cannot bootstrap over zero users")
    if not np.isfinite(v).all():
        raise ValueError("per-user figures must be finite to bootstrap (got NaN or Inf)")
    rng = np.random.default_rng(seed)
    out = np.empty((v.shape[0], n_boot))
    for start in range(0, n_boot, _CHUNK):
        c = min(_CHUNK, n_boot - start)
        idx = rng.integers(0, n, size=(c, n))
        # How often each user was drawn in each resample: [c, n]; a mean is then one product.
        counts = np.bincount((idx + n * np.arange(c)[:, None]).ravel(), minlength=c * n).reshape(c, n)
        out[:, start : start + c] = v @ counts.T / n
    return out


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) percentile bounds over the last axis of bootstrap `samples`."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(samples, [tail, 100.0 - tail], axis=-1)
    return lo, hi


@dataclass(frozen=True)
class Interval:
    """A point estimate (the mean over all users) and its percentile bootstrap interval."""

    point: float
    lo: float
    hi: float

    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def to_json(self) -> dict[str, float]:
        return {"point": self.point, "lo": self.lo, "hi": self.hi}


def mean_interval(values: np.ndarray, n_boot: int = RESAMPLES, seed: int = 0, level: float = LEVEL) -> Interval:
    """The mean of per-user `values` [n] with its bootstrap interval."""
    v = np.asarray(values, dtype=np.float64)
    lo, hi = percentile_interval(bootstrap_means(v, n_boot, seed)[0], level)
    return Interval(float(v.mean()), float(lo), float(hi))


def paired_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Interval:
    """mean(a) - mean(b) over the same users (a[i], b[i] are user i's figures) with the paired interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired figures need the same users: shapes {a.shape} and {b.shape}")
    return mean_interval(a - b, n_boot, seed, level)


def paired_ratio(
    a: np.ndarray, b: np.ndarray, n_boot: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Interval:
    """mean(a) / mean(b) over the same users, with the interval of the ratio over the same resamples.

    NaN where b's mean is 0 (in the point or in a resample: the bounds are then NaN too).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired figures need the same users: shapes {a.shape} and {b.shape}")
    means = bootstrap_means(np.stack([a, b]), n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(means[1] > 0, means[0] / means[1], np.nan)
    point = float(a.mean() / b.mean()) if b.mean() > 0 else float("nan")
    if np.isnan(ratios).any():
        return Interval(point, float("nan"), float("nan"))
    lo, hi = percentile_interval(ratios, level)
    return Interval(point, float(lo), float(hi))
