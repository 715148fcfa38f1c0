"""Wiring of the For You pipeline (serving/foryou): the graph as arrays (etl), the graph filter, the model's
vectors and the sequence model's next-good scores (training), the ranker beside the model's checkpoint (with
the sequence model's checkpoint in sequence/ when that source is on), and the evaluate rows.

The evaluate row `for_you` and `graphrec recommend` both call `serving.foryou.pipeline.for_you` through
`build_context` here; only the graph differs (as of the split time T, or as of now).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from graphrec.core.arrays import GraphArrays
from graphrec.core.config import Config, TrainConfig
from graphrec.core.metrics import ScoreFn
from serving.foryou.context import ForYouContext, ModelVectors
from serving.foryou.ranker import Ranker, active_sources, fit_ranker, training_cut
from serving.foryou.sources import make_source

log = logging.getLogger(__name__)

# Each graph filter's settings: GF-CF's published ones (as the evaluate row gf_cf, evaluation.models.graph_filter),
# ChebyCF's chosen on Gowalla's validation carve-out (benchmarks/gowalla.py), BSPM's paper defaults.
GRAPH_FILTER_PARAMS: dict[str, dict[str, float | int | str]] = {
    "gf_cf": {"k": 256, "alpha": 0.3},
    "chebycf": {"order": 10, "flatness": 2.0, "ideal_k": 512, "ideal_weight": 0.2, "degree_power": 0.4},
    "bspm": {},
}
# Depth of the evaluated lists (the evaluator traces recall@k up to 50).
EVAL_DEPTH = 50
# The sequence model's checkpoint, inside the model's directory beside ranker.txt.
SEQUENCE_DIR = "sequence"


def graph_filter_fit(saves: sp.csr_matrix, kind: str = "gf_cf") -> ScoreFn:
    """The For You graph filter ``kind`` (config foryou.graph_filter) fitted on ``saves`` [U, G]. Its SVD seeds
    every ARPACK draw, so two fits of one save matrix give the same scores bit for bit (identical For You runs
    once differed in the gate's ranker rows through an unseeded ARPACK restart)."""
    from training.graph_filter import fit_graph_filter

    if kind not in GRAPH_FILTER_PARAMS:
        raise ValueError(f"foryou.graph_filter: unknown filter {kind!r}; expected one of {sorted(GRAPH_FILTER_PARAMS)}")
    return fit_graph_filter(saves, kind, **GRAPH_FILTER_PARAMS[kind])


def _filter_of(cfg: Config) -> Callable[[sp.csr_matrix], ScoreFn]:
    return functools.partial(graph_filter_fit, kind=cfg.foryou.graph_filter)


def _with_filter(ranker: Ranker, cfg: Config) -> Ranker:
    """The ranker learned its graph_filter features from this filter: serving must run the same one."""
    ranker.meta["graph_filter"] = cfg.foryou.graph_filter
    return ranker


def model_vectors(trained: Any, data: Any, id_maps: Any) -> ModelVectors:
    """The model's embeddings of `data` in the graph's index space."""
    from training.embed import embed

    emb = embed(trained, data, id_maps)
    return vectors_of_embeddings(emb, id_maps, int(data["user"].num_nodes), int(data["good"].num_nodes))


# --- the sequence source's model ---------------------------------------------------------------------


def sequence_config(cfg: Config) -> TrainConfig:
    """The sequence source's SASRec settings: train.sasrec_* and the shared train settings, for
    foryou.sequence_epochs epochs (capped at foryou.sequence_time_budget_s) over every save it is given, with
    no validation window of its own (the caller has cut the graph already)."""
    return dataclasses.replace(
        cfg.train,
        model="sasrec",
        max_epochs=cfg.foryou.sequence_epochs,
        time_budget_s=cfg.foryou.sequence_time_budget_s,
        val_share=0.0,
    )


def fit_sequence(cfg: Config, data: Any, id_maps: Any, cut: int, manifest: dict[str, Any] | None = None) -> Any:
    """The sequence model (a training.checkpoint.Trained of kind "sasrec") fitted on the saves of `data` at or
    before `cut` (unix s) only: the ranker learns its sequence features as of that cut, and its labels (the
    saves after it) reach neither the weights nor the sequences. Serving uses the same weights over each
    user's saves as of now, as it uses the graph model trained without its validation window."""
    from training.split import edges_before
    from training.train import fit

    meta = {**(manifest or {}), "purpose": "for_you_sequence", "sequence_cut": int(cut)}
    trained = fit(edges_before(data, int(cut) + 1), id_maps, meta, sequence_config(cfg), progress=False)
    log.info(
        "for_you sequence model %s fitted on the saves up to %d in %.1f s", trained.version, cut, trained.meta.train_s
    )
    return trained


def sequence_scorer(trained: Any, data: Any, id_maps: Any, arrays: GraphArrays) -> ScoreFn:
    """The sequence model's next-good scores (user_idx [b] -> float32 [b, G]) after each user's saves in
    `arrays` (e.g. `arrays.as_of_time(cut)` for the ranker), over the goods of `data`."""
    from training.models.sasrec import next_good_scorer

    return next_good_scorer(trained, data, id_maps, save_time=arrays.save_time)


@dataclasses.dataclass
class SequenceCheckpoint:
    """The sequence model saved with the ranker (a Ranker attachment): a checkpoint like the model's own
    (weights.pt, its SHA-256 in checkpoint.json, id_maps.npz), refused on load when damaged."""

    trained: Any  # training.checkpoint.Trained

    def save(self, directory: Path) -> None:
        from graphrec.core.artifacts import save_checkpoint

        t = self.trained
        save_checkpoint(Path(directory).parent, Path(directory).name, t.state_dict, t.meta.to_json(), t.id_maps)


def load_sequence(checkpoint: Path, ranker: Ranker) -> Any:
    """The sequence model saved with `ranker` in checkpoint/sequence (a Trained), or None when the ranker does
    not use the sequence source. Raises CorruptArtifact when its weights.pt does not match its checksum, and
    ValueError when it is missing or is not the one the ranker learned from."""
    if "sequence" not in ranker.sources:
        return None
    from training.checkpoint import load_trained

    path = Path(checkpoint) / SEQUENCE_DIR
    if not (path / "checkpoint.json").exists():
        raise ValueError(f"{path}: the ranker uses the sequence source but its model is missing; retrain")
    trained = load_trained(path)
    if trained.version != ranker.meta.get("sequence"):
        raise ValueError(
            f"{path}: sequence model {trained.version}, but the ranker learned from {ranker.meta.get('sequence')}"
        )
    return trained


def one_user_sequence(
    checkpoint: Path, ranker: Ranker, good_ids: np.ndarray, content: np.ndarray, save_time: sp.csr_matrix
) -> ScoreFn | None:
    """The sequence scores for a graph in its own index space (`graphrec recommend --user`'s rows around one
    user): good_ids int64 [G] database ids, content [G, c] their CLIP vectors, save_time csr [U, G] the users'
    save times. None when the ranker does not use the sequence source."""
    trained = load_sequence(checkpoint, ranker)
    if trained is None:
        return None
    from training.models.sasrec import next_good_scorer_of  # torch: only when the ranker uses the sequence

    return next_good_scorer_of(trained, good_ids, content, save_time)


def _with_sequence(ranker: Ranker, trained: Any) -> Ranker:
    """The ranker learned its sequence features from `trained`: it is saved with it and serving runs it."""
    if trained is not None and "sequence" in ranker.sources:
        ranker.meta["sequence"] = trained.version
        ranker.meta["sequence_train_s"] = round(float(trained.meta.train_s), 2)
        ranker.attachments[SEQUENCE_DIR] = SequenceCheckpoint(trained)
    return ranker


def _sequence_inputs(
    cfg: Config,
    data: Any,
    id_maps: Any,
    arrays: GraphArrays,
    cut: int | None,
    manifest: dict[str, Any] | None = None,
) -> tuple[Any, ScoreFn | None, ScoreFn | None]:
    """(the serving sequence model, its scores on `arrays`, the scores as of the cut of the model fitted up to
    `cut`), or Nones when foryou.sources has no "sequence". The serving model is the one fitted up to the cut,
    or with foryou.sequence_refit a second fit on every save of `data`."""
    if "sequence" not in cfg.foryou.sources:
        return None, None, None
    if cut is None:
        raise ValueError("the sequence source needs the ranker's cut to fit its model before it")
    trained = fit_sequence(cfg, data, id_maps, cut, manifest)
    past = arrays.as_of_time(cut)
    serving = fit_sequence(cfg, data, id_maps, arrays.as_of, manifest) if cfg.foryou.sequence_refit else trained
    return serving, sequence_scorer(serving, data, id_maps, arrays), sequence_scorer(trained, data, id_maps, past)


@dataclasses.dataclass
class Base:
    """The pipeline's inputs on one graph: the context (graph filter, model vectors, sequence scores) and, for
    the ranker, the model's vectors without its validation window, the sequence model's scores as of the cut
    and that cut (None without a model or a sequence model: the ranker takes its own), and the sequence
    model itself (saved with the ranker)."""

    ctx: ForYouContext
    val_model: ModelVectors | None
    cut: int | None
    sequence: Any = None
    val_sequence: ScoreFn | None = None


def fit_base(cfg: Config, data: Any, id_maps: Any, arrays: GraphArrays, *, progress: bool = False) -> Base:
    """The graph filter on the saves and, when the sources ask for them, the graph model trained on `data`
    (training holds out its own validation window, the newest train.val_share of the saves) and the sequence
    model fitted on the saves before the ranker's cut."""
    fy = cfg.foryou
    model = val_model = None
    cut = None
    if "model" in fy.sources:
        from training.split import time_split
        from training.train import fit as train_fit

        trained = train_fit(data, id_maps, {"purpose": "for_you"}, cfg.train, progress=progress)
        model = model_vectors(trained, data, id_maps)
        # Ranker features come from before the model's validation cut: neither its weights nor its
        # neighbourhoods saw the label saves.
        split = time_split(data, cfg.train.val_share)
        val_model = model_vectors(trained, split.graph, id_maps)
        cut = int(split.cutoff) - 1
    if "sequence" in fy.sources and cut is None:
        cut = training_cut(arrays, fy.label_share)
    seq, serve_seq, val_seq = _sequence_inputs(cfg, data, id_maps, arrays, cut)
    gf = graph_filter_fit(arrays.saves, fy.graph_filter) if "graph_filter" in fy.sources else None
    ctx = ForYouContext.build(arrays, fy, graph_filter=gf, model=model, sequence=serve_seq)
    return Base(ctx, val_model, cut, seq, val_seq)


def train_ranker(cfg: Config, arrays: GraphArrays, base: Base) -> Ranker:
    """The ranker on `arrays`: labels after the cut (the model's validation cut, else foryou.label_share)."""
    ranker = fit_ranker(
        arrays,
        cfg.foryou,
        graph_filter_fit=_filter_of(cfg),
        model=base.val_model,
        sequence=base.val_sequence,
        cut=base.cut,
    )
    return _with_sequence(_with_filter(ranker, cfg), base.sequence)


# --- evaluate rows ---------------------------------------------------------------------------------------


def evaluation_rows(cfg: Config, progress: bool = False) -> Any:
    """`extra_rows` for evaluation.run.run_evaluation: for_you, for_you_fusion (no ranker) and one row per
    source (src_<name>), all on the EvalSet's as-of-T graph."""
    from evaluation.evaluator import Recommender

    def rows(es: Any) -> Sequence[Recommender]:
        from etl.arrays import graph_arrays
        from evaluation.public_graph import public_graph, why_not

        # A public set's train view goes through etl's build_graph on a clock of sequence steps (see
        # evaluation.public_graph); one without an order or content vectors has no for_you row.
        graph = es.graph if es.graph is not None else public_graph(es, cfg.graph.min_goods)
        if graph is None:
            log.info("no for_you rows on %s: %s", es.name, why_not(es.train))
            return []
        data, id_maps, manifest = graph
        state: dict[str, Any] = {}

        def arrays() -> GraphArrays:
            if "arrays" not in state:
                state["arrays"] = graph_arrays(data, int(manifest["as_of"]), cfg.graph.min_goods)
            return state["arrays"]

        def base() -> Base:
            if "base" not in state:
                state["base"] = fit_base(cfg, data, id_maps, arrays(), progress=progress)
            return state["base"]

        def ranker() -> Ranker:
            if "ranker" not in state:
                state["ranker"] = train_ranker(cfg, arrays(), base())
            return state["ranker"]

        def check(train: Any) -> None:
            if train.n_users != arrays().n_users or train.n_goods != arrays().n_goods:
                raise ValueError("the graph and the train data disagree on users or goods")

        def pipeline_row(with_ranker: bool) -> Any:
            def fit(train: Any) -> ScoreFn:
                from serving.foryou.pipeline import for_you

                check(train)
                ctx, r = base().ctx, ranker() if with_ranker else None

                def score(users: np.ndarray) -> Any:
                    # The top picks_per_user are exactly recommend's list (calibrated to that length); the
                    # evaluator's deeper ranks (recall curve to 50) continue with a 50-long list's other goods.
                    head = for_you(ctx, users, cfg.recommend.picks_per_user, r, cfg.foryou.ranker_threads)
                    deep = for_you(ctx, users, EVAL_DEPTH, r, cfg.foryou.ranker_threads)
                    return _ranked(_extend(head, deep), users)

                return score

            return fit

        def source_row(name: str) -> Any:
            def fit(train: Any) -> ScoreFn:
                from serving.foryou.pipeline import PICK_SOURCES

                check(train)
                ctx = base().ctx
                src = make_source(name)

                def score(users: np.ndarray) -> Any:
                    from serving.foryou.pipeline import ForYouLists

                    c = src.candidates(ctx, users, EVAL_DEPTH)
                    code = np.full(c.goods.shape, PICK_SOURCES.index(name), np.int8)
                    return _ranked(ForYouLists(c.users, c.goods, c.scores, code, c.via, c.via * 0 - 1), users)

                return score

            return fit

        out = [
            Recommender(
                "for_you",
                "For You (serving/foryou): every source's candidates, LightGBM lambdarank, domain cap + MMR",
                pipeline_row(True),
                "model",
            ),
            Recommender(
                "for_you_fusion",
                "For You without the ranker: reciprocal-rank fusion of the sources' candidates",
                pipeline_row(False),
                "ablation",
            ),
        ]
        probe = ForYouContext.build(arrays(), cfg.foryou, graph_filter=lambda u: u, model=None)
        fitted = tuple(n for n in ("model", "sequence") if n in cfg.foryou.sources)  # fitted in base()
        names = active_sources(probe, cfg.foryou.sources) + fitted
        for name in dict.fromkeys(names):
            out.append(Recommender(f"src_{name}", f"For You source {name} alone", source_row(name), "ablation"))
        return out

    return rows


def _extend(head: Any, deep: Any) -> Any:
    """ForYouLists with `head`'s picks first, then `deep`'s picks not already in head, to deep's length."""
    from serving.foryou.pipeline import ForYouLists

    if not np.array_equal(head.users, deep.users):
        raise ValueError("head and deep lists are for different users")
    n, k = deep.goods.shape
    out = {
        f: np.full(getattr(deep, f).shape, v, getattr(deep, f).dtype)
        for f, v in (("goods", -1), ("scores", -np.inf), ("source", 0), ("via", -1), ("interest", -1))
    }
    for i in range(n):
        h = head.goods[i] >= 0
        rest = (deep.goods[i] >= 0) & ~np.isin(deep.goods[i], head.goods[i][h])
        parts = [(head, np.flatnonzero(h)), (deep, np.flatnonzero(rest))]
        j = 0
        for lists, cols in parts:
            cols = cols[: k - j]
            for f in out:
                out[f][i, j : j + len(cols)] = getattr(lists, f)[i, cols]
            j += len(cols)
    return ForYouLists(deep.users, out["goods"], out["scores"], out["source"], out["via"], out["interest"])


def _ranked(lists: Any, users: np.ndarray) -> Any:
    """ForYouLists as the evaluator's RankedLists for `users` (in that order): picks and each pick's source
    name, so the report counts the picks and hits each source supplied."""
    from evaluation.evaluator import RankedLists
    from serving.foryou.pipeline import PICK_SOURCES

    row = {int(u): i for i, u in enumerate(np.asarray(lists.users).tolist())}
    at = np.array([row.get(int(u), -1) for u in np.asarray(users).tolist()], dtype=np.int64)
    goods = np.full((len(at), lists.goods.shape[1]), -1, np.int64)
    code = np.full(goods.shape, -1, np.int64)
    goods[at >= 0] = lists.goods[at[at >= 0]]
    code[at >= 0] = lists.source[at[at >= 0]]
    names = np.array((*PICK_SOURCES, ""), dtype=object)  # index -1: padding
    return RankedLists(goods, names[np.where(goods >= 0, code, -1)])


# --- graphrec train / recommend ------------------------------------------------------------------------


def train_checkpoint_ranker(cfg: Config, data: Any, id_maps: Any, manifest: dict[str, Any], trained: Any) -> Ranker:
    """The ranker for a freshly trained model, on the graph it was trained on: labels = the saves of the
    model's own validation window (after meta.val_cutoff), features and model vectors from before it. With
    the sequence source, the sequence model fitted on the saves up to the ranker's cut rides with the ranker
    (saved into sequence/ by ranker.save)."""
    from etl.arrays import graph_arrays
    from training.split import time_split

    arrays = graph_arrays(data, int(manifest["as_of"]), cfg.graph.min_goods)
    val_model = None
    cut = None
    if "model" in cfg.foryou.sources:
        split = time_split(data, trained.meta.config.val_share)
        val_model = model_vectors(trained, split.graph, id_maps)
        cut = int(split.cutoff) - 1
    seq = val_seq = None
    if "sequence" in cfg.foryou.sources:
        # The sequence model sees the saves up to the ranker's cut only (its labels are after it).
        cut = training_cut(arrays, cfg.foryou.label_share) if cut is None else cut
        seq, _, val_seq = _sequence_inputs(cfg, data, id_maps, arrays, cut, manifest)
    ranker = fit_ranker(
        arrays, cfg.foryou, graph_filter_fit=_filter_of(cfg), model=val_model, sequence=val_seq, cut=cut
    )
    return _with_sequence(_with_filter(ranker, cfg), seq)


def gate_pipeline(
    cfg: Config, graph: Any, id_maps: Any, as_of: int, trained: Any, sources: Sequence[str], users: np.ndarray
) -> tuple[ScoreFn, Ranker]:
    """The retrain gate's For You pipeline with `trained` (its vectors used when "model" is among `sources`) on
    `graph` as of `as_of`: the graph filter fitted on it, a ranker trained on it alone (labels: its newest
    foryou.label_share of saves; features and model vectors as of that cut), for_you's lists of `users` as
    dense scores. Given the graph before the validation cut, nothing of the window reaches lists or ranker."""
    from etl.arrays import graph_arrays
    from serving.foryou.pipeline import for_you, lists_score_fn
    from serving.foryou.ranker import training_cut
    from training.split import edges_before

    fy = dataclasses.replace(cfg.foryou, sources=tuple(sources))
    arrays = graph_arrays(graph, as_of, cfg.graph.min_goods)
    if arrays.save_time.nnz and arrays.save_time.data.max() > as_of:  # the gate's no-leakage guard
        raise ValueError(f"gate_pipeline: the graph has saves after its as-of time {as_of} (the validation cut)")
    cut = training_cut(arrays, fy.label_share)
    model = val_model = None
    if "model" in fy.sources and trained is not None:
        model = model_vectors(trained, graph, id_maps)
        val_model = model_vectors(trained, edges_before(graph, cut + 1), id_maps)  # the graph as of the cut
    gcfg = dataclasses.replace(cfg, foryou=fy)
    # A sequence model of its own, fitted on the saves up to the ranker's cut (the saved one saw the window).
    seq, serve_seq, val_seq = _sequence_inputs(gcfg, graph, id_maps, arrays, cut)
    gf = graph_filter_fit(arrays.saves, fy.graph_filter) if "graph_filter" in fy.sources else None
    ctx = ForYouContext.build(arrays, fy, graph_filter=gf, model=model, sequence=serve_seq)
    base = Base(ctx, val_model, cut, seq, val_seq)
    ranker = train_ranker(gcfg, arrays, base)
    lists = for_you(base.ctx, np.asarray(users, np.int64), EVAL_DEPTH, ranker, fy.ranker_threads)
    return lists_score_fn(lists, arrays.n_goods), ranker


def load_ranker(checkpoint: Any) -> Ranker | None:
    """The ranker saved beside a checkpoint (models/<version>/ranker.txt), or None."""
    return Ranker.load(checkpoint)


def train_for_you_ranker(cfg: Config, graph_dir: Any, run: Any) -> Ranker | None:
    """`graphrec train`'s second step: the ranker for run.trained, saved into its checkpoint directory
    (foryou.ranker = false: none)."""
    if not cfg.foryou.ranker:
        return None
    from graphrec.core.artifacts import load_graph

    data, id_maps, manifest = load_graph(graph_dir)
    ranker = train_checkpoint_ranker(cfg, data, id_maps, manifest, run.trained)
    ranker.save(run.checkpoint)
    return ranker


def vectors_of_embeddings(emb: Any, id_maps: Any, n_users: int, n_goods: int) -> ModelVectors:
    """An Embeddings (keyed by database id) as ModelVectors in the graph's index space."""
    users = id_maps.to_idx("user", emb.user_ids)
    goods = id_maps.to_idx("good", emb.good_ids)
    uv = np.zeros((n_users, emb.user_vecs.shape[1]), np.float32)
    gv = np.zeros((n_goods, emb.good_vecs.shape[1]), np.float32)
    uv[users[users >= 0]] = emb.user_vecs[users >= 0]
    gv[goods[goods >= 0]] = emb.good_vecs[goods >= 0]
    return ModelVectors(uv, gv, kind=emb.model_kind, version=emb.model_version)


def for_you_picks(cfg: Config, graph: dict[str, Any], emb: Any, rows: Any, picks: Any, stages: Any) -> Any:
    """`graphrec recommend` with the For You pipeline: when the CURRENT model's directory holds a ranker, each
    served user's list is replaced by for_you's (the graph as of now; serving's own exclusions: collections,
    recent picks). Users for_you leaves short keep serving's picks (model retrieval, followee and popular
    fallbacks), so every eligible user still gets at least recommend.min_picks. graph: data, id_maps,
    as_of, checkpoint (kept by the job while loading the model) and, when the job has them already, arrays
    (etl.arrays.graph_arrays of data) and clusters (ForYouContext.clusters of those arrays, which the job saves
    beside the run): the catalogue is then not converted or clustered a second time. Returns
    serving.picks.Picks."""
    from etl.arrays import graph_arrays
    from serving import fallback, reasons
    from serving.foryou.pipeline import PICK_SOURCES, for_you
    from serving.rows import exclusion_matrix

    with stages.stage("for_you_load"):
        ranker = Ranker.load(graph["checkpoint"])
        seq = load_sequence(graph["checkpoint"], ranker) if ranker is not None else None
    if ranker is None:
        log.info("no for_you ranker beside %s; serving the model's retrieval", graph["checkpoint"])
        return picks
    rc = cfg.recommend
    data, id_maps = graph["data"], graph["id_maps"]
    with stages.stage("for_you_arrays"):
        arrays = graph.get("arrays")
        if arrays is None:
            arrays = graph_arrays(data, int(graph["as_of"]), cfg.graph.min_goods)
        s2g_user = id_maps.to_idx("user", rows.user_id)
        s2g_good = id_maps.to_idx("good", rows.good_id)
        g2s_user = rows.user_idx(id_maps.user_ids)
        g2s_good = rows.good_idx(id_maps.good_ids)
        ex = exclusion_matrix(rows).tocoo()
        gu, gg = s2g_user[ex.row], s2g_good[ex.col]
        ok = (gu >= 0) & (gg >= 0)
        extra = sp.csr_matrix(
            (np.ones(int(ok.sum()), bool), (gu[ok], gg[ok])), shape=(arrays.n_users, arrays.n_goods), dtype=bool
        )
        model = (
            vectors_of_embeddings(emb, id_maps, arrays.n_users, arrays.n_goods) if "model" in ranker.sources else None
        )
    with stages.stage("for_you_graph_filter"):
        kind = ranker.meta.get("graph_filter", "gf_cf")  # rankers saved before the choice were trained on GF-CF
        gf = graph_filter_fit(arrays.saves, kind) if "graph_filter" in ranker.sources else None
    next_good = sequence_scorer(seq, data, id_maps, arrays) if seq is not None else None
    ctx = ForYouContext.build(arrays, cfg.foryou, graph_filter=gf, model=model, sequence=next_good, extra_exclude=extra)
    if graph.get("clusters") is not None:
        ctx.cache["clusters"] = np.asarray(graph["clusters"], np.int64)
    users_g = s2g_user[picks.users]
    known = users_g >= 0
    with stages.stage("for_you", users=int(known.sum())):
        lists = for_you(ctx, users_g[known], rc.picks_per_user, ranker, cfg.foryou.ranker_threads)
    with stages.stage("for_you_merge"):
        k = picks.picks.shape[1]
        new_picks, new_source, new_via = picks.picks.copy(), picks.source.copy(), picks.via_user.copy()
        new_scores = picks.scores.copy()
        goods_s = np.where(lists.goods >= 0, g2s_good[np.maximum(lists.goods, 0)], -1)[:, :k]
        followees, popular = PICK_SOURCES.index("followees"), PICK_SOURCES.index("popular")
        nexts = PICK_SOURCES.index("sequence")
        src = np.where(
            lists.source[:, :k] == followees,
            fallback.FOLLOWEE,
            np.where(lists.source[:, :k] == popular, fallback.POPULAR, fallback.MODEL),
        ).astype(picks.source.dtype)
        src[lists.source[:, :k] == nexts] = fallback.SEQUENCE
        # A followee pick's via is a user_idx (other sources' are good_idx): map only those.
        is_followee = (lists.source[:, :k] == followees) & (lists.via[:, :k] >= 0)
        via = np.where(is_followee, g2s_user[np.where(is_followee, lists.via[:, :k], 0)], -1)
        # A sequence pick's via is the save it comes next after: its reason's anchor.
        is_next = (lists.source[:, :k] == nexts) & (lists.via[:, :k] >= 0)
        next_after = np.where(is_next, g2s_good[np.where(is_next, lists.via[:, :k], 0)], -1)
        full = (goods_s >= 0).sum(axis=1) >= rc.min_picks
        rows_known = np.flatnonzero(known)[full]
        width = goods_s.shape[1]
        new_picks[rows_known] = -1
        new_picks[rows_known, :width] = goods_s[full]
        new_source[rows_known, :width] = src[full]
        new_via[rows_known] = -1
        new_via[rows_known, :width] = via[full]
        new_scores[rows_known] = 0.0
        new_scores[rows_known, :width] = np.where(goods_s[full] >= 0, lists.scores[:, :k][full], 0.0)
    with stages.stage("for_you_reasons"):
        save_u, save_g = rows.user_idx(rows.save_user), rows.good_idx(rows.save_good)
        newest_first = reasons.order_rows_newest_first(rows.num_users, rows.num_goods, save_u, save_g, rows.save_time)
        anchor, cosine = reasons.anchors(picks.users, new_picks, new_source, newest_first, s2g_good, arrays.content)
        anchor[rows_known, :width] = np.where(next_after[full] >= 0, next_after[full], anchor[rows_known, :width])
    log.info(
        "for_you served %d of %d users (the ranker beside %s); picks per source %s",
        len(rows_known),
        len(picks.users),
        Path(graph["checkpoint"]).name,
        lists.source_counts(),
    )
    return dataclasses.replace(
        picks,
        picks=new_picks,
        scores=new_scores.astype(np.float32),
        source=new_source,
        via_user=new_via,
        anchor=anchor,
        cosine=cosine,
    )
