"""evaluation.datasets.gowalla: the LightGCN split's text format, the validation carve-out, and the real files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from evaluation.datasets.gowalla import carve_validation, load_gowalla

SHARED = Path(os.environ.get("GRAPHREC_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def write(root: Path, train: str, test: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.txt").write_text(train)
    (root / "test.txt").write_text(test)
    return root


def test_tiny_split_is_read_into_binary_matrices(tmp_path: Path) -> None:
    root = write(tmp_path / "g", "0 0 1 2\n1 2 3\n2 1\n3\n", "0 3\n1 0 1\n2 4\n")
    split = load_gowalla(root)
    assert (split.n_users, split.n_items, split.name) == (4, 5, "gowalla")
    assert split.train.shape == split.test.shape == (4, 5)
    np.testing.assert_array_equal(
        split.train.toarray(), [[1, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(split.test.toarray()[:, 3:], [[1, 0], [0, 0], [0, 1], [0, 0]])
    assert split.test[1].indices.tolist() == [0, 1]


def test_missing_file_and_bad_token_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train.txt"):
        load_gowalla(tmp_path)
    root = write(tmp_path / "bad", "0 1 2\n1 x 3\n", "0 1\n")
    with pytest.raises(ValueError, match=r"train.txt:2"):
        load_gowalla(root)


def test_validation_carve_out_partitions_each_users_items() -> None:
    rng = np.random.default_rng(0)
    train = sp.csr_matrix((rng.random((200, 100)) < 0.1).astype(np.float32))
    fit, val = carve_validation(train, share=0.2, seed=3)
    assert fit.multiply(val).nnz == 0
    assert (fit + val != train).nnz == 0
    counts, kept = np.diff(train.indptr), np.diff(fit.indptr)
    assert (kept[counts > 0] >= 1).all()
    assert abs(val.nnz / train.nnz - 0.2) < 0.03
    again, _ = carve_validation(train, share=0.2, seed=3)
    other, _ = carve_validation(train, share=0.2, seed=4)
    assert (again != fit).nnz == 0 and (other != fit).nnz > 0


@pytest.mark.skipif(not (SHARED / "gowalla" / "train.txt").is_file(), reason=f"no Gowalla data at {SHARED}/gowalla")
def test_real_gowalla_has_the_readme_counts() -> None:
    split = load_gowalla(SHARED / "gowalla")
    assert (split.n_users, split.n_items) == (29_858, 40_981)
    assert (split.train.nnz, split.test.nnz) == (810_128, 217_242)
    # Every test item occurs in train, and no user has a test item in their own train set.
    assert np.isin(np.unique(split.test.indices), np.unique(split.train.indices)).all()
    assert split.train.multiply(split.test).nnz == 0
