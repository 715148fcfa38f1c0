"""Bad input: find it, count it, say it. Pure functions over SourceTables.

Fatal problems (no goods, mixed embedding dimensions) raise `InputError` naming the table and a row. The
rest are skipped (or, for titles and URLs, kept and flagged) and counted as `Finding`s; with `strict`, the
first finding is fatal too.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from etl.tables import (
    BAD_EMBEDDING_LAYOUT,
    BAD_EMBEDDING_NULL_ELEMENT,
    INFINITE_TIME,
    MINUS_INFINITE_TIME,
    NO_TIME,
    NULL_ID,
    SourceTables,
    take,
)
from graphrec.core.rules import FUTURE_TOLERANCE_S, MAX_TITLE_CHARS, MIN_ID

# More than this share of goods with a dimension other than the usual one is a mixed catalog, not a few bad rows.
MIXED_DIM_SHARE = 0.05
_MARKUP = re.compile(r"<[^>]*>|&[a-zA-Z]+;|&#\d+;")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class InputError(ValueError):
    """Source data that cannot be turned into a graph; the message names the table and a row."""


@dataclass
class Finding:
    kind: str  # e.g. "duplicate_save"
    table: str
    count: int
    action: str  # "skipped" or "kept"
    examples: list[str] = field(default_factory=list)  # a few row keys, e.g. "id=17" or "user_id=3,good_id=9"
    column: str = ""  # the column at fault, when it is one column (e.g. "saved_at")

    def describe(self) -> str:
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.count} {self.kind.replace('_', ' ')} {self.action}{ex}"


class RowKeys:
    """The key that names each row of a table in a finding ("id=17", "user_id=3,good_id=9"), formatted only
    for the rows a finding shows: formatting every row's key took ~10 s at 1M goods and 1.5M saves."""

    def __init__(self, *columns: tuple[str, np.ndarray]) -> None:
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[0][1])

    def __getitem__(self, i: int) -> str:
        return ",".join(f"{name}={_key(int(values[i]))}" for name, values in self.columns)


def _examples(keys: RowKeys, mask: np.ndarray, n: int = 3) -> list[str]:
    return [keys[i] for i in np.nonzero(mask)[0][:n].tolist()]


class _Checker:
    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.findings: list[Finding] = []

    def flag(
        self,
        kind: str,
        table: str,
        mask: np.ndarray,
        keys: RowKeys | None,
        action: str = "skipped",
        column: str = "",
    ) -> None:
        n = int(mask.sum())
        if n == 0:
            return
        examples = _examples(keys, mask) if keys is not None else []
        finding = Finding(kind, table, n, action, examples, column)
        if self.strict:
            raise InputError(f"--strict: {finding.describe()}")
        self.findings.append(finding)


def _key(v: int) -> str:
    return "NULL" if v == NULL_ID else str(v)


def _ids(prefix: str, values: np.ndarray) -> RowKeys:
    return RowKeys((prefix, values))


def _pairs(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> RowKeys:
    return RowKeys((a_name, a), (b_name, b))


# Each table's key columns (ids and references, which must be positive: graphrec.core.rules) and its time
# columns; the event times (when a row came to be) must not lie in the future.
_KEYS = {
    "users": ("id",),
    "goods": ("id",),
    "collections": ("id", "owner_id"),
    "collection_goods": ("collection_id", "good_id"),
    "saves": ("user_id", "good_id"),
    "follows": ("follower_id", "followee_id"),
}
_TIMES = {
    "users": ("created_at",),
    "goods": ("created_at", "deleted_at"),
    "collections": ("created_at",),
    "collection_goods": ("added_at",),
    "saves": ("saved_at",),
    "follows": ("created_at",),
}
_NOT_EVENTS = {("goods", "deleted_at")}  # a deletion may be scheduled ahead


def _row_keys(table: str, t: Any) -> RowKeys:
    cols = _KEYS[table]
    if cols[0] == "id":  # a table with its own id: that names the row
        return _ids("id", t.id)
    return _pairs(cols[0], getattr(t, cols[0]), cols[1], getattr(t, cols[1]))


def _keys_and_times(chk: _Checker, tables: SourceTables, now: int) -> SourceTables:
    """Rows with a NULL or non-positive id or reference, an infinite timestamp, or an event time after
    now + FUTURE_TOLERANCE_S: flagged naming the table, column and row, and skipped."""
    out = {}
    for table in _KEYS:
        t = getattr(tables, table)
        keys = _row_keys(table, t)
        keep = np.ones(len(keys), dtype=bool)
        for column in _KEYS[table]:
            v = getattr(t, column)
            null = v == NULL_ID
            chk.flag("null_id", table, null, keys, column=column)
            bad = ~null & (v < MIN_ID)
            chk.flag("non_positive_id", table, bad, keys, column=column)
            keep &= ~null & ~bad
        for column in _TIMES[table]:
            v = getattr(t, column)
            infinite = keep & ((v == INFINITE_TIME) | (v == MINUS_INFINITE_TIME))
            chk.flag("infinite_timestamp", table, infinite, keys, column=column)
            keep &= ~infinite
            if (table, column) not in _NOT_EVENTS:
                future = keep & (v != NO_TIME) & (v > now + FUTURE_TOLERANCE_S)
                chk.flag("timestamp_in_the_future", table, future, keys, column=column)
                keep &= ~future
        out[table] = take(t, keep)
    return SourceTables(**out)  # type: ignore[arg-type]


def _duplicates(*cols: np.ndarray) -> np.ndarray:
    """True for every row that repeats an earlier row's key (rows are kept in their given order)."""
    if len(cols[0]) == 0:
        return np.zeros(0, dtype=bool)
    keys = np.stack(cols, axis=1)
    _, first = np.unique(keys, axis=0, return_index=True)
    dup = np.ones(len(keys), dtype=bool)
    dup[first] = False
    return dup


def clean_tables(
    tables: SourceTables, embedding_dim: int, strict: bool = False, now: int | None = None
) -> tuple[SourceTables, list[Finding]]:
    """Check every table; return the rows fit for the graph and what was found. `now` (unix seconds, default
    the clock) is what "in the future" is measured against."""
    chk = _Checker(strict)
    # Before rows are skipped for their keys or times: saves of a good skipped so are not "missing" goods.
    all_goods = np.sort(tables.goods.id)
    tables = _keys_and_times(chk, tables, int(time.time()) if now is None else now)
    u, g = tables.users, tables.goods

    dup_user = _duplicates(u.id)
    chk.flag("duplicate_id", "users", dup_user, _ids("id", u.id))
    u = take(u, ~dup_user)  # type: ignore[assignment]
    dup_good = _duplicates(g.id)
    chk.flag("duplicate_id", "goods", dup_good, _ids("id", g.id))
    g = take(g, ~dup_good)  # type: ignore[assignment]

    if len(g.id) == 0:
        raise InputError("goods: the table is empty; there is nothing to recommend")
    good_keys = _ids("id", g.id)
    dims = g.embedding_dim
    present = dims > 0
    dim_values, dim_counts = np.unique(dims[present], return_counts=True)
    wrong_dim = present & (dims != embedding_dim)
    if len(dim_values) > 1 and wrong_dim.sum() > MIXED_DIM_SHARE * present.sum():
        summary = ", ".join(f"{d}-d: {c} rows" for d, c in zip(dim_values.tolist(), dim_counts.tolist(), strict=True))
        example = good_keys[int(np.nonzero(wrong_dim)[0][0])]
        raise InputError(
            f"goods.embedding: mixed embedding dimensions ({summary}); expected {embedding_dim}, e.g. goods {example}"
        )
    if len(dim_values) == 1 and dim_values[0] != embedding_dim:
        raise InputError(
            f"goods.embedding: every embedding is {dim_values[0]}-d but graph.embedding_dim is {embedding_dim} "
            f"(e.g. goods {good_keys[0]}); set graph.embedding_dim or fix the embeddings"
        )
    chk.flag("missing_embedding", "goods", dims == 0, good_keys, column="embedding")
    chk.flag("embedding_with_null_element", "goods", dims == BAD_EMBEDDING_NULL_ELEMENT, good_keys, column="embedding")
    chk.flag("malformed_embedding", "goods", dims == BAD_EMBEDDING_LAYOUT, good_keys, column="embedding")
    chk.flag("wrong_dimension_embedding", "goods", wrong_dim, good_keys)
    emb = g.embedding
    ok_dim = present & ~wrong_dim
    nonfinite = ok_dim & ~np.isfinite(emb).all(axis=1)
    chk.flag("nan_or_inf_embedding", "goods", nonfinite, good_keys)
    zero = ok_dim & ~nonfinite & ~emb.any(axis=1)  # a finite vector of norm 0
    chk.flag("all_zero_embedding", "goods", zero, good_keys)
    bad_domain = np.array([d is None for d in g.domain.tolist()], dtype=bool)
    chk.flag("unparseable_url", "goods", bad_domain, good_keys, action="kept without a domain")
    titles = g.title.tolist()
    markup = np.array([bool(_MARKUP.search(t or "")) for t in titles], dtype=bool)
    chk.flag("title_with_markup", "goods", markup, good_keys, action="kept (escaped when shown)")
    control = np.array([bool(_CONTROL.search(t or "")) for t in titles], dtype=bool)
    chk.flag("title_with_control_characters", "goods", control, good_keys, action="kept (escaped when shown)")
    long_title = np.array([len(t or "") > MAX_TITLE_CHARS for t in titles], dtype=bool)
    chk.flag(
        "over_long_title",
        "goods",
        long_title,
        good_keys,
        action=f"kept (shown cut to {MAX_TITLE_CHARS} characters)",
        column="title",
    )
    g = take(g, ok_dim & ~nonfinite & ~zero)  # type: ignore[assignment]
    if len(g.id) == 0:
        raise InputError("goods: no good has a usable embedding")

    user_set, good_set = np.sort(u.id), np.sort(g.id)
    # all_goods (above), not good_set: saves of goods skipped for their embedding are not of "missing" goods.

    def known(ids: np.ndarray, universe: np.ndarray) -> np.ndarray:
        return np.isin(ids, universe, assume_unique=False)

    c = tables.collections
    dup_coll = _duplicates(c.id)
    chk.flag("duplicate_id", "collections", dup_coll, _ids("id", c.id))
    c = take(c, ~dup_coll)  # type: ignore[assignment]
    orphan = ~known(c.owner_id, user_set)
    chk.flag("missing_owner", "collections", orphan, _ids("id", c.id))
    c = take(c, ~orphan)  # type: ignore[assignment]

    s = tables.saves
    skeys = _pairs("user_id", s.user_id, "good_id", s.good_id)
    missing_user = ~known(s.user_id, user_set)
    missing_good = ~known(s.good_id, all_goods)
    chk.flag("save_of_missing_user", "saves", missing_user, skeys)
    chk.flag("save_of_missing_good", "saves", missing_good, skeys)
    unusable_good = ~missing_good & ~known(s.good_id, good_set)
    keep = ~missing_user & ~missing_good & ~unusable_good
    # A save stamped after its good was deleted cannot have happened in the app.
    order = np.argsort(g.id)
    pos = np.searchsorted(g.id[order], s.good_id).clip(0, max(len(g.id) - 1, 0))
    deleted_at = np.where(keep, g.deleted_at[order][pos], NO_TIME)
    after_delete = keep & (s.saved_at >= deleted_at)
    chk.flag("save_after_good_deleted", "saves", after_delete, skeys)
    keep &= ~after_delete
    # Saves are in time order, so the first save of a pair is the one kept.
    dup_save = keep & _duplicates(s.user_id, s.good_id)
    chk.flag("duplicate_save", "saves", dup_save, skeys)
    keep &= ~dup_save
    s = take(s, keep)  # type: ignore[assignment]

    cg = tables.collection_goods
    cgkeys = _pairs("collection_id", cg.collection_id, "good_id", cg.good_id)
    bad_coll = ~known(cg.collection_id, np.sort(c.id))
    bad_good = ~known(cg.good_id, all_goods)
    chk.flag("missing_collection", "collection_goods", bad_coll, cgkeys)
    chk.flag("missing_good", "collection_goods", bad_good, cgkeys)
    keep = ~bad_coll & ~bad_good & known(cg.good_id, good_set)
    dup_cg = keep & _duplicates(cg.collection_id, cg.good_id)
    chk.flag("duplicate_membership", "collection_goods", dup_cg, cgkeys)
    cg = take(cg, keep & ~dup_cg)  # type: ignore[assignment]

    f = tables.follows
    fkeys = _pairs("follower_id", f.follower_id, "followee_id", f.followee_id)
    bad_f = ~known(f.follower_id, user_set) | ~known(f.followee_id, user_set)
    chk.flag("follow_of_missing_user", "follows", bad_f, fkeys)
    self_f = f.follower_id == f.followee_id
    chk.flag("self_follow", "follows", self_f & ~bad_f, fkeys)
    keep = ~bad_f & ~self_f
    dup_f = keep & _duplicates(f.follower_id, f.followee_id)
    chk.flag("duplicate_follow", "follows", dup_f, fkeys)
    f = take(f, keep & ~dup_f)  # type: ignore[assignment]

    cleaned = SourceTables(users=u, goods=g, collections=c, collection_goods=cg, saves=s, follows=f)
    return cleaned, chk.findings
