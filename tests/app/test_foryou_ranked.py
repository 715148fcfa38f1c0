"""The For You evaluate rows hand the evaluator RankedLists: each user's picks in the order asked for, with the
name of the source of each pick, so the report can count picks and hits per source."""

from __future__ import annotations

import numpy as np

from graphrec.app.foryou import _ranked
from serving.foryou.pipeline import PICK_SOURCES, ForYouLists


def test_lists_become_ranked_lists_in_the_users_order_with_source_names() -> None:
    goods = np.array([[5, 7, -1], [1, 2, 3]], np.int64)
    source = np.array([[0, 1, 0], [2, 2, len(PICK_SOURCES) - 1]], np.int8)
    lists = ForYouLists(np.array([10, 11]), goods, np.zeros(goods.shape, np.float32), source, goods * 0, goods * 0)
    out = _ranked(lists, np.array([11, 12, 10]))  # 12 got no list
    assert out.picks.tolist() == [[1, 2, 3], [-1, -1, -1], [5, 7, -1]]
    assert out.source.tolist() == [
        [PICK_SOURCES[2], PICK_SOURCES[2], "popular"],
        ["", "", ""],
        [PICK_SOURCES[0], PICK_SOURCES[1], ""],
    ]
