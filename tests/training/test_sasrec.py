"""Known-answer tests for the SASRec-style sequence model (training.sequence).

The planted world: type-1 users save fillers, A, B, fillers; type-2 users (more of them) save fillers,
C, A, fillers. After A comes B (or a random filler), never C. So "after A comes B" is in the order only:
over the same saves, an order-blind model (co-occurrence with A, or popularity) prefers C. A user whose
sequence ends with A must get B first from the sequence model, and does not from the order-blind ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.sequence import (
    SASRecParams,
    Sequences,
    sequences_from_saves,
    split_last,
    train_sasrec,
)

A, B, C = 0, 1, 2
N_GOODS = 40
FILLERS = np.arange(3, N_GOODS)


def planted_world(seed: int = 0, n1: int = 240, n2: int = 360) -> Sequences:
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n1):
        seqs.append([*rng.choice(FILLERS, 3, replace=False), A, B, *rng.choice(FILLERS, 2, replace=False)])
    for _ in range(n2):
        seqs.append([*rng.choice(FILLERS, 3, replace=False), C, A, *rng.choice(FILLERS, 2, replace=False)])
    users = np.concatenate([np.full(len(s), u) for u, s in enumerate(seqs)])
    goods = np.concatenate([np.asarray(s) for s in seqs])
    times = np.concatenate([np.arange(len(s)) for s in seqs])
    # Shuffle the rows: the order must come from the times, not from the input order.
    perm = rng.permutation(len(users))
    return sequences_from_saves(users[perm], goods[perm], times[perm], len(seqs))


def queries(seed: int = 1, n: int = 50) -> Sequences:
    """Fresh users: three fillers, then A (no B, no C saved)."""
    rng = np.random.default_rng(seed)
    rows = [np.r_[rng.choice(FILLERS, 3, replace=False), A] for _ in range(n)]
    return Sequences(np.arange(0, 4 * n + 1, 4, dtype=np.int64), np.concatenate(rows).astype(np.int64))


PARAMS = SASRecParams(
    embedding_dim=32,
    num_blocks=1,
    num_heads=1,
    max_len=8,
    dropout=0.1,
    lr=5e-3,
    batch_size=64,
    negatives=N_GOODS,  # the full softmax at this size
    max_epochs=40,
    time_budget_s=60.0,
    threads=1,
    seed=0,
)


def first_picks(scores: np.ndarray, seqs: Sequences) -> np.ndarray:
    scores = scores.copy()
    for i in range(seqs.n_users):
        scores[i, seqs.of(i)] = -np.inf
    return scores.argmax(axis=1)


def sasrec_first(params: SASRecParams, world: Sequences) -> tuple[np.ndarray, np.ndarray]:
    from training.sequence import sequence_vectors

    result = train_sasrec(world, N_GOODS, params)
    q = queries()
    user_vecs = sequence_vectors(result.model, q, np.arange(q.n_users))
    return first_picks(user_vecs @ result.good_vecs.T, q), result.good_vecs


def order_blind_scores(world: Sequences, q: Sequences) -> dict[str, np.ndarray]:
    x = np.zeros((world.n_users, N_GOODS), np.float32)
    for u in range(world.n_users):
        x[u, world.of(u)] = 1.0
    xq = np.zeros((q.n_users, N_GOODS), np.float32)
    for u in range(q.n_users):
        xq[u, q.of(u)] = 1.0
    co = x.T @ x
    np.fill_diagonal(co, 0)
    pop = x.sum(0)
    norm = np.sqrt(np.maximum(pop, 1))
    return {
        "co_occurrence": xq @ co,
        "item_cosine": xq @ (co / norm[:, None] / norm[None, :]),
        "popularity": np.broadcast_to(pop, xq.shape),
    }


def test_sequence_model_recovers_after_a_comes_b() -> None:
    world = planted_world()
    first, _ = sasrec_first(PARAMS, world)
    assert (first == B).mean() >= 0.9, np.bincount(first, minlength=N_GOODS)


def test_order_blind_models_miss_the_rule() -> None:
    world, q = planted_world(), queries()
    for name, scores in order_blind_scores(world, q).items():
        first = first_picks(np.array(scores), q)
        assert (first == B).mean() <= 0.1, (name, np.bincount(first, minlength=N_GOODS))
        assert (first == C).mean() >= 0.9, (name, np.bincount(first, minlength=N_GOODS))


def test_shuffled_order_loses_the_rule() -> None:
    """The same saves with each sequence's order shuffled: the model can no longer tell B from C."""
    world = planted_world()
    rng = np.random.default_rng(5)
    goods = world.goods.copy()
    for u in range(world.n_users):
        lo, hi = world.indptr[u], world.indptr[u + 1]
        goods[lo:hi] = rng.permutation(goods[lo:hi])
    first, _ = sasrec_first(PARAMS, Sequences(world.indptr, goods))
    assert (first == B).mean() <= 0.5, np.bincount(first, minlength=N_GOODS)


def test_seeded_runs_are_identical() -> None:
    world = planted_world(n1=60, n2=90)
    params = SASRecParams(**{**PARAMS.to_dict(), "max_epochs": 2})
    a = train_sasrec(world, N_GOODS, params)
    b = train_sasrec(world, N_GOODS, params)
    np.testing.assert_array_equal(a.good_vecs, b.good_vecs)
    np.testing.assert_array_equal(a.user_vecs, b.user_vecs)


@pytest.mark.parametrize("in_batch", [False, True])
def test_sampled_softmax_and_early_stopping(in_batch: bool) -> None:
    """Sampled negatives (fewer than the catalog) still learn the rule; validation picks the best epoch.

    The validation users are the query users (fillers, then A), their held-out good B.
    """
    world, q = planted_world(), queries()
    both = Sequences(np.r_[world.indptr, world.indptr[-1] + q.indptr[1:]], np.r_[world.goods, q.goods])
    validation = np.r_[np.full(world.n_users, -1), np.full(q.n_users, B)]
    params = SASRecParams(**{**PARAMS.to_dict(), "negatives": 16, "in_batch": in_batch, "patience": 3})
    result = train_sasrec(both, N_GOODS, params, validation=validation)
    vals = [h["val"] for h in result.history if h["val"] is not None]
    assert result.best_val == max(vals)
    assert result.best_epoch == 1 + int(np.argmax(vals))
    assert result.best_val > 0.9  # NDCG@10 of B: nearly always first


def test_a_good_nobody_saved_gets_its_content_vector() -> None:
    world = planted_world(n1=60, n2=90)
    rng = np.random.default_rng(0)
    content = rng.normal(size=(N_GOODS + 1, 8)).astype(np.float32)
    params = SASRecParams(**{**PARAMS.to_dict(), "max_epochs": 2})
    result = train_sasrec(world, N_GOODS + 1, params, content=content)  # good N_GOODS is never saved
    model = result.model
    with torch.no_grad():
        expected = model.content_vectors(torch.from_numpy(content[N_GOODS:])).numpy()
    np.testing.assert_allclose(result.good_vecs[N_GOODS:], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(result.good_vecs[N_GOODS]).sum() > 0
    # Without content, the unsaved good has no vector at all.
    plain = train_sasrec(world, N_GOODS + 1, SASRecParams(**{**params.to_dict(), "use_content": False}))
    assert not plain.good_vecs[N_GOODS].any()


def test_sequences_follow_the_times() -> None:
    s = sequences_from_saves(np.array([1, 0, 1, 0]), np.array([5, 6, 7, 8]), np.array([3.0, 2.0, 1.0, 1.0]), 3)
    assert s.of(0).tolist() == [8, 6] and s.of(1).tolist() == [7, 5] and s.of(2).tolist() == []
    fit, last = split_last(s)
    assert fit.of(0).tolist() == [8] and last.tolist() == [6, 5, -1]


def test_gbce_learns_the_rule_too() -> None:
    """gSASRec's generalised BCE over sampled negatives recovers "after A comes B" as the softmax does."""
    params = SASRecParams(**{**PARAMS.to_dict(), "negatives": 16, "loss": "gbce", "gbce_t": 0.75})
    first, _ = sasrec_first(params, planted_world())
    assert (first == B).mean() >= 0.9, np.bincount(first, minlength=N_GOODS)


def test_an_unknown_loss_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        train_sasrec(planted_world(n1=6, n2=9), N_GOODS, SASRecParams(**{**PARAMS.to_dict(), "loss": "bpr"}))


def test_next_scores_are_the_user_vectors_against_every_good() -> None:
    from training.sequence import next_scores, sequence_vectors

    world = planted_world(n1=60, n2=90)
    result = train_sasrec(world, N_GOODS, SASRecParams(**{**PARAMS.to_dict(), "max_epochs": 3}))
    q = queries()
    users = np.arange(q.n_users)
    scores = next_scores(result.model, q, users)
    assert scores.shape == (q.n_users, N_GOODS) and scores.dtype == np.float32
    expected = sequence_vectors(result.model, q, users) @ result.good_vecs.T
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
