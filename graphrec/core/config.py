"""Typed configuration: frozen dataclasses per stage, loaded from TOML, overridden by env and CLI.

Precedence, lowest first: dataclass defaults, `configs/graphrec.toml` (or the file named by
`--config` / `GRAPHREC_CONFIG`), environment variables `GRAPHREC_<SECTION>__<KEY>`, and
`--set section.key=value` on the command line. Unknown sections or keys are an error.
Secrets (database URL, alert tokens) never live here: they come from the environment only.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file, variable or override that cannot be applied."""


@dataclass(frozen=True)
class DatabaseConfig:
    # Where the embedded PostgreSQL keeps its data when GRAPHREC_DATABASE_URL is unset.
    embedded_dir: str = ".graphrec/pg"
    # Database created inside the embedded server for graphrec.
    embedded_database: str = "graphrec"


@dataclass(frozen=True)
class PathsConfig:
    # Root for graphs/, models/ and reports/.
    artifacts: str = "artifacts"


@dataclass(frozen=True)
class GraphConfig:
    # A user is eligible for picks with more than this many distinct saved goods.
    min_goods: int = 10
    embedding_dim: int = 512
    # Any bad-input finding becomes fatal.
    strict: bool = False


@dataclass(frozen=True)
class DemoConfig:
    users: int = 5000
    goods: int = 100000
    styles: int = 40
    domains: int = 600
    seed: int = 0


@dataclass(frozen=True)
class TrainConfig:
    # A kind registered in training.models.MODELS; `graphrec train` names the known ones when it is not.
    model: str = "pinsage"
    embedding_dim: int = 64
    num_layers: int = 2
    fanouts: tuple[int, ...] = (10, 5)
    loss: str = "softmax"  # "bpr" or "softmax"
    hard_negatives: bool = False
    batch_size: int = 1024
    # Random goods per batch added to the in-batch negatives of the softmax loss (BPR: one per positive).
    negatives: int = 512
    # Scores are cosines divided by this.
    temperature: float = 0.1
    # PinSage-lite's softmax: subtract log(chance a candidate is drawn) from its logit (logQ correction). On a
    # 1,500-user demo's validation window (seed 0) recall@20 0.0855 with it, 0.0219 without (GF-CF 0.0510).
    logq_correction: bool = True
    # PinSage-lite: width of the spectral input (a rank-k SVD of the degree-normalised save matrix, the one
    # GF-CF filters, folded in per good through its savers; 0: none). 0 kept on the full demo's validation
    # window (677 users, one pinsage_validation.py run at bbbcef5, recall@20): 64 gave 0.0289 and 128 with
    # embedding_dim 128 0.0297, against 0.0303 without (paired differences -0.0014 [-0.0096, +0.0065] and
    # -0.0007 [-0.0090, +0.0072]; GF-CF 0.0295).
    spectral_dim: int = 0
    # LightGCN propagates the whole graph each step, so it wants much larger batches.
    lightgcn_batch_size: int = 8192
    # The sequence model ("sasrec"): each user's newest N saves, attention blocks and heads, dropout, its own
    # batch (users) and step size; its scores are raw dot products, so `temperature` does not apply.
    sasrec_max_len: int = 50
    sasrec_blocks: int = 2
    sasrec_heads: int = 1
    sasrec_dropout: float = 0.2
    sasrec_batch_size: int = 256
    sasrec_lr: float = 0.001
    lr: float = 0.005
    weight_decay: float = 0.0
    max_epochs: int = 30
    # PinSage-lite validates (and may stop early) after this many steps; 0 is a full pass over the saves.
    steps_per_epoch: int = 50
    patience: int = 3
    time_budget_s: float = 480.0
    # Half-life in days of the weight of a save when forming a user's representation (0: no decay).
    recency_half_life_days: float = 60.0
    # Validation window just before the split point, as a share of the saves.
    val_share: float = 0.1
    # At most this many of the window's users are ranked at each validation (a seeded sample; 0: all). The
    # demo's window has 1,118; at 50,000 users and 1M goods ranking 5,000 took ~100 s per validation.
    val_max_users: int = 2000
    seed: int = 0
    # PinSage-lite: goods with at least this many training saves get their own learned id embedding beside
    # the CLIP projection (the rest, and goods new since training, share the zero "unknown" row; 0: no ids).
    # 0 chosen on a 1,500-user demo's validation window (recall@20 over seeds 0 and 1: degree input alone
    # 0.0227, with ids at 2 saves 0.0204, at 1, 3, 5 lower on seed 0). Re-checked on the full demo's window
    # (677 users, bbbcef5): ids at 2 saves with spectral_dim 64 0.0250 against 0.0303 without either
    # (-0.0054 [-0.0147, +0.0025]).
    id_min_saves: int = 0
    # PinSage-lite: the good's popularity (log1p save count, and recency-weighted) as a learned input.
    degree_features: bool = True
    # torch threads for `graphrec train` and evaluate's fits (0: torch's default). Both cores of the 2-core
    # box; set 1 when other heavy work shares the machine (contention made a PinSage step ~8x slower).
    threads: int = 2


@dataclass(frozen=True)
class EvaluateConfig:
    # The split time T: an ISO date/time, or empty to take `test_share` of the newest saves.
    split_at: str = ""
    test_share: float = 0.1
    ks: tuple[int, ...] = (5, 10, 20)
    # Rows of the table (baselines, oracle, pinsage, lightgcn); empty: every one that applies.
    models: tuple[str, ...] = ()
    seed: int = 0
    # Where the public data sets live (gowalla/, amazon-beauty/), read in place.
    data_root: str = "../shared/data"
    # Users scored per matrix product (memory: batch x goods floats).
    batch_size: int = 512


@dataclass(frozen=True)
class RecommendConfig:
    picks_per_user: int = 20
    min_picks: int = 5
    candidates: int = 200
    # MMR trade-off: 0 is pure score order.
    diversity: float = 0.3
    max_per_domain: int = 3
    # Goods picked for a user in the last N days are not picked again.
    repeat_days: int = 14
    # "flat": FAISS exact inner product; "exact": numpy, same answer; "ivf": FAISS approximate, for big catalogs.
    index: str = "flat"
    ivf_nlist: int = 1024
    ivf_nprobe: int = 32
    # Recommend runs whose picks are kept (older ones are pruned unless within repeat_days or current).
    keep_runs: int = 7
    # Retrain promotes a new model unless its validation figures fall short of the current one's by more.
    promote_tolerance: float = 0.02
    # The retrain gate scores the For You pipelines (ranker trained before the validation cut) on a seeded
    # sample of this many validation users (all of them when fewer; 0: all): bounds its cost at the demo size.
    gate_users: int = 1000
    # Fallbacks: followees' saves of the last N days, then goods most saved in the last M days.
    followee_days: int = 30
    popular_days: int = 7
    # A run that would serve fewer users than this share of the current run's users is not published: the
    # current run stays, the job fails (exit non-zero, alert, a failed row in the ledger). 0 turns it off.
    min_served_share: float = 0.5


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # Connections per worker process; a request waits at most pool_timeout_s for one, then gets a 503.
    pool_min: int = 2
    pool_max: int = 4
    pool_timeout_s: float = 2.0
    # uvicorn worker processes (each with its own pool); 2 uses both cores of the target machine.
    workers: int = 2


@dataclass(frozen=True)
class ForYouConfig:
    """The For You pipeline (serving/foryou): candidate sources, the learned ranker, the final list."""

    # Candidate sources, by name (serving/foryou/sources); each also has its own evaluate row. "model" (the
    # graph model's embeddings) is left out until that model earns its place: on the demo PinSage-lite scores
    # below every source here, and training it inside the pipeline doubles its cost.
    sources: tuple[str, ...] = ("graph_filter", "cosave", "followees", "trending", "fresh")
    # "sequence" (next goods after the user's newest saves, the SASRec-style model training.models.sasrec) is
    # also available: `graphrec train` then fits that model beside the main one (settings train.sasrec_*, and
    # the two below) on the saves before the ranker's cut, and saves it with the ranker (sequence/). Off: on a
    # 1,500-user / 30,000-good demo's validation window (the gate's pipeline, ~295 users) recall@20 with it
    # 0.1167 / 0.0613 (seeds 0 / 1) against 0.0956 / 0.0690 without: with it the ranker has one label window
    # (0.1091 / 0.0597 alone), so the source itself adds a little and the lost window costs as much. Its fit
    # is cheap (13.8 s for 3 epochs at 5,000 users / 100,000 goods); `recommend --user` does not pass it yet.
    # The sequence source's model: epochs over every user's saves (no validation window, no early stopping)
    # and a cap on its training time.
    sequence_epochs: int = 3
    sequence_time_budget_s: float = 120.0
    # Serve the sequence source from a second fit on every save (same settings) instead of the model the ranker
    # learned from, which never saw the saves after the cut (the newest item of every user on sequence data).
    sequence_refit: bool = False
    # The graph filter the "graph_filter" source runs (training.graph_filter.FILTERS: "gf_cf", "bspm",
    # "chebycf"). ChebyCF beat GF-CF as an evaluate-style row on the demo's validation window (recall@20 0.0388
    # vs 0.0330) and on Gowalla; the For You pipeline with it is not measured yet, so GF-CF stays the default.
    graph_filter: str = "gf_cf"
    # How GF-CF's top goods are found (serving.foryou.sources.graph_filter): "dense" (the [users, goods] block),
    # "exact" / "ivf" (its co-saved part sparse plus an exact / IVF search over its ideal part's good vectors)
    # or "auto": dense up to 300,000 goods, ivf above (at 10x a [256, 1M] block per batch of users).
    graph_filter_search: str = "auto"
    # Candidates each source proposes per user.
    per_source: int = 200
    # Half-life in days of a save's weight when a source or feature looks at the user's history.
    recency_half_life_days: float = 30.0
    # followees: their saves of the last N days; trending: save velocity over the last N days.
    followee_days: int = 30
    trending_days: int = 14
    # fresh: goods created in the last N days with at most `fresh_max_saves` saves, close by CLIP.
    fresh_days: int = 30
    fresh_max_saves: int = 1
    # The user's newest saves whose CLIP vectors the fresh source compares with.
    fresh_anchors: int = 5
    # k-means clusters of the CLIP vectors: the interest proxy of the trending source and the features.
    clusters: int = 64
    # The ranker learns from the saves of the newest `label_share` of the training data (features: older).
    label_share: float = 0.1
    # `graphrec train` trains the ranker beside the model; `graphrec recommend` uses it when present.
    ranker: bool = True
    # Users with label saves the ranker trains on (a seeded sample when there are more).
    ranker_users: int = 4000
    # Label windows stacked for training (each as long as label_share; one when the model is a source), an
    # older one only while the newer ones hold fewer than ranker_users users.
    ranker_windows: int = 2
    # Users the ranker learns from need this many saves as of the cut (eligibility is min_goods + 1).
    ranker_min_user_saves: int = 3
    ranker_rounds: int = 40
    # Small trees, large leaves: a few hundred users' label saves overfit anything bigger (validation).
    ranker_learning_rate: float = 0.02
    ranker_leaves: int = 7
    ranker_min_leaf: int = 200
    ranker_threads: int = 1
    # Processes For You's batches are split over (serving.foryou.pipeline.for_you; 1: the job's own).
    workers: int = 2
    # Final list: MMR trade-off (0: ranker order) and the per-domain cap, as in [recommend].
    diversity: float = 0.0
    max_per_domain: int = 3
    # Each user's interests (serving/foryou/interests.py): clusters of their saves' vectors in this space
    # ("content": CLIP; "model": the graph model's good vectors), at most interest_max per user; a save less
    # similar than interest_threshold (cosine, centred vectors) to every interest so far starts a new one.
    interest_space: str = "content"
    interest_max: int = 6
    interest_threshold: float = 0.25
    # Calibration of the final list to the user's interest mix (Steck 2018): 0 is the ranker's order, 1 only
    # the mix. Interest quotas: each of the user's interests of weight w is given about
    # round(interest_quota * w * k) of the k places, filled in ranker order by its own candidates (the rest by
    # score); 0 is off. interest_pool: candidates per interest added to the re-rank's pool (the best by ranker
    # score among that interest's candidates), so a small taste has some to fill its places with.
    # interest_min_places: places every interest gets at least (with or without interest_quota; 0 is off).
    # Chosen on the demo's validation window (5,000 users, the window of saves just before the test split, as
    # long as it; 677 users): the highest recall@20 among settings whose planted-interest coverage@20 reached
    # 0.9 (the ceiling there is 0.927: heavy interests with a save before the cut). Recall / coverage:
    # calibration 0.35 alone 0.0650 / 0.833, 0 alone 0.0656 / 0.653, 0.6 0.0618 / 0.847; min_places 1 0.0649 /
    # 0.847; min_places 1 + pool 20 0.0636 / 0.907 (pool 10 0.0639, 30 0.0636, same coverage), with
    # calibration 0.2 0.0653 / 0.907 (chosen), 0.5 0.0618; min_places 2 0.0629 / 0.907; quota 1.0 + pool 20
    # 0.0342 / 0.889, quota 0.5 0.0585 / 0.897. `make bench-foryou-validation` at 2f22792 (top_n's tie rule
    # had changed some candidates since): chosen 0.0614 / 0.906, the same with calibration 0.35 0.0621 / 0.906,
    # score order 0.0630 / 0.652; the settings reaching 0.9 lie within 0.002 of each other (about 3 of 677 users).
    calibration: float = 0.2
    interest_quota: float = 0.0
    interest_pool: int = 20
    interest_min_places: int = 1
    seed: int = 0


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    foryou: ForYouConfig = field(default_factory=ForYouConfig)

    @property
    def artifacts(self) -> Path:
        return Path(self.paths.artifacts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_CONFIG_FILE = Path("configs/graphrec.toml")
ENV_PREFIX = "GRAPHREC_"
# Environment variables that are not config overrides.
_NOT_OVERRIDES = {
    "GRAPHREC_DATABASE_URL",
    "GRAPHREC_TEST_DATABASE_URL",
    "GRAPHREC_CONFIG",
    "GRAPHREC_SERVE_TOKEN",
}


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Turn a TOML value or a string from env/CLI into the field's declared type."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_tp, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported union type")
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise ValueError(value)
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except ValueError:
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    raise ConfigError(f"{where}: unsupported type {tp}")


# Config keys that would hold a secret, and the environment variable that holds it instead.
_SECRET_KEYS = {
    ("database", "url"): "GRAPHREC_DATABASE_URL",
    ("database", "password"): "GRAPHREC_DATABASE_URL",
    ("serve", "token"): "GRAPHREC_SERVE_TOKEN",
}


def _apply(raw: dict[str, dict[str, Any]], section: str, key: str, value: Any, source: str) -> None:
    secret_env = _SECRET_KEYS.get((section, key))
    if secret_env is not None:
        where = source.partition("=")[0]  # never echo the value: it is the secret
        raise ConfigError(f"{section}.{key} in {where}: secrets are not config keys; set ${secret_env} instead")
    raw.setdefault(section, {})[key] = (value, source)


def _build(raw: Mapping[str, Mapping[str, tuple[Any, str]]]) -> Config:
    hints = typing.get_type_hints(Config)
    sections: dict[str, Any] = {}
    for section, values in raw.items():
        if section not in hints:
            known = ", ".join(sorted(hints))
            sources = sorted({src for _, src in values.values()})
            raise ConfigError(f"unknown config section [{section}] in {', '.join(sources)} (known: {known})")
        cls = hints[section]
        field_types = typing.get_type_hints(cls)
        kwargs = {}
        for key, (value, source) in values.items():
            if key not in field_types:
                known = ", ".join(sorted(field_types))
                raise ConfigError(f"unknown config key {section}.{key} in {source} (known: {known})")
            kwargs[key] = _coerce(value, field_types[key], f"{section}.{key} from {source}")
        sections[section] = cls(**kwargs)
    return Config(**sections)


def load_config(
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Resolve the configuration: file, then `GRAPHREC_<SECTION>__<KEY>` variables, then `--set` overrides."""
    environ = os.environ if environ is None else environ
    raw: dict[str, dict[str, Any]] = {}
    explicit = path or environ.get("GRAPHREC_CONFIG")
    file = Path(explicit) if explicit else DEFAULT_CONFIG_FILE
    if explicit and not file.exists():
        raise ConfigError(f"config file {file} does not exist")
    if file.exists():
        with file.open("rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{file}: {e}") from None
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{file}: top-level key {section!r} must be a [section]")
            for key, value in values.items():
                _apply(raw, section, key, value, str(file))
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES:
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" not in rest:
            continue
        section, key = rest.lower().split("__", 1)
        _apply(raw, section, key, value, f"${name}")
    for item in overrides:
        dotted, sep, value = item.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        _apply(raw, section, key, value, f"--set {item}")
    return _build(raw)
