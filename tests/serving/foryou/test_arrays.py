"""GraphArrays: the graph as of an earlier time keeps index spaces and drops every newer edge."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.serving.foryou.world import AS_OF, DAY, planted


def test_as_of_time_drops_newer_edges_and_keeps_indices() -> None:
    a = planted()
    cut = AS_OF - 20 * DAY
    b = a.as_of_time(cut)
    assert b.saves.shape == a.saves.shape and b.as_of == cut
    assert b.save_time.data.max() <= cut < a.save_time.data.max()
    assert b.follow_time.data.max(initial=0) <= cut and b.contains_time.data.max(initial=0) <= cut
    # Exactly the saves at or before the cut remain, with their times.
    coo = a.save_time.tocoo()
    keep = coo.data <= cut
    want = sorted(zip(coo.row[keep].tolist(), coo.col[keep].tolist(), coo.data[keep].tolist(), strict=True))
    got = b.save_time.tocoo()
    assert sorted(zip(got.row.tolist(), got.col.tolist(), got.data.tolist(), strict=True)) == want
    assert b.saves.nnz == int((a.save_time.data <= cut).sum())
    assert not b.live()[a.created_at > cut].any() and b.live()[a.created_at <= cut].all()
    assert (b.popularity() <= a.popularity()).all()


def test_as_of_time_after_as_of_and_bad_shapes_are_errors() -> None:
    a = planted()
    with pytest.raises(ValueError, match="after the arrays' as_of"):
        a.as_of_time(AS_OF + 1)
    with pytest.raises(ValueError, match="GraphArrays.domain has shape"):
        dataclasses.replace(a, domain=np.zeros(3, np.int64))
