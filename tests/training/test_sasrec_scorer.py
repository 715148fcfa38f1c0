"""training.models.sasrec.next_good_scorer: a sasrec checkpoint as the For You sequence source's callable.

On the contract's ring world (tests/training/worlds.ring_world, the answer is also the next in sequence),
after a checkpoint round trip: the scores over the training graph are the embeddings' inner products, the
withheld good comes first, and a time cut's save times give the sequences as of that cut.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from graphrec.core.artifacts import SAVES
from graphrec.core.config import TrainConfig
from tests.training.worlds import graph_of, ring_world
from training.checkpoint import load_trained, save_trained
from training.embed import embed
from training.models.sasrec import next_good_scorer
from training.train import fit

CFG = TrainConfig(
    model="sasrec",
    embedding_dim=32,
    batch_size=256,
    negatives=128,
    max_epochs=30,
    patience=3,
    sasrec_lr=0.005,
    val_share=0.0,
)


def test_scores_match_the_embeddings_and_follow_the_cut(tmp_path: Path) -> None:
    tables, test_users, withheld = ring_world()
    data, id_maps = graph_of(tables)
    trained = load_trained(save_trained(fit(data, id_maps, {"name": "ring"}, CFG, progress=False), tmp_path))
    score = next_good_scorer(trained, data, id_maps)
    s = score(test_users)
    n_goods = int(data["good"].num_nodes)
    assert s.shape == (len(test_users), n_goods) and s.dtype == np.float32
    emb = embed(trained, data, id_maps)
    np.testing.assert_allclose(s, emb.user_vecs[test_users] @ emb.good_vecs.T, rtol=1e-4, atol=1e-4)
    users, goods = data[SAVES].edge_index.numpy()
    times = data[SAVES].time.numpy().astype(np.float64)
    saved = sp.csr_matrix((np.ones(len(users)), (users, goods)), shape=(int(data["user"].num_nodes), n_goods))
    masked = np.where(saved[test_users].toarray() > 0, -np.inf, s)
    assert (masked.argmax(axis=1) == withheld).mean() >= 0.95
    # The graph's own save times as `save_time` give the same scores.
    own = sp.csr_matrix((times, (users, goods)), shape=saved.shape)
    np.testing.assert_allclose(next_good_scorer(trained, data, id_maps, save_time=own)(test_users), s, atol=1e-5)
    # A cut without each test user's newest save (c + 1, after c + 2): the next good is now c + 1, which
    # an order-blind scorer would not prefer to the centre c (nearer the mean, as co-saved).
    keep = ~np.isin(users, test_users)
    newest = np.zeros(len(test_users), np.int64)
    for i, u in enumerate(test_users):
        mine = np.flatnonzero(users == u)
        last = mine[np.argmax(times[mine])]
        newest[i] = goods[last]
        keep[mine[mine != last]] = True
    cut = sp.csr_matrix((times[keep], (users[keep], goods[keep])), shape=saved.shape)
    s_cut = next_good_scorer(trained, data, id_maps, save_time=cut)(test_users)
    seen = (cut[test_users] != 0).toarray()
    assert (np.where(seen, -np.inf, s_cut).argmax(axis=1) == newest).mean() >= 0.8
