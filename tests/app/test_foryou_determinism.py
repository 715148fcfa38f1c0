"""Two identical For You runs in one process give the same candidates, features, ranker and picks, bit for bit.

The world is the retrain gate test's demo (120 users, 600 goods): GF-CF's k (256, capped at the users - 1)
reaches the rank of the saves as of the ranker's cuts (users who joined later have none), where ARPACK asks for
fresh random vectors. Unseeded, they made the graph filter's scores, hence its candidates, the ranker's training
rows and the lists, differ between runs (the gate compared two identical pipelines and saw their recall differ
by a fifth). tests/serving/foryou/world.py's planted world has full rank and never showed it."""

from __future__ import annotations

import hashlib

import numpy as np

from graphrec.app.foryou import graph_filter_fit
from graphrec.core.arrays import GraphArrays
from graphrec.core.config import ForYouConfig
from serving.foryou.context import ForYouContext
from serving.foryou.features import candidate_batch
from serving.foryou.pipeline import for_you
from serving.foryou.ranker import fit_ranker, training_cut
from serving.foryou.sources import make_source

CFG = ForYouConfig(per_source=50, clusters=8, ranker_rounds=20, ranker_min_leaf=5)


def _demo_arrays() -> GraphArrays:
    from etl.arrays import graph_arrays
    from etl.build import build_graph
    from etl.demo_data import DemoParams, generate
    from etl.validate import clean_tables

    params = DemoParams(users=120, goods=600, seed=1)
    tables, _ = clean_tables(generate(params)[0], params.dim, now=params.end + 1)
    data, _, _ = build_graph(tables, min_goods=3)
    return graph_arrays(data, params.end, 3)


def _run(arrays: GraphArrays) -> dict[str, object]:
    ranker = fit_ranker(arrays, CFG, graph_filter_fit=graph_filter_fit)
    past = arrays.as_of_time(training_cut(arrays, CFG.label_share))  # the ranker's own training graph
    ctx = ForYouContext.build(past, CFG, graph_filter=graph_filter_fit(past.saves))
    users = np.flatnonzero(past.saves_per_user() >= CFG.ranker_min_user_saves)
    cs, x = candidate_batch(ctx, users, [make_source(s) for s in ranker.sources], CFG.per_source)
    serve = ForYouContext.build(arrays, CFG, graph_filter=graph_filter_fit(arrays.saves))
    lists = for_you(serve, np.flatnonzero(arrays.eligible()), 20, ranker)
    return {
        "rows": np.stack([cs.row, cs.good]),
        "features": np.nan_to_num(x, nan=-1.0),
        "ranker": hashlib.sha256(ranker.booster.model_to_string().encode()).hexdigest(),
        "ranker_rows": ranker.meta["rows"],
        "picks": lists.goods,
    }


def test_two_identical_runs_agree_bit_for_bit() -> None:
    arrays = _demo_arrays()
    a, b = _run(arrays), _run(arrays)
    assert a["ranker_rows"] == b["ranker_rows"]
    np.testing.assert_array_equal(a["rows"], b["rows"])
    np.testing.assert_array_equal(a["features"], b["features"])
    assert a["ranker"] == b["ranker"]
    np.testing.assert_array_equal(a["picks"], b["picks"])


def test_two_fits_of_a_rank_deficient_matrix_agree_bit_for_bit() -> None:
    """k above the rank of the saves makes ARPACK restart with fresh random vectors: each draw must be seeded
    (scipy's svds with a seeded v0 alone gives different vectors on this matrix from one call to the next)."""
    import scipy.sparse as sp

    from training.graph_filter import filter_basis

    distinct = sp.random(60, 900, density=0.03, random_state=1, format="csr", dtype=np.float32)
    distinct.data[:] = 1.0
    for m in (sp.vstack([distinct] * 5).tocsr(), sp.vstack([distinct] * 5).T.tocsr()):  # rank 60, k 80
        first, second = filter_basis(m, 80), filter_basis(m, 80)
        np.testing.assert_array_equal(first.vt.numpy(), second.vt.numpy())
        np.testing.assert_array_equal(first.vt_scaled_t, second.vt_scaled_t)
