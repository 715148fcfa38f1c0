"""The sequence model's evaluation row: save order from `save_time`, the validation good held out of training."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from evaluation.protocol import TrainData, binary_csr
from evaluation.sequence_rows import holdout, train_sequences


def train_data(validation: sp.csr_matrix | None) -> TrainData:
    # User 0 saved goods 3, 1, 2 (in that order); user 1 saved 0 then 2; user 2 saved 1 only.
    users, goods, times = np.array([0, 0, 0, 1, 1, 2]), np.array([1, 2, 3, 2, 0, 1]), np.array([5, 9, 2, 4, 1, 7])
    saves = binary_csr(users, goods, (3, 4))
    return TrainData(saves=saves, save_time=binary_csr(users, goods, (3, 4), times), validation=validation)


def test_sequences_follow_save_time() -> None:
    seqs = train_sequences(train_data(None))
    assert [seqs.of(u).tolist() for u in range(3)] == [[3, 1, 2], [0, 2], [1]]


def test_the_validation_good_leaves_the_training_sequence() -> None:
    # User 0's validation good is their newest (2); user 1's (0) is not their newest: not validated.
    val = binary_csr(np.array([0, 1]), np.array([2, 0]), (3, 4))
    tr = train_data(val)
    fit, target = holdout(tr, train_sequences(tr))
    assert target.tolist() == [2, -1, -1]
    assert [fit.of(u).tolist() for u in range(3)] == [[3, 1], [0, 2], [1]]


def test_without_validation_the_newest_good_is_held_out() -> None:
    tr = train_data(None)
    fit, target = holdout(tr, train_sequences(tr))
    assert target.tolist() == [2, 2, -1]
    assert [fit.of(u).tolist() for u in range(3)] == [[3, 1], [0], [1]]
