"""make bench-interests: each user's interests (serving/foryou/interests.py) on the demo world, at 1x and 10x.

The 1x world is etl.demo_data's (5,000 users / 100,000 goods, seed 0, no database); 10x stacks its users ten
times over the same goods (the clustering's cost grows with saves, not with the catalogue). Also reports how many
of the users' planted interests of weight >= 0.15 the interests find (an interest's majority style).
Targets on the 2-core machine: seconds at 1x, well under a minute at 10x.
"""

from __future__ import annotations

import os
import time

import numpy as np
import scipy.sparse as sp
from _common import report

from etl.demo_data import DemoParams, generate
from serving.foryou.interests import InterestParams, find_interests

USERS = int(os.environ.get("BENCH_USERS", 5000))
GOODS = int(os.environ.get("BENCH_GOODS", 100000))
DAY = 86_400


def main() -> None:
    tables, truth = generate(DemoParams(users=USERS, goods=GOODS, seed=0))
    u = np.searchsorted(tables.users.id, tables.saves.user_id)
    g = np.searchsorted(tables.goods.id, tables.saves.good_id)
    shape = (len(tables.users.id), len(tables.goods.id))
    t = tables.saves.saved_at.astype(np.float64)
    order = np.lexsort((t, g, u))
    u, g, t = u[order], g[order], t[order]
    first = np.ones(len(u), dtype=bool)
    first[1:] = (u[1:] != u[:-1]) | (g[1:] != g[:-1])
    saves = sp.csr_matrix((np.ones(int(first.sum()), np.float32), (u[first], g[first])), shape=shape)
    times = sp.csr_matrix((t[first], (u[first], g[first])), shape=shape)
    content = tables.goods.embedding
    params = InterestParams(half_life=30 * DAY)
    now = float(t.max())

    t0, c0 = time.perf_counter(), time.process_time()
    ui = find_interests(saves, content, save_time=times, now=now, params=params)
    wall_1x, cpu_1x = time.perf_counter() - t0, time.process_time() - c0

    big = sp.vstack([saves] * 10).tocsr()
    big_t = sp.vstack([times] * 10).tocsr()
    t0, c0 = time.perf_counter(), time.process_time()
    find_interests(big, content, save_time=big_t, now=now, params=params)
    wall_10x, cpu_10x = time.perf_counter() - t0, time.process_time() - c0

    # Planted interests of weight >= 0.15 found: an interest whose saves are mostly of that style.
    style = np.full(len(tables.goods.id), -1)
    style[np.searchsorted(tables.goods.id, truth.good_style["good_id"])] = truth.good_style["style"]
    member = ui.save_interest >= 0
    n_styles = int(style.max()) + 1
    counts = sp.csr_matrix(
        (np.ones(int(member.sum())), (ui.save_interest[member], style[ui.save_good[member]])),
        shape=(len(ui.owner), n_styles),
    )
    majority = np.asarray(counts.argmax(axis=1)).ravel()
    found = sp.csr_matrix((np.ones(len(ui.owner)), (ui.owner, majority)), shape=(shape[0], n_styles)) > 0
    w = truth.user_interests
    heavy = w["weight"] >= 0.15
    rows = np.searchsorted(tables.users.id, w["user_id"][heavy])
    hit = np.asarray(found[rows, w["style"][heavy]]).ravel()
    report(
        {
            "users": shape[0],
            "saves": int(saves.nnz),
            "interests_per_user": round(float(ui.count.mean()), 2),
            "heavy_planted_interests_found": round(float(hit.mean()), 3),
            "interests_1x_s": round(wall_1x, 2),
            "interests_1x_cpu_s": round(cpu_1x, 2),
            "interests_10x_s": round(wall_10x, 2),
            "interests_10x_cpu_s": round(cpu_10x, 2),
        }
    )


if __name__ == "__main__":
    main()
