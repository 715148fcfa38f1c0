"""Bootstrap intervals over users, the paired comparison of two rows, per-source figures of list-building rows,
and how they reach report.md and metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from evaluation import bootstrap
from evaluation.evaluator import RankedLists, Recommender, evaluate
from evaluation.protocol import DemoTruth, EvalSet, TrainData, binary_csr, from_public
from evaluation.report import flat_metrics, write_report


def test_interval_contains_the_mean_and_shrinks_with_more_users() -> None:
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 10_000):
        values = rng.binomial(1, 0.3, size=n).astype(float)  # a hit-rate-like per-user figure
        iv = bootstrap.mean_interval(values, seed=0)
        assert iv.lo < iv.point < iv.hi
        assert iv.point == pytest.approx(values.mean())
        widths.append(iv.hi - iv.lo)
    # The width goes as 1/sqrt(n): 100x the users, about a tenth of the width.
    assert widths[1] < widths[0] / 5
    assert widths[0] == pytest.approx(2 * 1.96 * np.sqrt(0.3 * 0.7 / 100), rel=0.25)


def test_resamples_are_seeded_and_shared_by_every_series() -> None:
    values = np.random.default_rng(2).random((3, 50))
    a = bootstrap.bootstrap_means(values, 200, seed=7)
    np.testing.assert_array_equal(a, bootstrap.bootstrap_means(values, 200, seed=7))
    # Series resampled together give the same means as each alone: the resamples do not depend on the series.
    np.testing.assert_allclose(a[1], bootstrap.bootstrap_means(values[1], 200, seed=7)[0])
    assert not np.allclose(a, bootstrap.bootstrap_means(values, 200, seed=8))


def test_paired_difference_of_a_row_with_itself_is_exactly_zero() -> None:
    values = np.random.default_rng(3).random(300)
    d = bootstrap.paired_difference(values, values)
    assert (d.point, d.lo, d.hi) == (0.0, 0.0, 0.0)
    assert not d.excludes_zero()


def test_pairing_finds_a_small_gain_that_unpaired_intervals_miss() -> None:
    # Users differ a lot from each other; row b is row a plus a small gain for every user. The rows'
    # own intervals overlap, yet the paired interval of the difference is well above zero.
    rng = np.random.default_rng(4)
    a = rng.random(400)
    b = a + 0.02 + 0.01 * rng.standard_normal(400)
    ia, ib = bootstrap.mean_interval(a), bootstrap.mean_interval(b)
    assert ib.lo < ia.hi  # overlapping
    d = bootstrap.paired_difference(b, a)
    assert d.lo > 0 and d.excludes_zero()
    assert d.point == pytest.approx(b.mean() - a.mean())
    r = bootstrap.paired_ratio(b, a)
    assert r.lo > 1.0 and r.point == pytest.approx(b.mean() / a.mean())
    with pytest.raises(ValueError, match="same users"):
        bootstrap.paired_difference(a, b[:-1])
    with pytest.raises(ValueError, match="finite"):
        bootstrap.mean_interval(np.array([0.1, np.nan]))


def _planted(n_users: int = 300, n_goods: int = 40, seed: int = 0) -> tuple[EvalSet, np.ndarray]:
    """Each user likes one of 4 blocks of goods: 3 train saves and 2 test saves inside their block."""
    rng = np.random.default_rng(seed)
    block = rng.integers(0, 4, n_users)
    size = n_goods // 4
    tr_r, tr_c, te_r, te_c = [], [], [], []
    for u in range(n_users):
        goods = block[u] * size + rng.choice(size, 5, replace=False)
        tr_r += [u] * 3
        tr_c += list(goods[:3])
        te_r += [u] * 2
        te_c += list(goods[3:])
    train = sp.csr_matrix((np.ones(len(tr_r), np.float32), (tr_r, tr_c)), shape=(n_users, n_goods))
    test = sp.csr_matrix((np.ones(len(te_r), np.float32), (te_r, te_c)), shape=(n_users, n_goods))
    return from_public("planted", train, test, seed=seed), block


def _block_scores(block: np.ndarray, n_goods: int) -> Recommender:
    size = n_goods // 4

    def fit(train: TrainData):
        def score(users: np.ndarray) -> np.ndarray:
            s = np.zeros((len(users), n_goods), np.float32)
            for i, u in enumerate(users):
                s[i, block[u] * size : (block[u] + 1) * size] = 1.0
            return s + np.random.default_rng(list(users)).random(s.shape, dtype=np.float32) * 0.1

        return score

    return Recommender("blocks", "knows each user's block", fit)


def _random(name: str = "random") -> Recommender:
    def fit(train: TrainData):
        return lambda users: np.random.default_rng([7, *users.tolist()]).random((len(users), train.n_goods))

    return Recommender(name, "random order", fit)


def test_evaluate_compares_the_target_with_the_best_other_row(tmp_path: Path) -> None:
    es, block = _planted()
    rows = [_random(), _block_scores(block, es.train.n_goods)]
    twin = Recommender("random_twin", "the same random order", rows[0].fit)
    result = evaluate(es, [*rows, twin], ks=(5, 10), compare="blocks")
    by = {r.name: r for r in result.rows}
    for r in result.rows:
        for key in ("recall@5", "ndcg@5", "recall@10", "ndcg@10"):
            iv = r.intervals[key]
            assert iv.point == pytest.approx(r.metrics[key]) and iv.lo <= iv.point <= iv.hi
    assert [c.metric for c in result.comparisons] == ["recall@10", "ndcg@10"]
    c = result.comparisons[0]
    assert c.target == "blocks" and c.other in ("random", "random_twin")
    assert c.difference.lo > 0 and c.ratio.lo > 1
    assert c.difference.point == pytest.approx(by["blocks"].metrics["recall@10"] - by["random"].metrics["recall@10"])
    # A row against its identical twin: exactly zero, the interval too.
    same = evaluate(es, [rows[0], twin], ks=(10,), compare="random")
    assert same.comparisons[0].other == "random_twin"
    d = same.comparisons[0].difference
    assert (d.point, d.lo, d.hi) == (0.0, 0.0, 0.0)

    write_report([result], tmp_path, {"run": "t"})
    md = (tmp_path / "report.md").read_text()
    assert "95% bootstrap intervals over users" in md
    assert "**blocks**" in md and "the paired interval lies above zero" in md
    saved = json.loads((tmp_path / "metrics.json").read_text())["datasets"]["planted"]
    assert saved["comparisons"][0]["target"] == "blocks"
    assert saved["rows"][1]["intervals"]["recall@10"]["lo"] == pytest.approx(by["blocks"].intervals["recall@10"].lo)
    flat = flat_metrics([result])
    assert flat["planted_blocks_vs_best_other_recall@10_diff_lo"] == pytest.approx(c.difference.lo)


def test_without_the_target_the_best_row_is_compared_and_references_and_ablations_are_left_out() -> None:
    es, block = _planted()
    oracle = Recommender("oracle", "reference", _block_scores(block, es.train.n_goods).fit, "reference")
    part = Recommender("src_blocks", "a piece of the target", oracle.fit, "ablation")
    result = evaluate(es, [_random(), _random("random_2"), oracle, part], ks=(10,))
    c = result.comparisons[0]
    assert {c.target, c.other} == {"random", "random_2"}  # neither the oracle nor the ablation row


def _lists_row(es: EvalSet, block: np.ndarray, picks_of=None) -> Recommender:
    """A list-building row: each user's first 3 picks from their block ('block' source), then 3 random
    goods ('filler' source), then padding."""
    size = es.train.n_goods // 4

    def fit(train: TrainData):
        def lists(users: np.ndarray) -> RankedLists:
            picks = np.full((len(users), 8), -1, np.int64)
            source = np.full((len(users), 8), "", dtype=object)
            for i, u in enumerate(users):
                saved = set(train.saves[u].indices)
                mine = [g for g in range(block[u] * size, (block[u] + 1) * size) if g not in saved][:3]
                other = [g for g in range(train.n_goods) if g // size != block[u] and g not in saved][:3]
                picks[i, :6] = mine + other
                source[i, :6] = ["block"] * 3 + ["filler"] * 3
            if picks_of is not None:
                picks = picks_of(users, picks, train)
            return RankedLists(picks, source)

        return lists

    return Recommender("lists", "ranked lists with sources", fit)


def test_sources_of_list_building_rows_are_counted(tmp_path: Path) -> None:
    es, block = _planted()
    result = evaluate(es, [_lists_row(es, block)], ks=(5, 10))
    row = result.rows[0]
    assert row.error is None
    n = len(es.users)
    src = row.sources
    assert set(src) == {"block", "filler"}
    assert src["block"]["picks"] == 3 * n and src["filler"]["picks"] == 3 * n  # padding is no one's pick
    assert src["filler"]["hits"] == 0 and src["block"]["hits"] > 0 and src["block"]["hit_share"] == 1.0
    assert src["block"]["hits"] == pytest.approx(row.metrics["precision@10"] * 10 * n)
    assert row.metrics["users_with_5_picks"] == 1.0
    write_report([result], tmp_path, {"run": "t"})
    assert "| block | " in (tmp_path / "report.md").read_text()


def _own_save(users: np.ndarray, train: TrainData) -> np.ndarray:
    return np.array([[train.saves[u].indices[0]] for u in users], np.int64)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (lambda users, p, train: p.astype(np.float32), "must be int"),
        (lambda users, p, train: np.concatenate([p[:, :1] * 0 + train.n_goods, p[:, 1:]], axis=1), "outside"),
        (lambda users, p, train: np.concatenate([p[:, :1], p[:, :1], p[:, 2:]], axis=1), "twice"),
        (lambda users, p, train: np.concatenate([p[:, 6:7], p[:, :6], p[:, 7:]], axis=1), "after -1 padding"),
        (lambda users, p, train: np.concatenate([_own_save(users, train), p[:, 1:]], axis=1), "saved before T"),
    ],
)
def test_ranked_lists_that_break_the_contract_fail_their_row_by_name(broken, message: str) -> None:
    es, block = _planted(n_users=40)
    result = evaluate(es, [_lists_row(es, block, broken), _random()], ks=(5,))
    assert result.rows[0].error is not None and message in result.rows[0].error
    assert result.rows[0].error.startswith("ValueError: lists:")
    assert result.rows[1].error is None


def test_interest_figures_reward_a_list_that_covers_every_heavy_interest(tmp_path: Path) -> None:
    # 2 styles, goods 0-19 of style 0 and 20-39 of style 1, content vectors along two axes. Every user weighs
    # style 0 at 0.7 and style 1 at 0.3 and saved 7 + 3 goods accordingly.
    n_users, n_goods = 20, 40
    style = np.repeat([0, 1], 20)
    rng = np.random.default_rng(0)
    content = np.eye(2, dtype=np.float32)[style] + 0.01 * rng.standard_normal((n_goods, 2)).astype(np.float32)
    rows, cols = [], []
    for u in range(n_users):
        rows += [u] * 10
        cols += list(rng.choice(20, 7, replace=False)) + list(20 + rng.choice(20, 3, replace=False))
    saves = binary_csr(np.array(rows), np.array(cols), (n_users, n_goods))
    test = binary_csr(np.arange(n_users), np.full(n_users, 0), (n_users, n_goods))
    es0 = from_public("styles", saves, test, content=content / np.linalg.norm(content, axis=1, keepdims=True))
    truth = DemoTruth(interest=np.tile(np.array([[0.7, 0.3]], np.float32), (n_users, 1)), style=style)
    es = EvalSet(es0.name, es0.train, es0.users, es0.test, truth=truth, counts=es0.counts)

    def row(name: str, share_style_1: float) -> Recommender:
        def fit(train: TrainData):
            def lists(users: np.ndarray) -> RankedLists:
                out = np.full((len(users), 10), -1, np.int64)
                for i, u in enumerate(users):
                    saved = set(train.saves[u].indices)
                    n1 = int(round(10 * share_style_1))
                    a = [g for g in range(20) if g not in saved][: 10 - n1]
                    b = [g for g in range(20, 40) if g not in saved][:n1]
                    out[i, : len(a) + len(b)] = a + b
                return RankedLists(out)

            return lists

        return Recommender(name, name, fit)

    result = evaluate(es, [row("one_taste", 0.0), row("calibrated", 0.3), row("flipped", 0.7)], ks=(10,))
    by = {r.name: r.metrics for r in result.rows}
    assert by["one_taste"]["interest_coverage@10"] == pytest.approx(0.5)
    assert by["calibrated"]["interest_coverage@10"] == pytest.approx(1.0)
    assert by["flipped"]["interest_coverage@10"] == pytest.approx(1.0)
    key = "calibration_kl_planted@10"
    assert by["calibrated"][key] < by["flipped"][key] < by["one_taste"][key]
    assert by["calibrated"][key] == pytest.approx(0.0, abs=1e-6)
    # Over content clusters (32 of them on 40 goods here: not the styles) the figure is there and finite.
    assert all(np.isfinite(by[name]["calibration_kl@10"]) for name in by)
    write_report([result], tmp_path, {"run": "t"})
    assert "interest_coverage@10" in (tmp_path / "report.md").read_text()
