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


def test_picks_carrying_interests_name_them_in_their_rows(world) -> None:  # noqa: ANN001 (fixture)
    import dataclasses

    import numpy as np

    from graphrec.core import db
    from graphrec.core.config import RecommendConfig
    from serving import picks as P
    from serving import reads

    cfg = RecommendConfig(picks_per_user=10)
    with db.connect(world.url) as conn:
        rows = reads.read_rows(conn, cfg.repeat_days)
        p = P.make_picks(world.emb, rows, cfg, min_goods=10)
        # Every pick of the first served user serves the interest standing for their first saved good.
        medoid = int(rows.good_idx(np.array([world.saves[int(rows.user_id[p.users[0]])][0]]))[0])
        ig = np.full(p.picks.shape, -1, np.int64)
        ig[0, p.picks[0] >= 0] = medoid
        p = dataclasses.replace(p, interest_good=ig, interest_weight=np.full(p.picks.shape, 0.5, np.float32))
        labels = reads.read_labels(conn, *P.label_ids(p, rows))
        pr = P.to_rows(p, rows, labels, cfg)
    first = pr.user_id == rows.user_id[p.users[0]]
    medoid_id = int(rows.good_id[medoid])
    assert first.any()
    for i in np.flatnonzero(first):
        d = json.loads(pr.reason_detail[i])
        assert d["interest"]["good_id"] == medoid_id and d["interest"]["weight"] == 0.5
        assert pr.reason[i].endswith(f"for your interest: good {medoid_id}, shop{medoid_id % 10}.com")
    assert all("interest" not in json.loads(pr.reason_detail[i]) for i in np.flatnonzero(~first))
