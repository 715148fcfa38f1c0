"""The report of an evaluation: report.md for people, PNG plots, and metrics.json with every figure."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.bootstrap import RESAMPLES
from evaluation.evaluator import CONTENT_GROUPS, CURVE_MAX, INTEREST_MIN_WEIGHT, MIN_PICKS, EvalResult

PLOTS = {
    "metrics_by_model.png": "Recall, NDCG and hit rate at K for every row",
    "recall_curve.png": f"Recall@K for K = 1..{CURVE_MAX}",
    "pick_popularity.png": "How popular the picks are, against the whole catalog",
    "domains_per_list.png": "Distinct domains among each user's picks",
}


def to_json(results: list[EvalResult], meta: dict[str, Any]) -> dict[str, Any]:
    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return x

    return clean(
        {
            **meta,
            "datasets": {
                r.eval_set.name: {
                    "description": r.eval_set.description,
                    "counts": r.eval_set.counts,
                    "ks": list(r.ks),
                    "eval_s": round(r.eval_s, 3),
                    "rows": [row.to_json() for row in r.rows],
                    "comparisons": [c.to_json() for c in r.comparisons],
                }
                for r in results
            },
        }
    )


def flat_metrics(results: list[EvalResult]) -> dict[str, float | None]:
    """`<dataset>_<row>_<metric>` -> value, the shape benchmarks print and graphrec_runs stores.

    Undefined figures (NaN: e.g. no list with two picks to measure diversity) become None: jsonb has no NaN.
    """
    out: dict[str, float | None] = {}
    for r in results:
        for row in r.rows:
            for key, value in row.metrics.items():
                out[f"{r.eval_set.name}_{row.name}_{key}"] = value if math.isfinite(value) else None
            for key, iv in row.intervals.items():
                out[f"{r.eval_set.name}_{row.name}_{key}_lo"] = iv.lo
                out[f"{r.eval_set.name}_{row.name}_{key}_hi"] = iv.hi
            for source, fig in row.sources.items():
                for what in ("picks", "hits"):
                    out[f"{r.eval_set.name}_{row.name}_source_{source}_{what}"] = fig[what]
            out[f"{r.eval_set.name}_{row.name}_fit_s"] = row.fit_s
            out[f"{r.eval_set.name}_{row.name}_score_s"] = row.score_s
        for c in r.comparisons:
            # The other row's name is in metrics.json; here its figure, and the paired difference and ratio.
            pre = f"{r.eval_set.name}_{c.target}_vs_best_other_{c.metric}"
            out[f"{pre}_other"] = c.other_value
            for part, iv in (("diff", c.difference), ("ratio", c.ratio)):
                out[f"{pre}_{part}"] = iv.point if math.isfinite(iv.point) else None
                out[f"{pre}_{part}_lo"] = iv.lo if math.isfinite(iv.lo) else None
                out[f"{pre}_{part}_hi"] = iv.hi if math.isfinite(iv.hi) else None
    return out


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def _table(result: EvalResult) -> str:
    k = max(result.ks)
    cols = [
        (f"recall@{k}", 4),
        (f"ndcg@{k}", 4),
        (f"hit@{k}", 3),
        (f"map@{k}", 4),
        (f"mrr@{k}", 4),
        (f"precision@{k}", 4),
        (f"coverage@{k}", 3),
        (f"diversity@{k}", 3),
        (f"domains@{k}", 1),
        (f"novelty@{k}", 1),
        (f"new_good_cosine@{k}", 3),
        (f"new_good_domain_hit@{k}", 3),
        (f"interest_coverage@{k}", 3),
        (f"calibration_kl@{k}", 3),
        (f"calibration_kl_planted@{k}", 3),
        (f"users_with_{MIN_PICKS}_picks", 3),
    ]
    present = [(c, d) for c, d in cols if any(c in row.metrics for row in result.rows)]
    head = ["model", "kind"] + [c for c, _ in present] + ["fit s", "score s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranked = sorted(result.rows, key=lambda r: -r.metrics.get(f"recall@{k}", -1.0))
    for row in ranked:
        if row.error:
            lines.append(f"| {row.name} | {row.kind} | failed: {row.error} |")
            continue
        cells = [row.name, row.kind] + [_fmt(row.metrics.get(c), d) for c, d in present]
        cells += [f"{row.fit_s:.1f}", f"{row.score_s:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _small_k_table(result: EvalResult) -> str:
    head = ["model"] + [f"{m}@{k}" for k in result.ks for m in ("recall", "ndcg")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result.rows:
        if not row.error:
            lines.append(
                "| " + " | ".join([row.name] + [_fmt(row.metrics.get(h.replace("@", "@"))) for h in head[1:]]) + " |"
            )
    return "\n".join(lines)


def _interval_table(result: EvalResult) -> str:
    """Each row's recall and NDCG at the largest K with its 95% bootstrap interval over users."""
    k = max(result.ks)
    keys = [f"recall@{k}", f"ndcg@{k}"]
    lines = ["| model | " + " | ".join(f"{key} [95% interval]" for key in keys) + " |", "|---|---|---|"]
    ranked = sorted(result.rows, key=lambda r: -r.metrics.get(f"recall@{k}", -1.0))
    for row in ranked:
        if row.error or not row.intervals:
            continue
        cells = [
            f"{_fmt(row.intervals[key].point)} [{_fmt(row.intervals[key].lo)}, {_fmt(row.intervals[key].hi)}]"
            for key in keys
        ]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _comparison_lines(result: EvalResult) -> list[str]:
    out = []
    for c in result.comparisons:
        d, q = c.difference, c.ratio
        verdict = (
            "lies above zero: the gain holds across resamples of the users"
            if d.lo > 0
            else "lies below zero: the other row is ahead across resamples of the users"
            if d.hi < 0
            else "includes zero: no clear difference on these users"
        )
        out.append(
            f"- {c.metric}: **{c.target}** {_fmt(c.target_value)} against the best other row, **{c.other}** "
            f"{_fmt(c.other_value)}: difference {_fmt(d.point)} [{_fmt(d.lo)}, {_fmt(d.hi)}], ratio "
            f"{_fmt(q.point, 2)} [{_fmt(q.lo, 2)}, {_fmt(q.hi, 2)}]; the paired interval {verdict}."
        )
    return out


def _source_table(result: EvalResult) -> list[str]:
    """Picks and hits per candidate source, for rows that label their picks."""
    k = max(result.ks)
    out: list[str] = []
    for row in result.rows:
        if row.error or len(row.sources) < 2:  # one source supplied everything: nothing to split
            continue
        out += [
            f"Row **{row.name}**, every user's top {k}: which candidate source supplied each pick, and each hit "
            "(a pick the user saved after the split).",
            "",
            "| source | picks | share of picks | hits | share of hits | hits per pick |",
            "|---|---|---|---|---|---|",
        ]
        for source, f in sorted(row.sources.items(), key=lambda kv: -kv[1]["picks"]):
            rate = f["hits"] / f["picks"] if f["picks"] else float("nan")
            out.append(
                f"| {source} | {int(f['picks'])} | {_fmt(f['pick_share'], 3)} | {int(f['hits'])} | "
                f"{_fmt(f['hit_share'], 3)} | {_fmt(rate)} |"
            )
        out.append("")
    return out


def _chosen_settings(result: EvalResult) -> list[str]:
    """One line per row whose fit chose its settings on a validation window (the peers)."""
    out = []
    for row in result.rows:
        d = row.details
        if row.error or "chosen" not in d:
            continue
        settings = ", ".join(f"{k} {v}" for k, v in d["chosen"].items())
        out.append(
            f"- {row.name}: {settings} (validation recall@20 {_fmt(d.get('val'))} on {d.get('validation', '?')}, "
            f"{len(d.get('history', []))} checks)"
        )
    return out


def _reading(result: EvalResult) -> list[str]:
    """Plain-language observations computed from the figures (never written by hand)."""
    k = max(result.ks)
    key = f"recall@{k}"
    ok = [r for r in result.rows if not r.error and key in r.metrics]
    if not ok:
        return ["Every row failed; see the table."]
    best = max(ok, key=lambda r: r.metrics[key])
    out = [f"- Best at finding the goods people went on to save: **{best.name}** (recall@{k} {best.metrics[key]:.4f})."]
    by = {r.name: r for r in ok}
    if "random" in by and "oracle" in by:
        lo, hi = by["random"].metrics[key], by["oracle"].metrics[key]
        out.append(
            f"- The planted-truth oracle reaches {hi:.4f} and random {lo:.4f}; each row's place between them "
            f"(0 = random, 1 = oracle): "
            + ", ".join(
                f"{r.name} {(r.metrics[key] - lo) / (hi - lo):.2f}"
                for r in sorted(ok, key=lambda r: -r.metrics[key])
                if r.name not in ("random", "oracle") and hi > lo
            )
            + "."
        )
    if "popularity" in by:
        pop = by["popularity"].metrics[key]
        beat = [r.name for r in ok if r.metrics[key] > pop and r.name not in ("popularity", "oracle")]
        out.append(
            f"- Rows that beat simply showing everyone the popular goods ({pop:.4f}): "
            + (", ".join(beat) if beat else "none")
            + "."
        )
    dkey = f"domains@{k}"
    if any(dkey in r.metrics for r in ok):
        most = max(ok, key=lambda r: r.metrics.get(dkey, -1))
        least = min(ok, key=lambda r: r.metrics.get(dkey, 1e9))
        out.append(
            f"- Variety: {most.name} spreads its {k} picks over {most.metrics[dkey]:.1f} shops on average, "
            f"{least.name} over {least.metrics[dkey]:.1f}."
        )
    c = result.eval_set.counts
    if c.get("test_saves_new_goods") is not None and c.get("test_saves_all"):
        share = c["test_saves_new_goods"] / c["test_saves_all"]
        out.append(
            f"- {share:.0%} of the saves after the split were of goods that did not exist yet, which no "
            "recommender can pick; the new_good_* columns score those by likeness instead (best CLIP cosine "
            "to a pick, and whether the shop was among the picks' shops)."
        )
    return out


def _save(fig: Any, out: Path, name: str) -> str:
    """Write a finished figure as out/name and free it; returns the name."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def _plots(result: EvalResult, out: Path, prefix: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in result.rows if not r.error]
    names = [r.name for r in ok]
    written = []

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, metric in zip(axes, ("recall", "ndcg", "hit"), strict=True):
        width = 0.8 / len(result.ks)
        x = np.arange(len(ok))
        for i, k in enumerate(result.ks):
            ax.bar(x + i * width, [r.metrics.get(f"{metric}@{k}", 0) for r in ok], width, label=f"K={k}")
        ax.set_xticks(x + width * (len(result.ks) - 1) / 2, names, rotation=35, ha="right")
        ax.set_title(f"{metric}@K")
        ax.legend()
    fig.suptitle(f"{result.eval_set.name}: accuracy by model")
    written.append(_save(fig, out, f"{prefix}metrics_by_model.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in ok:
        ax.plot(range(1, len(r.recall_curve) + 1), r.recall_curve, label=r.name)
    ax.set_xlabel("K (picks shown)")
    ax.set_ylabel("recall@K")
    ax.set_title(f"{result.eval_set.name}: recall@K")
    ax.legend(fontsize=8, loc="upper left")
    written.append(_save(fig, out, f"{prefix}recall_curve.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))

    def ecdf(values: np.ndarray, **kw: Any) -> None:
        v = np.sort(values)
        ax.step(v + 1, np.arange(1, len(v) + 1) / len(v), where="post", **kw)

    ecdf(result.catalog_popularity, label="catalog (all candidates)", color="black", linewidth=2.5, alpha=0.4)
    for r in ok:
        if len(r.pick_popularity):
            ecdf(r.pick_popularity, label=r.name)
    ax.set_xscale("log")
    ax.set_xlabel("saves before the split + 1 (popularity)")
    ax.set_ylabel("share of picks at or below")
    ax.set_title(f"{result.eval_set.name}: popularity of top-{max(result.ks)} picks vs the catalog")
    ax.legend(fontsize=8, loc="lower right")
    written.append(_save(fig, out, f"{prefix}pick_popularity.png"))

    with_domains = [r for r in ok if len(r.domains_per_list)]
    if with_domains:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.boxplot([r.domains_per_list for r in with_domains], tick_labels=[r.name for r in with_domains])
        ax.set_ylabel(f"distinct domains in the top {max(result.ks)}")
        ax.set_title(f"{result.eval_set.name}: domains per list")
        plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
        written.append(_save(fig, out, f"{prefix}domains_per_list.png"))
    return written


def write_report(results: list[EvalResult], out: Path, meta: dict[str, Any]) -> Path:
    """Write report.md, the plots and metrics.json into `out` (created). Returns `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(to_json(results, meta), indent=2, sort_keys=True))
    md = [
        "# graphrec evaluation",
        "",
        f"Run {meta.get('run', '')}, written {meta.get('written_at', '')}.",
        "",
        "## What was compared",
        "",
        "Each recommender ranks, for every evaluated user, all goods they could be shown (goods that "
        "existed at the split time and were not deleted, minus the goods the user had already saved). "
        "Nothing after the split was visible to any of them; the saves made after it are the answers. "
        "Baselines and trained models run in the same process on the same data, so their figures compare.",
        "",
        "| model | kind | what it is |",
        "|---|---|---|",
    ]
    seen = set()
    for r in results:
        for row in r.rows:
            if row.name not in seen:
                seen.add(row.name)
                md.append(f"| {row.name} | {row.kind} | {row.what} |")
    md += [
        "",
        "How to read the columns: **recall@K** is the share of a user's later saves found among their K "
        "picks; **hit@K** the share of users with at least one; **ndcg/map/mrr** also reward finding them "
        "near the top; **coverage** is the share of the catalog that appears in anyone's picks; "
        "**diversity** the mean CLIP distance between two picks of a list (0 = look-alikes); **domains** "
        "the number of distinct shops in a list; **novelty** the mean self-information (bits) of the picks' "
        f"popularity (higher = less mainstream); **users_with_{MIN_PICKS}_picks** the share of users who "
        f"got at least {MIN_PICKS} picks; **interest_coverage** (demo) the share of a user's planted interests "
        f"with at least {INTEREST_MIN_WEIGHT:.0%} of their taste that have a pick in the list; **calibration_kl** "
        "how far the list's mix of interests is from the mix of the user's saves (Steck's KL, 0 = the same mix), "
        f"over {CONTENT_GROUPS} clusters of the content vectors (**calibration_kl_planted**: over the planted "
        "styles).",
        "",
    ]
    for r in results:
        prefix = f"{r.eval_set.name}_"
        plots = _plots(r, out, prefix)
        c = r.eval_set.counts
        md += [f"## Data set: {r.eval_set.name}", "", r.eval_set.description, ""]
        md += ["Counts: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items()) + ".", ""]
        md += [f"### Results at K = {max(r.ks)} (best recall first; evaluation took {r.eval_s:.0f} s)", ""]
        md += [_table(r), "", "### Recall and NDCG at each K", "", _small_k_table(r), ""]
        if any(row.intervals for row in r.rows):
            md += [
                "### How sure: 95% bootstrap intervals over users",
                "",
                f"Percentile intervals from {RESAMPLES:,} resamples (with replacement) of the "
                f"{len(r.eval_set.users):,} evaluated users, the same resamples for every row, so the difference of "
                "two rows is paired.",
                "",
                _interval_table(r),
                "",
            ]
            md += _comparison_lines(r) + [""]
        sources = _source_table(r)
        if sources:
            md += ["### Where the picks came from", ""] + sources
        chosen = _chosen_settings(r)
        if chosen:
            md += ["### Settings chosen on validation", ""] + chosen + [""]
        md += ["### What it means", ""] + _reading(r) + [""]
        for p in plots:
            stem = p.removeprefix(prefix)
            md += [f"![{PLOTS.get(stem, stem)}]({p})", ""]
    (out / "report.md").write_text("\n".join(md))
    return out
