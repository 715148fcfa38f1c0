"""Interest-coverage metrics (graphrec/core/metrics.py): calibration divergence and planted-interest coverage."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from graphrec.core import metrics as m


def test_mix_divergence_zero_when_calibrated_and_finite_when_a_group_is_missing() -> None:
    p = np.array([[2.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    q = np.array([[4.0, 2.0, 2.0], [0.0, 3.0, 0.0], [1.0, 0.0, 0.0]])
    kl = m.mix_divergence(p, q)
    assert kl[0] == pytest.approx(0.0)
    assert kl[1] == pytest.approx(np.log(1 / 0.01))  # q~ = 0.99 q + 0.01 p puts 0.01 on the user's only group
    assert np.isnan(kl[2])


def test_calibration_kl_reads_history_and_picks_through_the_groups() -> None:
    group = np.array([0, 0, 1, 1, 2, 2, -1])
    history = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0, 1], [1, 1, 0, 0, 0, 0, 0]], dtype=np.float32))
    picks = np.array([[1, 3, -1], [2, 3, 4]])
    kl = m.calibration_kl(picks, history, group, k=3)
    assert kl[0] == pytest.approx(0.0)  # half group 0, half group 1 on both sides (the ungrouped good ignored)
    assert kl[1] == pytest.approx(np.log(1 / 0.01))  # history all group 0, list none of it
    # Only the first k picks count.
    assert m.calibration_kl(np.array([[1, 3, 5]]), history[:1], group, k=2)[0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="rows"):
        m.calibration_kl(picks, history[:1], group, k=3)


def test_planted_interest_coverage_counts_heavy_interests_only() -> None:
    interest = np.array([[0.5, 0.3, 0.1, 0.1], [0.0, 0.0, 0.1, 0.0], [0.6, 0.4, 0.0, 0.0]])
    style = np.array([0, 1, 2, 3, 0, 1])
    picks = np.array([[0, 4, 2], [2, -1, -1], [4, 0, -1]])
    cov = m.planted_interest_coverage(picks, interest, style, k=3)
    assert cov[0] == pytest.approx(0.5)  # styles 0 and 1 are heavy; only 0 is picked (2 is too light to count)
    assert np.isnan(cov[1])
    assert cov[2] == pytest.approx(0.5)
    assert m.planted_interest_coverage(picks, interest, style, k=1)[0] == pytest.approx(0.5)


def test_content_groups_recover_planted_clusters_and_are_seeded() -> None:
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.standard_normal((16, 16)))[0][:4]
    truth = np.repeat(np.arange(4), 50)
    x = centres[truth] + 0.1 * rng.standard_normal((200, 16))
    x[7] = 0.0
    g = m.content_groups(x, 4, seed=1)
    assert g[7] == -1
    ok = np.arange(200) != 7
    # Each found group is one planted cluster.
    for c in range(4):
        assert len(np.unique(g[ok][truth[ok] == c])) == 1
    np.testing.assert_array_equal(g, m.content_groups(x, 4, seed=1))
