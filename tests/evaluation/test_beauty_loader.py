"""The Amazon Beauty loader: leave-last-out, brands recognised as the attribute that only ever comes first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.datasets.beauty import load_beauty

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "amazon-beauty"


def write(root: Path, lines: list[str], attributes: dict[str, list[int]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Beauty.txt").write_text("\n".join(lines) + "\n")
    (root / "Beauty_item2attributes.json").write_text(json.dumps(attributes))
    return root


def test_leave_last_out_positions_brands_and_categories(tmp_path: Path) -> None:
    # Attribute 50 and 51 only ever come first: brands. 7 leads item 4's list (no brand) but also appears
    # later in item 1's: a category.
    root = write(
        tmp_path,
        ["1 1 2 3 4", "2 2 4 1", "3 3 2"],
        {"1": [50, 7, 8], "2": [51, 8], "3": [50], "4": [7, 9]},
    )
    s = load_beauty(root)
    assert (s.n_users, s.n_items) == (3, 4)
    # Last item is the test, the one before validates, everything but the last trains.
    assert s.test.toarray().tolist() == [[0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]]
    assert s.validation.toarray().tolist() == [[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    assert s.train.toarray().tolist() == [[1, 1, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    # Steps back from the newest train item: user 0 saw 1, 2, 3 then (test) 4.
    assert s.position.toarray()[0].tolist() == [-3, -2, -1, 0]
    assert s.domain.tolist() == [0, 1, 0, -1]
    # Categories 7, 8, 9 multi-hot and normalised; item 3 has none.
    np.testing.assert_allclose(s.content[0], [1 / np.sqrt(2), 1 / np.sqrt(2), 0])
    np.testing.assert_allclose(s.content[2], [0, 0, 0])


def test_bad_input_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Beauty.txt"):
        load_beauty(tmp_path / "nowhere")
    root = write(tmp_path / "zero", ["1 0 2"], {})
    with pytest.raises(ValueError, match="1-based"):
        load_beauty(root)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"public data not found at {SHARED}")
def test_the_published_files() -> None:
    s = load_beauty(SHARED)
    assert (s.n_users, s.n_items) == (22363, 12101)
    assert s.test.nnz == s.n_users and s.train.nnz + s.test.nnz == 198502
    assert (s.domain >= 0).sum() > 0.5 * s.n_items
