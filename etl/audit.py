"""`graphrec audit`: can collaborative filtering work on this data at all?

A peer system found 89% one-time users and almost no goods saved twice; with data like that, no graph
model beats popularity. These figures say which side of that line the data is on.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from etl.tables import INFINITE_TIME, MINUS_INFINITE_TIME, NO_TIME, SourceTables
from graphrec.core.rules import FUTURE_TOLERANCE_S, MIN_ID

WEEK = 7 * 86_400


def audit_figures(
    tables: SourceTables, min_goods: int = 10, now: int | None = None, recent_days: int = 30
) -> dict[str, Any]:
    s = tables.saves
    # Saves etl.validate skips (infinite or future times, NULL or non-positive keys) neither count nor set
    # the audit's "now": one save dated 2100 would otherwise leave every real save weeks in the past.
    sane = (
        (s.saved_at != INFINITE_TIME)
        & (s.saved_at != MINUS_INFINITE_TIME)
        & (s.saved_at != NO_TIME)
        & (s.saved_at <= int(time.time()) + FUTURE_TOLERANCE_S)
        & (s.user_id >= MIN_ID)
        & (s.good_id >= MIN_ID)
    )
    t_now = int(s.saved_at[sane].max()) if now is None and sane.any() else int(now or 0)
    keep = sane & (s.saved_at <= t_now)
    users, goods, times = s.user_id[keep], s.good_id[keep], s.saved_at[keep]
    pairs = np.unique(np.stack([users, goods], axis=1), axis=0) if len(users) else np.empty((0, 2), dtype=np.int64)
    per_user = np.unique(pairs[:, 0], return_counts=True)[1] if len(pairs) else np.zeros(0)
    per_good = np.unique(pairs[:, 1], return_counts=True)[1] if len(pairs) else np.zeros(0)

    # A save is a re-save when an earlier save of the same good exists (by anyone).
    order = np.lexsort((times, goods))
    first_of_good = np.ones(len(goods), dtype=bool)
    first_of_good[order[1:]] = goods[order[1:]] != goods[order[:-1]]
    recent = times > t_now - recent_days * 86_400

    # Weekly returning users: of the users who saved in a week, the share who had saved in an earlier week.
    week = (t_now - times) // WEEK
    returning = []
    for w in range(0, 8):
        active = np.unique(users[week == w])
        before = np.unique(users[week > w])
        if len(active):
            returning.append((len(active), float(np.isin(active, before).mean())))
    n_users = len(tables.users.id)
    return {
        "users": n_users,
        "users_with_saves": int(len(per_user)),
        "goods": int(len(tables.goods.id)),
        "saves": int(len(users)),
        "saves_per_user_mean": float(per_user.mean()) if len(per_user) else 0.0,
        "saves_per_user_median": float(np.median(per_user)) if len(per_user) else 0.0,
        "saves_per_user_p90": float(np.percentile(per_user, 90)) if len(per_user) else 0.0,
        "one_time_users_share": float((per_user == 1).mean()) if len(per_user) else 0.0,
        "saves_per_good_mean": float(per_good.mean()) if len(per_good) else 0.0,
        "goods_saved_by_more_than_one_user_share": float((per_good > 1).mean()) if len(per_good) else 0.0,
        "weekly_active_users": float(np.mean([a for a, _ in returning])) if returning else 0.0,
        "weekly_returning_users_share": float(np.mean([r for _, r in returning])) if returning else 0.0,
        "recent_saves": int(recent.sum()),
        "recent_resave_share": float((~first_of_good[recent]).mean()) if recent.any() else 0.0,
        "eligible_users": int((per_user > min_goods).sum()),
        "eligible_users_share": float((per_user > min_goods).sum() / max(n_users, 1)),
        "min_goods": min_goods,
        "recent_days": recent_days,
    }


def format_audit(fig: dict[str, Any]) -> str:
    lines = [
        f"users: {fig['users']} ({fig['users_with_saves']} with saves); goods: {fig['goods']}; saves: {fig['saves']}",
        f"saves per user: mean {fig['saves_per_user_mean']:.1f}, median {fig['saves_per_user_median']:.0f}, "
        f"p90 {fig['saves_per_user_p90']:.0f}; one-time users {fig['one_time_users_share']:.1%}",
        f"saves per good: mean {fig['saves_per_good_mean']:.2f}; goods saved by more than one user "
        f"{fig['goods_saved_by_more_than_one_user_share']:.1%}",
        f"weekly active users (last 8 weeks): {fig['weekly_active_users']:.0f}; of them returning "
        f"{fig['weekly_returning_users_share']:.1%}",
        f"saves in the last {fig['recent_days']} days: {fig['recent_saves']}, of which re-saves of goods already in "
        f"the catalog {fig['recent_resave_share']:.1%}",
        f"eligible users (more than {fig['min_goods']} goods): {fig['eligible_users']} "
        f"({fig['eligible_users_share']:.1%})",
    ]
    overlap = fig["goods_saved_by_more_than_one_user_share"]
    if overlap < 0.05 or fig["recent_resave_share"] < 0.05:
        verdict = "little overlap between users: collaborative signal is weak; lean on content (CLIP) and popularity"
    elif fig["eligible_users_share"] < 0.1:
        verdict = "few users have enough history: most feeds will come from fallbacks"
    else:
        verdict = "enough overlap for collaborative filtering to add to content similarity"
    lines.append(f"verdict: {verdict}")
    return "\n".join(lines)
