"""A pick of For You's sequence source says which save it comes next after (serving/reasons.py), and is not a
fallback (serving/picks.py)."""

from __future__ import annotations

import json

import numpy as np

from serving import fallback, reasons
from serving import picks as P

LABELS = reasons.Labels(good_titles={7: "Folk silver necklace"}, collection_titles={3: "Folk"}, user_names={})


def _why(source: int, anchor: int | None, collection: int | None = None) -> reasons.Reason:
    return reasons.explain(
        source=source,
        anchor_good_id=anchor,
        cosine=0.5,
        collection_id=collection,
        followee_id=None,
        pick_domain="shop1.com",
        user_domains={"shop1.com"},
        popular_saves=None,
        interest=(7, "shop1.com", 0.5),
    )


def test_a_sequence_pick_is_next_after_its_save() -> None:
    words, js = reasons.render(_why(fallback.SEQUENCE, 7, collection=3), LABELS, 7)
    assert words == "next after Folk silver necklace · for your interest: Folk silver necklace, shop1.com"
    detail = json.loads(js)
    assert detail["kind"] == reasons.NEXT_KIND and detail["good_id"] == 7 and "collection_id" not in detail
    # The same anchor on a model pick keeps the model's words: the kind follows the source.
    words, _ = reasons.render(_why(fallback.MODEL, 7, collection=3), LABELS, 7)
    assert words.startswith("because you saved Folk silver necklace in Folk")
    # Without the save it comes after (none known) it falls back to the domain, as a model pick does.
    assert reasons.render(_why(fallback.SEQUENCE, None), LABELS, 7)[0].startswith("because you save from shop1.com")


def test_sequence_picks_are_not_fallbacks() -> None:
    source = np.array([[fallback.MODEL, fallback.SEQUENCE, fallback.FOLLOWEE, fallback.POPULAR]], np.int8)
    p = P.Picks(
        users=np.array([0]),
        picks=np.arange(4)[None],
        scores=np.zeros((1, 4), np.float32),
        source=source,
        via_user=np.full((1, 4), -1),
        anchor=np.full((1, 4), -1),
        cosine=np.zeros((1, 4), np.float32),
        popular_saves={},
        eligible=1,
        unknown_users=0,
        unknown_goods=0,
    )
    assert p.fallback_mask().tolist() == [[False, False, True, True]]
