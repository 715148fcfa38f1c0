"""The learned ranker: LightGBM lambdarank over the union of the sources' candidates.

Trained as of a cut inside the data it is given: features from the graph as of the cut (`arrays.as_of_time`),
labels = the saves after it (goods that existed at the cut, not saved by the user before it). Saved beside
the graph model's checkpoint (ranker.txt + ranker.json), so it is versioned with the model, together with
what it needs that the model does not give (its attachments: the sequence model's checkpoint in sequence/).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from graphrec.core.arrays import GraphArrays
from graphrec.core.config import ForYouConfig
from serving.foryou.context import ForYouContext, ModelVectors, ScoreFn
from serving.foryou.features import candidate_batch, feature_names
from serving.foryou.sources import make_source
from serving.foryou.sources.base import batches

log = logging.getLogger(__name__)

RANKER_FILE = "ranker.txt"
RANKER_META = "ranker.json"
# Users per candidate batch (memory: one dense [batch, G] block per dense source).
BATCH = 128


class Attachment(Protocol):
    """Something the ranker's features were learned from that is saved with it, in its own subdirectory of
    the ranker's directory (the app's sequence model checkpoint: serving never sees what is inside)."""

    def save(self, directory: Path) -> None: ...


@dataclass
class Ranker:
    booster: Any  # lightgbm.Booster
    sources: tuple[str, ...]
    features: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    # Saved into directory/<name> by `save`, before ranker.txt (a ranker on disk always has them); not loaded.
    attachments: dict[str, Attachment] = field(default_factory=dict)

    def predict(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        if x.shape[1] != len(self.features):
            raise ValueError(f"ranker expects {len(self.features)} features, got {x.shape[1]}")
        return np.asarray(self.booster.predict(x, num_threads=threads), dtype=np.float32)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, attachment in self.attachments.items():
            attachment.save(directory / name)
        self.booster.save_model(str(directory / RANKER_FILE))
        meta = {"sources": list(self.sources), "features": list(self.features), **self.meta}
        (directory / RANKER_META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))

    @classmethod
    def load(cls, directory: Path) -> Ranker | None:
        """The ranker saved in `directory`, or None when there is none."""
        import lightgbm as lgb

        directory = Path(directory)
        if not (directory / RANKER_FILE).exists() or not (directory / RANKER_META).exists():
            return None
        meta = json.loads((directory / RANKER_META).read_text())
        sources, feats = tuple(meta.pop("sources")), tuple(meta.pop("features"))
        if feats != feature_names(sources):
            raise ValueError(
                f"{directory / RANKER_META}: its features do not match this graphrec's for sources {sources}; "
                "retrain with `graphrec train`"
            )
        return cls(lgb.Booster(model_file=str(directory / RANKER_FILE)), sources, feats, meta)


def training_cut(arrays: GraphArrays, label_share: float) -> int:
    """The cut: saves at or before it give features, the newest `label_share` of the saves (after it) labels."""
    if not 0.0 < label_share < 1.0:
        raise ValueError(f"foryou.label_share must be in (0, 1), got {label_share}")
    t = np.sort(arrays.save_time.data)
    if len(t) < 2 or t[0] == t[-1]:
        raise ValueError("the ranker needs saves before and after a cut; the graph has fewer than 2 save times")
    return share_cut(t, label_share)


def share_cut(sorted_times: np.ndarray, share: float) -> int:
    """The time after which the newest `share` of `sorted_times` (ascending, at least two distinct) lie.
    Saves share times (a clock of whole sequence steps shares them widely): when the quantile falls among the
    newest time's saves nothing would follow it, so the cut moves to the time before those."""
    t = sorted_times
    cut = t[max(0, int(len(t) * (1.0 - share)) - 1)]
    if cut == t[-1]:
        cut = t[np.searchsorted(t, t[-1]) - 1]
    return int(cut)


def label_matrix(arrays: GraphArrays, cut: int) -> sp.csr_matrix:
    """float32 csr [U, G]: saves after `cut` of goods that existed at the cut, by users who had not saved them."""
    st = arrays.save_time.tocoo()
    ok = (st.data > cut) & (arrays.created_at[st.col] <= cut)
    m = sp.csr_matrix((np.ones(int(ok.sum()), np.float32), (st.row[ok], st.col[ok])), shape=arrays.saves.shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def active_sources(ctx: ForYouContext, names: tuple[str, ...]) -> tuple[str, ...]:
    """The configured sources whose inputs the context has (no graph filter / model vectors / sequence model's
    scores: left out)."""
    out = []
    for name in names:
        if name == "graph_filter" and ctx.graph_filter is None:
            log.info("for_you: no graph filter given; the graph_filter source is left out")
            continue
        if name == "model" and ctx.model is None:
            log.info("for_you: no model vectors given; the model source is left out")
            continue
        if name == "sequence" and ctx.sequence is None:
            log.info("for_you: no sequence model given; the sequence source is left out")
            continue
        out.append(name)
    return tuple(out)


def training_data(
    ctx: ForYouContext, labels: sp.csr_matrix, users: np.ndarray, sources: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features [N, F], labels [N], group sizes) of `users`' candidates in `ctx`; users whose candidates hold
    no label save are left out (lambdarank learns nothing from them)."""
    srcs = [make_source(s) for s in sources]
    xs, ys, gs = [], [], []
    for _, chunk in batches(users, BATCH):
        cs, x = candidate_batch(ctx, chunk, srcs, ctx.cfg.per_source)
        y = np.asarray(labels[chunk[cs.row], cs.good]).ravel().astype(np.float32)
        pos = np.bincount(cs.row, weights=y, minlength=len(chunk))
        keep_user = pos > 0
        keep = keep_user[cs.row]
        xs.append(x[keep])
        ys.append(y[keep])
        gs.append(cs.group[keep_user])
    if not xs:
        raise ValueError("no users to train the ranker on")
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def fit_ranker(
    arrays: GraphArrays,
    cfg: ForYouConfig,
    *,
    graph_filter_fit: Callable[[sp.csr_matrix], ScoreFn] | None = None,
    model: ModelVectors | None = None,
    sequence: ScoreFn | None = None,
    cut: int | None = None,
) -> Ranker:
    """Train the ranker on `arrays` (all the data the pipeline will serve from, e.g. the graph as of now).

    graph_filter_fit: fits the graph filter on a save matrix (refitted on the saves as of the cut). model: the
    graph model's vectors computed WITHOUT the saves after the cut (the app embeds training's validation-split
    graph), or None to train without the model source. sequence: the sequence model's next-good scores after
    each user's saves as of the cut, from a model fitted on the saves up to the cut only (the app's
    fit_sequence), or None to train without the sequence source. With either, `cut` must be the one they were
    computed for."""
    import lightgbm as lgb

    started = time.perf_counter()
    cut = training_cut(arrays, cfg.label_share) if cut is None else int(cut)
    first_cut = cut
    rng = np.random.default_rng(cfg.seed)
    sources: tuple[str, ...] = ()
    xs, ys, gs = [], [], []
    features_s = 0.0
    sampled = 0  # users sampled over the windows so far
    # Window i (0 = newest): features as of cut_i, labels = the saves in (cut_i, end_i]. Older windows add
    # training users while the newer ones hold fewer than ranker_users; only the newest has the model's vectors
    # and the sequence model's scores (they are computed as of that cut), so with either there is one window.
    end = arrays.as_of
    n_windows = 1 if model is not None or sequence is not None else max(1, cfg.ranker_windows)
    for i in range(n_windows):
        past = arrays.as_of_time(cut)
        labels = label_matrix(arrays.as_of_time(end), cut)
        users = np.flatnonzero((past.saves_per_user() >= cfg.ranker_min_user_saves) & (np.diff(labels.indptr) > 0))
        if len(users) == 0:
            if i == 0:
                raise ValueError(f"no user with enough saves saved anything after the ranker's cut {cut}")
            break
        if len(users) > cfg.ranker_users:
            users = np.sort(rng.choice(users, cfg.ranker_users, replace=False))
        gf = graph_filter_fit(past.saves) if graph_filter_fit is not None else None
        ctx = ForYouContext.build(
            past, cfg, graph_filter=gf, model=model if i == 0 else None, sequence=sequence if i == 0 else None
        )
        if i == 0:
            sources = active_sources(ctx, cfg.sources)
        t0 = time.perf_counter()
        x, y, g = training_data(ctx, labels, users, sources)
        features_s += time.perf_counter() - t0
        xs.append(x)
        ys.append(y)
        gs.append(g)
        sampled += len(users)
        if sampled >= cfg.ranker_users:
            # Older windows are there to add training users; once the newer ones filled the sample they would
            # only double the cost (a GF-CF fit and every candidate of ranker_users more users: at 50,000
            # users x 1M goods most of the stage). The demo's windows are far smaller and both stay.
            break
        # The next window ends where this one's features start and is as long, in saves.
        end = cut
        older = np.sort(arrays.save_time.data[arrays.save_time.data <= end])
        if len(older) < 2 or older[0] == older[-1]:
            break
        cut = share_cut(older, cfg.label_share)
    x, y, groups = np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)
    # A fixed, small number of rounds (foryou.ranker_rounds): on the demo's validation window early stopping on
    # a tenth of these few hundred users stopped anywhere from 3 to 28 rounds, and 30-60 rounds did best.
    n_groups = len(groups)
    names = list(feature_names(sources))
    params = {
        "objective": "lambdarank",
        "lambdarank_truncation_level": 40,
        "learning_rate": cfg.ranker_learning_rate,
        "num_leaves": cfg.ranker_leaves,
        "min_data_in_leaf": cfg.ranker_min_leaf,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "num_threads": cfg.ranker_threads,
        "seed": cfg.seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
    }
    dtrain = lgb.Dataset(x, y, group=groups, feature_name=names, free_raw_data=False)
    t1 = time.perf_counter()
    booster = lgb.train(params, dtrain, cfg.ranker_rounds)
    fit_s = time.perf_counter() - t1
    gain = booster.feature_importance("gain")
    meta = {
        "cut": first_cut,
        "windows": len(xs),
        "as_of": arrays.as_of,
        "label_share": cfg.label_share,
        "users": int(n_groups),
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "rounds": int(booster.current_iteration()),
        "features_s": round(features_s, 2),
        "fit_s": round(fit_s, 2),
        "train_s": round(time.perf_counter() - started, 2),
        "model": model.version if model is not None else None,
        "importance_gain": {
            n: round(float(g), 1) for n, g in sorted(zip(names, gain, strict=True), key=lambda t: -t[1])
        },
    }
    log.info("for_you ranker trained", extra={"ranker": {k: v for k, v in meta.items() if k != "importance_gain"}})
    return Ranker(booster, sources, tuple(names), meta)
