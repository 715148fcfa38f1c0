"""The scheduled jobs, wiring the stages: `recommend` (daily), `recommend_user` (on demand) and `retrain`
(weekly).

recommend: load the graph as of now (etl.load), load the CURRENT model and embed that graph with it
(training), then retrieve, re-rank, fall back, explain and write back (serving). Each job runs inside
graphrec.core.runs.job: only one recommend and one retrain at a time (PostgreSQL advisory locks), each stage
timed, a failure recorded and alerted naming its stage; one JSON summary line ends the run and, when
Telegram is configured, a summary alert goes out.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphrec.app import gate
from graphrec.app.foryou import for_you_picks, gate_pipeline, one_user_sequence, train_checkpoint_ranker
from graphrec.app.gate import compare_validation as compare_validation  # moved to gate.py
from graphrec.core import alerts, runs
from graphrec.core.arrays import GraphArrays
from graphrec.core.artifacts import (
    Embeddings,
    current_model,
    models_dir,
    run_embeddings_path,
    set_current_model,
    write_pointer,
)
from graphrec.core.config import Config
from graphrec.core.stages import Stages
from serving import picks as P
from serving import reads, store
from serving.foryou.ranker import RANKER_FILE, Ranker
from serving.reads import FreshPool

log = logging.getLogger(__name__)


class NoModelError(RuntimeError):
    """There is no CURRENT model to recommend with."""


@dataclass
class RecommendResult:
    run_id: int
    model_version: str
    counts: dict[str, Any]
    seconds: dict[str, float]
    peak_mb: dict[str, float]
    duration_s: float

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model_version": self.model_version,
            **self.counts,
            "duration_s": round(self.duration_s, 2),
        }


def _load_current_embeddings(cfg: Config, url: str, stages: Stages, keep: dict[str, Any] | None = None) -> Embeddings:
    """Graph as of now from the database, embedded with the CURRENT model. `keep` (when given) receives the
    graph, its as-of time and the checkpoint directory, for the For You pipeline."""
    with stages.stage("import"):  # torch and PyG take seconds to import; count them
        from etl.load import load_graph
        from training.checkpoint import load_trained
        from training.embed import embed
        from training.models import MODELS

    with stages.stage("load_model"):
        checkpoint = current_model(models_dir(cfg.artifacts))
        if checkpoint is None:
            raise NoModelError(
                f"no CURRENT model under {models_dir(cfg.artifacts)}: "
                "run `graphrec train --promote` or `graphrec retrain`"
            )
        trained = load_trained(checkpoint)
    from graphrec.core import db

    with db.connect(url) as conn:
        graph = load_graph(conn, cfg.graph, stages=stages)  # stages "read_tables" and "build_graph"
    data, id_maps = graph.data, graph.id_maps
    if keep is not None:
        keep.update(data=data, id_maps=id_maps, as_of=graph.report.as_of, checkpoint=checkpoint)
    del graph
    with stages.stage("embed", model=trained.version, kind=trained.kind):
        emb = embed(trained, data, id_maps)
    new_goods = int((~np.asarray(emb.good_known)).sum())
    if new_goods and not MODELS[trained.kind].inductive:
        log.warning(
            "%s cannot score %d goods added since it was trained; they reach users only as fallbacks "
            "until the next retrain",
            trained.kind,
            new_goods,
            extra={"goods_unknown_to_model": new_goods},
        )
    return emb


CONTENT_IDS, CONTENT, CLUSTERS = "content_ids.npy", "content.npy", "content_clusters.npy"


def save_content(run_dir: Path, graph: dict[str, Any], clusters: np.ndarray | None = None) -> None:
    """The graph's CLIP vectors (float16, L2-normalised as etl built them), good ids and, when given, each
    good's CLIP cluster (For You's catalog-wide k-means, ForYouContext.clusters) beside the run's embeddings,
    so one user's rescore memory-maps the rows it needs instead of reading the catalog's embeddings from the
    database or clustering again. Written under temporary names, then renamed (ids last)."""
    ids = np.asarray(graph["id_maps"].good_ids, dtype=np.int64)
    x = np.asarray(graph["data"]["good"].x.numpy(), dtype=np.float16)
    files: list[tuple[str, np.ndarray]] = [(CONTENT, x)]
    if clusters is not None:
        files.append((CLUSTERS, np.asarray(clusters, dtype=np.int16)))
    save_arrays(run_dir, [*files, (CONTENT_IDS, ids)])


def save_arrays(run_dir: Path, files: list[tuple[str, np.ndarray]]) -> None:
    """Each (name, array) as run_dir/name (.npy), in order, each under a temporary name and then renamed, so a
    reader never sees a partial file and the last one written can mark the set complete."""
    for name, arr in files:
        tmp = run_dir / f".{name}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, arr)
        tmp.replace(run_dir / name)


FRESH_IDS, FRESH_CREATED, FRESH_CONTENT, FRESH_META = (
    "fresh_ids.npy",
    "fresh_created.npy",
    "fresh_content.npy",
    "fresh.json",
)


def save_fresh_pool(run_dir: Path, cfg: Config, graph: dict[str, Any]) -> int:
    """The fresh source's pool of this run (goods live at the graph's as-of, created in the last
    foryou.fresh_days before it, with at most foryou.fresh_max_saves savers) beside the run: sorted good ids,
    their creation times and float16 CLIP vectors, and fresh.json (as_of, the two settings). One user's
    rescore reads it instead of scanning the goods table and gathering those rows from the catalog's
    content. Needs graph["arrays"] (catalog_clusters); returns the pool's size."""
    from serving.foryou.context import DAY

    a, fy = graph["arrays"], cfg.foryou
    fresh = a.live() & (a.created_at >= a.as_of - fy.fresh_days * DAY) & (a.popularity() <= fy.fresh_max_saves)
    idx = np.flatnonzero(fresh)
    ids = np.asarray(graph["id_maps"].good_ids, dtype=np.int64)[idx]
    order = np.argsort(ids, kind="stable")
    idx, ids = idx[order], ids[order]
    vecs = np.asarray(graph["data"]["good"].x.numpy()[idx], dtype=np.float16)
    meta = {"as_of": int(a.as_of), "fresh_days": fy.fresh_days, "max_saves": fy.fresh_max_saves, "goods": len(ids)}
    (run_dir / FRESH_META).unlink(missing_ok=True)  # written last: a pool without it is not read
    save_arrays(run_dir, [(FRESH_CONTENT, vecs), (FRESH_CREATED, a.created_at[idx].astype(np.int64)), (FRESH_IDS, ids)])
    write_pointer(run_dir / FRESH_META, json.dumps(meta))
    return len(ids)


def load_fresh_pool(run_dir: Path) -> FreshPool | None:
    """The fresh pool the run wrote (save_fresh_pool), or None (an older run, files that disagree)."""
    try:
        meta = json.loads((run_dir / FRESH_META).read_text())
        ids = np.load(run_dir / FRESH_IDS)
        created = np.load(run_dir / FRESH_CREATED)
        vecs = np.load(run_dir / FRESH_CONTENT, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if vecs.ndim != 2 or not (len(ids) == len(created) == len(vecs)) or (len(ids) > 1 and np.any(np.diff(ids) <= 0)):
        log.warning("ignoring the fresh pool in %s: its ids, times and vectors do not match", run_dir)
        return None
    return FreshPool(ids, created, vecs, int(meta["as_of"]), float(meta["fresh_days"]), int(meta["max_saves"]))


def catalog_clusters(cfg: Config, graph: dict[str, Any]) -> np.ndarray:
    """For You's CLIP clusters of every good of the graph, computed as the daily pipeline's context does. The
    graph's arrays and these clusters are kept in `graph` ("arrays", "clusters"): For You's context in the same
    run takes them instead of converting and clustering the catalogue again."""
    from etl.arrays import graph_arrays
    from serving.foryou.context import ForYouContext

    if graph.get("arrays") is None:
        graph["arrays"] = graph_arrays(graph["data"], int(graph["as_of"]), cfg.graph.min_goods)
    graph["clusters"] = np.asarray(ForYouContext.build(graph["arrays"], cfg.foryou).clusters())
    return graph["clusters"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ContentCache:
    """What a run wrote of the catalog's content (save_content): sorted good ids [N], their float16 vectors
    [N, d] (memory-mapped) and CLIP clusters [N] (None when not written)."""

    ids: np.ndarray
    vecs: np.ndarray
    clusters: np.ndarray | None

    def clusters_of(self, good_id: np.ndarray, content: np.ndarray) -> np.ndarray | None:
        """int64 [G] the cluster of each good: the run's for goods it holds, else the cluster whose mean
        vector (of the goods the run put in it) is most similar; None without clusters."""
        if self.clusters is None or not len(self.ids):
            return None
        at = np.searchsorted(self.ids, good_id).clip(0, len(self.ids) - 1)
        held = self.ids[at] == good_id
        out = np.full(len(good_id), -1, np.int64)
        out[held] = self.clusters[at[held]]
        if (~held).any():
            k = int(self.clusters.max()) + 1
            members = np.flatnonzero(held)
            centre = np.zeros((k, content.shape[1]), np.float32)
            np.add.at(centre, out[members], content[members])
            centre /= np.maximum(np.linalg.norm(centre, axis=1, keepdims=True), 1e-12)
            out[~held] = (content[~held] @ centre.T).argmax(axis=1)
        return out


def load_content(run_dir: Path) -> ContentCache | None:
    """The content the run wrote (save_content), or None (no graph, an older run, files that disagree)."""
    try:
        ids = np.load(run_dir / CONTENT_IDS)
        vecs = np.load(run_dir / CONTENT, mmap_mode="r")
        clusters = np.load(run_dir / CLUSTERS) if (run_dir / CLUSTERS).exists() else None
    except (OSError, ValueError):
        return None
    if (
        vecs.ndim != 2
        or len(vecs) != len(ids)
        or (clusters is not None and len(clusters) != len(ids))
        or (len(ids) > 1 and np.any(np.diff(ids) <= 0))
    ):
        log.warning("ignoring the content cache in %s: its ids, vectors and clusters do not match", run_dir)
        return None
    return ContentCache(ids, vecs, clusters)


class PublishRefused(RuntimeError):
    """A recommend run that would serve no one, or far fewer users than the current run: not published."""


def _refuse_if_far_fewer_served(conn: Any, counts: dict[str, Any], min_share: float) -> None:
    """Raise PublishRefused when the new run serves no user, or fewer than `min_share` of the current run's
    users. Inside runs.job the refusal is a failed run in the ledger (with this message), an alert and a
    non-zero exit, and graphrec_current still points at the run served so far."""
    served = int(counts["users_served"])
    current = runs.current_run(conn)
    before = int(current.counts.get("users_served", 0)) if current is not None else 0
    if served == 0:
        raise PublishRefused(
            f"not published: the run serves no user ({counts['users_eligible']} eligible; empty saves, or every "
            f"good deleted?); {'run ' + str(current.id) + ' stays current' if current else 'no run is current'}"
        )
    if current is not None and min_share > 0 and served < min_share * before:
        raise PublishRefused(
            f"not published: the run would serve {served} users, under recommend.min_served_share={min_share} of "
            f"the {before} served by current run {current.id}, which stays current"
        )


def _daily_picks(cfg: Config, graph: dict[str, Any], emb: Embeddings, rows: Any, stages: Stages) -> P.Picks:
    """Every eligible user's list: For You's (when a ranker is beside the model and the graph was loaded),
    then model retrieval and the fallbacks (serving.picks.make_picks) for the users For You leaves with fewer
    than recommend.min_picks, and only for them (all eligible users without For You)."""
    rc, min_goods = cfg.recommend, cfg.graph.min_goods
    if not (graph and cfg.foryou.ranker):
        return P.make_picks(emb, rows, rc, min_goods, stages=stages)
    with stages.stage("for_you_users"):
        empty = P.unfilled(emb, rows, rc, min_goods)
    served = for_you_picks(cfg, graph, emb, rows, empty, stages)  # no ranker beside the model: `empty` back
    short = P.short_rows(served, rc.min_picks)
    log.info(
        "model retrieval and fallbacks for %d of %d eligible users (For You left them short)",
        len(short),
        len(served.users),
        extra={"users_for_fallback": len(short), "users_eligible": len(served.users)},
    )
    if not len(short):
        return dataclasses.replace(served, filler=P.top_up_fillers(served))
    fill = P.make_picks(emb, rows, rc, min_goods, users=served.users[short], stages=stages)
    return P.fill_short(served, short, fill)


def recommend(cfg: Config, url: str, embeddings_path: Path | None = None) -> RecommendResult:
    """The daily job: everyone's picks, written back atomically. Raises runs.JobLocked if another runs.

    embeddings_path: serve from a saved Embeddings file instead of embedding with the CURRENT model.
    """
    rc = cfg.recommend
    stages = Stages()
    with runs.job(url, "recommend", stages) as job:
        conn = job.conn
        run_id = job.run_id = runs.new_run_id(conn)
        graph: dict[str, Any] = {}
        runs.set_activity(conn, f"graphrec recommend run {run_id}")
        log.info("recommend run %d started", run_id, extra={"run_id": run_id})
        if embeddings_path is not None:
            with stages.stage("load_embeddings"):
                emb = Embeddings.load(Path(embeddings_path))
        else:
            emb = _load_current_embeddings(cfg, url, stages, keep=graph)
        model_version = job.model_version = emb.model_version
        with stages.stage("save_embeddings"):
            emb.save(run_embeddings_path(cfg.artifacts, run_id))
        if graph.get("data") is not None:
            with stages.stage("save_content"):  # for one user's rescore (recommend_user)
                with_for_you = cfg.foryou.ranker and (Path(graph["checkpoint"]) / RANKER_FILE).exists()
                clusters = catalog_clusters(cfg, graph) if with_for_you else None
                run_dir = run_embeddings_path(cfg.artifacts, run_id).parent
                save_content(run_dir, graph, clusters)
                if with_for_you:
                    save_fresh_pool(run_dir, cfg, graph)
        with stages.stage("read_rows"):
            rows = reads.read_rows(conn, rc.repeat_days)
        picks = _daily_picks(cfg, graph, emb, rows, stages)
        with stages.stage("render"):
            labels = reads.read_labels(conn, *P.label_ids(picks, rows))
            pick_rows = P.to_rows(picks, rows, labels, rc)
        counts = picks.counts(rc.min_picks, rows.num_goods)
        with stages.stage("check_served"):
            _refuse_if_far_fewer_served(conn, counts, rc.min_served_share)
        with stages.stage("stage_copy", rows=len(pick_rows)):
            store.stage_picks(conn, pick_rows)
        with stages.stage("publish"):
            metrics = {
                "seconds": {k: round(v, 3) for k, v in stages.seconds.items()},
                "model_kind": emb.model_kind,
            }
            store.publish(conn, run_id, model_version, job.started, counts, metrics)  # the run row, with its picks
        with stages.stage("prune"):
            pruned = store.prune(conn, cfg.artifacts, rc.keep_runs, rc.repeat_days)
        result = RecommendResult(
            run_id=run_id,
            model_version=model_version,
            counts=counts,
            seconds=dict(stages.seconds),
            peak_mb=dict(stages.peak_mb),
            duration_s=time.time() - job.started,
        )
        job.summary = alerts.recommend_summary_text(result.summary())
    log.info(
        "recommend run %d succeeded",
        run_id,
        extra={
            "summary": "recommend",
            **result.summary(),
            "pruned_runs": pruned,
            "seconds": metrics["seconds"],
        },
    )
    if counts["users_short"]:
        log.warning("%d eligible users got fewer than %d picks", counts["users_short"], rc.min_picks)
    return result


@dataclass
class UserPicks:
    user_id: int
    run_id: int | None
    eligible: bool
    saved_goods: int
    picks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _WorldArrays(GraphArrays):
    """GraphArrays of the goods around one user whose popularity is the whole table's (the arrays hold only
    the saves of the users read): catalog_popularity int64 [G, 1 + len(windows)], savers in all and first in
    each window of `windows` days before as_of."""

    catalog_popularity: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.int64))
    windows: tuple[int, ...] = ()

    def popularity(self, since: float | None = None) -> np.ndarray:
        if since is None:
            return self.catalog_popularity[:, 0].copy()
        days = (self.as_of - since) / 86_400
        for j, w in enumerate(self.windows):
            if abs(days - w) < 1e-6:
                return self.catalog_popularity[:, 1 + j].copy()
        raise ValueError(
            f"one-user For You: popularity over {days:g} days was asked for; the rescore reads {self.windows}"
        )


def recommend_user(cfg: Config, url: str, user_id: int, write: bool = True) -> UserPicks:
    """Rescore one user now, with the pipeline the daily job serves: For You (its sources, the ranker beside
    the current run's model, the user's interests, calibration) on the rows around this user alone
    (`_one_user_for_you`); model retrieval from the current run's embeddings and the fallbacks when there
    is no ranker or For You leaves the user short. The new picks replace theirs in the current run (when
    `write`)."""
    rc = cfg.recommend
    from graphrec.core import db

    with db.connect(url, autocommit=True) as conn:
        current = runs.current_run(conn)
        if current is None:
            raise LookupError("no current run: run `graphrec recommend` first")
        made = None
        ranker = None
        checkpoint = models_dir(cfg.artifacts) / current.model_version if current.model_version else None
        if cfg.foryou.ranker and checkpoint is not None:
            ranker = Ranker.load(checkpoint)
        if ranker is not None and checkpoint is not None:
            made = _one_user_for_you(cfg, conn, current.id, user_id, ranker, checkpoint)
        if made is None:
            made = _one_user_model(cfg, conn, current.id, user_id)
        picks, rows, saved = made
        out = UserPicks(user_id=user_id, run_id=current.id, eligible=saved > cfg.graph.min_goods, saved_goods=saved)
        if picks is None:
            return out
        pick_rows = P.to_rows(picks, rows, reads.read_labels(conn, *P.label_ids(picks, rows)), rc)
        if write:
            store.replace_user_picks(conn, pick_rows, user_id)
            out.picks = reads.for_you(conn, user_id, rc.picks_per_user)
        else:
            out.picks = [
                {"rank": int(r), "good_id": int(g), "score": float(s), "reason": w, "is_fallback": bool(f)}
                for r, g, s, w, f in zip(
                    pick_rows.rank,
                    pick_rows.good_id,
                    pick_rows.score,
                    pick_rows.reason,
                    pick_rows.is_fallback,
                    strict=True,
                )
            ]
    return out


OneUser = tuple[P.Picks | None, Any, int]  # (picks or None when not eligible, their ServingRows, goods saved)


def _one_user_model(cfg: Config, conn: Any, run_id: int, user_id: int) -> OneUser:
    """Model retrieval from the current run's embeddings, then the fallbacks (today's rows for this user and
    everyone's recent saves): the path without a ranker, and for users For You leaves short."""
    rc = cfg.recommend
    # verify=False: the 0.5 s SHA-256 at 10x would be half the rescore's budget; zip's CRC-32 still checks.
    emb = Embeddings.load(run_embeddings_path(cfg.artifacts, run_id), verify=False)
    recent_days = max(rc.followee_days, rc.popular_days)
    rows = reads.read_rows(conn, rc.repeat_days, user_ids=[user_id], recent_days=recent_days)
    idx = rows.user_idx(np.array([user_id]))
    mine = rows.save_good[(rows.save_user == user_id) & (rows.good_idx(rows.save_good) >= 0)]
    saved = len(np.unique(mine))
    if idx[0] < 0 or saved <= cfg.graph.min_goods:
        return None, rows, saved
    return P.make_picks(emb, rows, rc, cfg.graph.min_goods, users=idx), rows, saved


def _one_user_for_you(
    cfg: Config, conn: Any, run_id: int, user_id: int, ranker: Ranker, checkpoint: Path
) -> OneUser | None:
    """For You's list for one user on a graph of what is around them (serving.reads.read_user_world): their
    saves, follows, collections and recent picks; every save of the people who saved one of their goods and
    of their followees; fresh goods; the collections holding their saves; the recent popular goods. Catalog
    figures the pipeline reads (each good's saves in all and in its windows, user and good degrees of the
    graph filter and of co-saves) are the whole table's. None when For You leaves the user short (the
    caller falls back to model retrieval).

    CLIP vectors and clusters come from what the current run wrote (save_content; the database and a fit on
    the goods in reach for goods new since, or runs without it), and so do the fresh goods it had
    (save_fresh_pool; the table is read for those created since). Where the list can differ from the daily
    job's on the same rows: GF-CF's ideal low-pass term needs the whole catalog's SVD, so only its linear
    filter scores here; the interests' centring and principal directions are fitted on the goods in reach,
    not on the catalog; trending and the popularity top-up see the goods in reach only; cached vectors are
    float16."""
    import scipy.sparse as sp

    from graphrec.core.arrays import timed_pairs
    from serving import fallback
    from serving import reasons as R
    from serving.foryou.context import ForYouContext, ModelVectors
    from serving.foryou.pipeline import PICK_SOURCES, for_you
    from serving.rows import exclusion_matrix

    rc, fy = cfg.recommend, cfg.foryou
    windows = (7, fy.trending_days, 30)
    run_dir = run_embeddings_path(cfg.artifacts, run_id).parent
    cache = load_content(run_dir)
    world = reads.read_user_world(
        conn,
        user_id,
        repeat_days=rc.repeat_days,
        fresh_days=fy.fresh_days,
        fresh_max_saves=fy.fresh_max_saves,
        windows=windows,
        popular_days=7,
        popular_goods=rc.picks_per_user * 4,
        content_cache=(cache.ids, cache.vecs) if cache is not None else None,
        fresh_keep=fy.per_source,
        fresh_anchors=fy.fresh_anchors,
        fresh_pool=load_fresh_pool(run_dir),
    )
    rows = world.rows
    if world.content.shape[1] == 0:
        log.warning("one-user For You: no CLIP content around user %d; model retrieval instead", user_id)
        return None
    n_u, n_g = rows.num_users, rows.num_goods
    su, sg = rows.user_idx(rows.save_user), rows.good_idx(rows.save_good)
    ok = (su >= 0) & (sg >= 0) & (rows.save_time <= rows.now)
    saves, save_time = timed_pairs(su[ok], sg[ok], rows.save_time[ok], (n_u, n_g))
    me = int(rows.user_idx(np.array([user_id]))[0])
    saved = int(np.diff(saves.indptr)[me]) if me >= 0 else 0
    if me < 0 or saved <= cfg.graph.min_goods:
        return None, rows, saved
    fu, fe = rows.user_idx(rows.follower), rows.user_idx(rows.followee)
    keep = (fu >= 0) & (fe >= 0)
    follows, follow_time = timed_pairs(fu[keep], fe[keep], np.zeros(int(keep.sum())), (n_u, n_u))
    coll, coll_good, coll_t = world.contains
    coll_ids = np.unique(coll)
    cg = rows.good_idx(coll_good)
    keep = cg >= 0
    contains, contains_time = timed_pairs(
        np.searchsorted(coll_ids, coll[keep]), cg[keep], coll_t[keep], (len(coll_ids), n_g)
    )
    arrays = _WorldArrays(
        saves=saves,
        save_time=save_time,
        follows=follows,
        follow_time=follow_time,
        contains=contains,
        contains_time=contains_time,
        collection_owner=np.full(len(coll_ids), -1, np.int64),
        content=world.content,
        domain=rows.good_domain,
        created_at=world.created_at,
        as_of=rows.now,
        min_goods=cfg.graph.min_goods,
        catalog_popularity=world.popularity,
        windows=world.windows,
    )
    # Degrees of the whole table: goods' savers (popularity), users' saves (complete for every user read).
    pop = world.popularity[:, 0].astype(np.float32)
    dg = np.divide(1.0, np.sqrt(pop), out=np.zeros_like(pop), where=pop > 0)
    du = np.diff(saves.indptr).astype(np.float32)
    s = sp.csr_matrix(saves, dtype=np.float32)
    norm = sp.csr_matrix(sp.diags(np.divide(1.0, np.sqrt(du), out=np.zeros_like(du), where=du > 0)) @ s @ sp.diags(dg))

    def graph_filter(users: np.ndarray) -> np.ndarray:
        # GF-CF's linear filter r R~^T R~ (graphrec.app.foryou fits GF-CF with its ideal term on the catalog).
        return np.asarray(((s[users] @ norm.T) @ norm).todense(), dtype=np.float32)

    model = None
    if "model" in ranker.sources:
        emb = Embeddings.load(run_embeddings_path(cfg.artifacts, run_id), verify=False)
        uv = np.zeros((n_u, emb.user_vecs.shape[1]), np.float32)
        gv = np.zeros((n_g, emb.good_vecs.shape[1]), np.float32)
        eu, eg = rows.user_idx(emb.user_ids), rows.good_idx(emb.good_ids)
        uv[eu[eu >= 0]], gv[eg[eg >= 0]] = emb.user_vecs[eu >= 0], emb.good_vecs[eg >= 0]
        model = ModelVectors(uv, gv, kind=emb.model_kind, version=emb.model_version)
    gf = graph_filter if "graph_filter" in ranker.sources else None
    # The sequence model saved with the ranker, over these rows' goods and save times (None when unused).
    sequence = one_user_sequence(checkpoint, ranker, rows.good_id, world.content, save_time)
    ctx = ForYouContext.build(
        arrays, fy, graph_filter=gf, model=model, sequence=sequence, extra_exclude=exclusion_matrix(rows)
    )
    du_inv = np.divide(1.0, du, out=np.zeros_like(du), where=du > 0)
    ctx.cache["cosave_parts"] = (sp.csr_matrix(s @ sp.diags(dg)), sp.csr_matrix(s.T), du_inv, dg)
    clusters = cache.clusters_of(rows.good_id, world.content) if cache is not None else None
    if clusters is not None:  # the catalog's clusters, as the daily run had them (else fitted on these goods)
        ctx.cache["clusters"] = clusters
    users = np.array([me], np.int64)
    lists = for_you(ctx, users, rc.picks_per_user, ranker, fy.ranker_threads)
    goods = lists.goods
    if int((goods >= 0).sum()) < rc.min_picks:
        return None
    followees, popular = PICK_SOURCES.index("followees"), PICK_SOURCES.index("popular")
    nexts = PICK_SOURCES.index("sequence")
    source = np.where(
        lists.source == followees,
        fallback.FOLLOWEE,
        np.where(lists.source == popular, fallback.POPULAR, fallback.MODEL),
    ).astype(np.int8)
    source[lists.source == nexts] = fallback.SEQUENCE
    via = np.where((lists.source == followees) & (lists.via >= 0), lists.via, -1)
    newest_first = R.order_rows_newest_first(n_u, n_g, su, sg, rows.save_time)
    anchor, cosine = R.anchors(users, goods, source, newest_first, np.arange(n_g), world.content)
    # A sequence pick's anchor is the save it comes next after (its via), as in the daily job.
    anchor = np.where((lists.source == nexts) & (lists.via >= 0), lists.via, anchor)
    top_up = goods[(goods >= 0) & (source == fallback.POPULAR)]
    picks = P.Picks(
        users=users,
        picks=goods,
        scores=np.where(goods >= 0, lists.scores, 0.0).astype(np.float32),
        source=source,
        via_user=via,
        anchor=anchor,
        cosine=cosine,
        popular_saves={int(g): (int(world.popularity[g, 1]), int(world.popularity[g, 0])) for g in top_up},
        eligible=1,
        unknown_users=0,
        unknown_goods=0,
        filler=source == fallback.POPULAR,
    )
    return picks, rows, saved


def rollback(cfg: Config, url: str, run_id: int | None = None) -> tuple[int | None, int]:
    """Serve an older run's picks (default: the newest succeeded run before the current one)."""
    with runs.job_lock(url, "recommend") as conn:
        previous, now = store.rollback(conn, run_id)
    log.info("rolled back from run %s to run %d", previous, now, extra={"from_run": previous, "to_run": now})
    return previous, now


# --- retrain -------------------------------------------------------------------------------------------


@dataclass
class RetrainResult:
    version: str
    promoted: bool
    reason: str
    new_val: dict[str, float]
    current_val: dict[str, float] | None
    current_version: str | None
    seconds: dict[str, float]
    baseline_val: dict[str, dict[str, float]] = field(default_factory=dict)  # gate.BASELINES on the same window
    gate_rankers: dict[str, dict[str, Any]] = field(default_factory=dict)  # the pipelines' gate rankers: cut, as_of


def retrain(cfg: Config, url: str, progress: bool = False) -> RetrainResult:
    """The weekly job: build the graph, train, validate the new and the current pipeline on the same newest
    window (graphrec.app.gate), and promote the new one only if it is not worse by more than
    cfg.recommend.promote_tolerance and beats recent popularity and GF-CF there."""
    from etl.pipeline import build_graph_artifact
    from graphrec.core.artifacts import load_graph
    from training.checkpoint import load_trained, save_trained
    from training.embed import embed
    from training.split import sample_validation, time_split
    from training.train import fit

    stages = Stages()
    models = models_dir(cfg.artifacts)
    with runs.job(url, "retrain", stages) as job:
        runs.set_activity(job.conn, "graphrec retrain")
        with stages.stage("build_graph"):
            built = build_graph_artifact(url, cfg.artifacts, cfg.graph)
            data, id_maps, manifest = load_graph(built.path)
        with stages.stage("train", model=cfg.train.model):
            trained = fit(data, id_maps, dict(manifest, path=str(built.path)), cfg.train, progress=progress)
            save_trained(trained, models)
        if cfg.foryou.ranker:
            with stages.stage("ranker"):  # the For You ranker, versioned with the model (ranker.txt beside it)
                train_checkpoint_ranker(cfg, data, id_maps, manifest, trained).save(models / trained.version)
        with stages.stage("evaluate"):
            # The new model's validation window (a seeded sample of its users); the new and current pipelines
            # are built on the graph without the held-out saves, the baselines fit on the saves before them,
            # and one code path scores all four (gate.validation_scores).
            split = sample_validation(time_split(data, cfg.train.val_share), cfg.recommend.gate_users, cfg.train.seed)
            before = (cfg, split.graph, id_maps, split.cutoff - 1)  # the graph as of the validation cut

            gate_rankers: dict[str, dict[str, Any]] = {}  # each gated ranker's cut and as-of (the ledger)

            def pipeline_val(name: str, model: Any, sources: tuple[str, ...]) -> dict[str, float]:
                score, ranker = gate_pipeline(*before, model, sources, split.val_users)
                gate_rankers[name] = {
                    "cut": ranker.meta["cut"],
                    "as_of": ranker.meta["as_of"],
                    "val_cutoff": split.cutoff,
                    "sources": list(ranker.sources),
                }
                return gate.validation_scores(score, split)

            if cfg.foryou.ranker:
                new_val = pipeline_val("new", trained, cfg.foryou.sources)
            else:
                new_val = gate.embeddings_validation(embed(trained, split.graph, id_maps), id_maps, split)
            baseline_val = gate.baseline_validation(split, cfg.train.seed)
            current_path = current_model(models)
            current_val = None
            current_version = None
            if current_path is not None:
                current = load_trained(current_path)
                current_version = current.version
                current_ranker = Ranker.load(current_path) if cfg.foryou.ranker else None
                # Its pipeline (the saved ranker's sources) with a ranker retrained before the cut: the saved one
                # learnt from saves up to its own training time, which may lie inside this window.
                if current_ranker is not None:
                    current_val = pipeline_val("current", current, current_ranker.sources)
                else:
                    current_val = gate.embeddings_validation(embed(current, split.graph, id_maps), id_maps, split)
            promoted, reason = gate.decide(new_val, current_val, baseline_val, cfg.recommend.promote_tolerance)
        if promoted:
            set_current_model(models, trained.version)
        else:
            log.warning(
                "retrain: model %s not promoted, %s stays CURRENT: %s", trained.version, current_version, reason
            )
        result = RetrainResult(
            version=trained.version,
            promoted=promoted,
            reason=reason,
            new_val=new_val,
            current_val=current_val,
            current_version=current_version,
            seconds=dict(stages.seconds),
            baseline_val=baseline_val,
            gate_rankers=gate_rankers,
        )
        job.succeed(
            trained.version, {"promoted": int(promoted)}, {**dataclasses.asdict(result), "graph": str(built.path)}
        )
        job.summary = (
            f"graphrec retrain ok: model {result.version} {'PROMOTED' if promoted else 'kept aside'} "
            f"({reason}); {time.time() - job.started:.0f} s"
        )
    log.info(
        "retrain finished: %s",
        reason,
        extra={"summary": "retrain", **dataclasses.asdict(result), "duration_s": time.time() - job.started},
    )
    return result
