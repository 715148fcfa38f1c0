"""A pick's reason names the user's interest it serves (serving/reasons.py)."""

from __future__ import annotations

import json

from serving import fallback, reasons


def _why(interest: tuple[int, str | None, float] | None) -> reasons.Reason:
    return reasons.explain(
        source=fallback.MODEL,
        anchor_good_id=7,
        cosine=0.81234,
        collection_id=None,
        followee_id=None,
        pick_domain="shop1.com",
        user_domains=set(),
        popular_saves=None,
        interest=interest,
    )


LABELS = reasons.Labels(
    good_titles={7: "Folk silver necklace", 9: "Folk brass necklace"}, collection_titles={}, user_names={}
)


def test_the_reason_names_the_interest_by_its_good_and_domain() -> None:
    words, js = reasons.render(_why((9, "folkstudio.com", 0.4)), LABELS, 7)
    assert words == "because you saved Folk silver necklace · for your interest: Folk brass necklace, folkstudio.com"
    detail = json.loads(js)
    assert detail["interest"] == {
        "good_id": 9,
        "good_title": "Folk brass necklace",
        "domain": "folkstudio.com",
        "weight": 0.4,
    }
    assert detail["kind"] == reasons.GOOD and detail["good_id"] == 7


def test_without_an_interest_the_reason_is_unchanged() -> None:
    words, js = reasons.render(_why(None), LABELS, 7)
    assert words == "because you saved Folk silver necklace"
    assert "interest" not in json.loads(js)
    words, _ = reasons.render(_why((12, None, 1.0)), LABELS, 7)
    assert words.endswith("for your interest: good 12")
