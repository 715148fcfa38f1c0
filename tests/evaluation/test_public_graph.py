"""The For You row on public sequence data: the train view laid on a clock of sequence steps and built by etl's
build_graph, a validation window one item earlier, and the pipeline run end to end on a small sequence file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from etl.arrays import graph_arrays
from evaluation.datasets.beauty import load_beauty, validation_window
from evaluation.datasets.files import load_dataset_path
from evaluation.public_graph import PUBLIC_T, STEP_S, public_graph, why_not
from evaluation.run import load_public, run_evaluation
from graphrec.app.foryou import evaluation_rows
from graphrec.core.artifacts import SAVES
from graphrec.core.config import load_config
from serving.foryou.ranker import label_matrix, share_cut, training_cut
from tests.evaluation.test_beauty_loader import write

LINES = ["1 1 2 3 4", "2 2 4 1", "3 3 2"]
ATTRIBUTES = {"1": [50, 7, 8], "2": [51, 8], "3": [50], "4": [7, 9]}


def test_the_validation_window_is_the_split_one_item_earlier(tmp_path: Path) -> None:
    s = validation_window(load_beauty(write(tmp_path, LINES, ATTRIBUTES)))
    # User 0 saw 1, 2, 3, 4: item 3 (the validation item) is now the test, 2 validates, 1 and 2 train.
    assert s.test.toarray().tolist() == [[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    assert s.train.toarray().tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert s.validation.toarray().tolist() == [[0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert s.position.toarray()[0].tolist() == [-2, -1, 0, 0]
    assert s.name == "beauty-validation"
    with pytest.raises(ValueError, match="no validation window"):
        load_public("gowalla", tmp_path, window="validation")


def test_the_train_view_as_a_graph_on_a_clock_of_steps(tmp_path: Path) -> None:
    es = load_dataset_path(write(tmp_path, LINES, ATTRIBUTES) / "Beauty.txt")
    data, id_maps, manifest = public_graph(es, min_goods=1)
    # Indices are the EvalSet's: user_id = user_idx + 1, good_id = good_idx + 1; nothing dropped.
    assert id_maps.user_ids.tolist() == [1, 2, 3] and id_maps.good_ids.tolist() == [1, 2, 3, 4]
    ei, t = data[SAVES].edge_index.numpy(), data[SAVES].time.numpy()
    when = {(int(u), int(g)): int(s) for u, g, s in zip(ei[0], ei[1], t, strict=True)}
    # User 0's train items 1, 2, 3 (0-based 0, 1, 2): the newest one step before T, then two, three.
    assert [when[(0, g)] for g in (0, 1, 2)] == [PUBLIC_T - 3 * STEP_S, PUBLIC_T - 2 * STEP_S, PUBLIC_T - STEP_S]
    assert when[(2, 2)] == PUBLIC_T - STEP_S  # every user's newest train item at the same time
    assert manifest["as_of"] < PUBLIC_T and len(when) == es.train.saves.nnz
    assert data["good"].domain.tolist() == [0, 1, 0, -1]  # brands 50, 51 as domains brand-0, brand-1
    np.testing.assert_allclose(data["good"].x.numpy(), es.train.content, atol=1e-6)
    # The ranker's cut on this clock holds out every user's newest train item (ties: the whole step).
    arrays = graph_arrays(data, int(manifest["as_of"]), 1)
    cut = training_cut(arrays, 0.1)
    assert cut == PUBLIC_T - 2 * STEP_S
    assert label_matrix(arrays, cut).nnz == 3


def test_share_cut_leaves_saves_after_it_when_the_newest_time_is_shared() -> None:
    t = np.array([1, 2, 3, 4, 5, 9, 9, 9], dtype=np.int64)
    assert share_cut(t, 0.1) == 5  # the quantile falls among the three 9s: nothing would follow 9
    assert share_cut(np.arange(100), 0.1) == 89  # distinct times: the newest tenth after the cut


def test_no_for_you_row_without_order_or_content(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("0 0 1\n1 1 2\n2 0\n")
    (tmp_path / "test.txt").write_text("0 2\n1 0\n")
    es = load_dataset_path(tmp_path)
    assert "no order" in (why_not(es.train) or "") and public_graph(es, 10) is None
    assert evaluation_rows(load_config())(es) == []
    seq = tmp_path / "Toys.txt"
    seq.write_text("1 1 2 3\n2 3 1\n")
    assert "content" in (why_not(load_dataset_path(seq).train) or "")


def _grouped_world(path: Path, seed: int = 0) -> Path:
    """400 users, 60 items in 6 groups of 10; each user saves 6-9 items of one group (items of a group share
    their category attribute): who saved what of a group says what comes next, popularity does not."""
    rng = np.random.default_rng(seed)
    lines = []
    for u in range(400):
        group = u % 6
        n = int(rng.integers(6, 10))
        items = rng.choice(10, size=n, replace=False) + group * 10 + 1
        lines.append(" ".join(str(x) for x in [u + 1, *items]))
    seq = path / "Grouped.txt"
    seq.write_text("\n".join(lines) + "\n")
    attrs = {str(i): [100 + (i - 1) // 10] for i in range(1, 61)}
    (path / "Grouped_item2attributes.json").write_text(json.dumps(attrs))
    return seq


@pytest.mark.slow
def test_the_for_you_row_runs_on_a_sequence_file(tmp_path: Path) -> None:
    seq = _grouped_world(tmp_path)
    cfg = load_config(overrides=["graph.min_goods=3", "foryou.ranker_users=400"])
    run = run_evaluation(
        cfg,
        [str(seq)],
        models=("for_you", "popularity"),
        out=tmp_path / "report",
        extra_rows=evaluation_rows(cfg),
    )
    rows = {r.name: r for r in run.results[0].rows}
    assert set(rows) == {"for_you", "popularity"} and rows["for_you"].error is None
    m = run.metrics
    # Within a group every item is as likely next, so the group's items (3 to 4 of 10 left) carry the hits.
    assert m["Grouped_for_you_recall@5"] > 2 * m["Grouped_popularity_recall@5"]
