"""The source tables as columnar numpy arrays (what `etl` reads from Postgres and the demo generator makes),
and the demo's planted truth.

Times are int64 unix seconds (UTC). `NO_TIME` marks a missing time (a good that was never deleted).
Ids are database ids (`user_id`, `good_id`, ...), never graph indices.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

NO_TIME = np.iinfo(np.int64).max
# How etl/queries.sql hands over what a row should not hold, so that no read stops on it and etl.validate
# can name the row: a timestamp of 'infinity' / '-infinity', and a NULL id or reference.
INFINITE_TIME = NO_TIME - 1
MINUS_INFINITE_TIME = np.iinfo(np.int64).min
NULL_ID = np.iinfo(np.int64).min
BAD_EMBEDDING_NULL_ELEMENT = -1
BAD_EMBEDDING_LAYOUT = -2


@dataclass
class Users:
    id: np.ndarray  # int64 [N]
    name: np.ndarray  # object [N]
    created_at: np.ndarray  # int64 [N]


@dataclass
class Goods:
    id: np.ndarray  # int64 [N]
    title: np.ndarray  # object [N]
    url: np.ndarray  # object [N]
    domain: np.ndarray  # object [N]; None where the URL could not be parsed
    image_url: np.ndarray  # object [N]; None where the good has no image URL
    created_at: np.ndarray  # int64 [N]
    deleted_at: np.ndarray  # int64 [N]; NO_TIME when not deleted
    embedding: np.ndarray  # float32 [N, D]; rows whose stored dimension differs from D are zero
    # int32 [N]; the stored dimension, 0 for NULL, BAD_EMBEDDING_NULL_ELEMENT / BAD_EMBEDDING_LAYOUT for arrays
    # with a NULL element / of another shape (those rows of `embedding` are zero)
    embedding_dim: np.ndarray


@dataclass
class Collections:
    id: np.ndarray  # int64 [N]
    owner_id: np.ndarray  # int64 [N]
    title: np.ndarray  # object [N]
    created_at: np.ndarray  # int64 [N]


@dataclass
class CollectionGoods:
    collection_id: np.ndarray  # int64 [N]
    good_id: np.ndarray  # int64 [N]
    added_at: np.ndarray  # int64 [N]


@dataclass
class Saves:
    user_id: np.ndarray  # int64 [N]
    good_id: np.ndarray  # int64 [N]
    saved_at: np.ndarray  # int64 [N]
    source: np.ndarray  # object [N]: 'external', 'explore', 'friend', ...


@dataclass
class Follows:
    follower_id: np.ndarray  # int64 [N]
    followee_id: np.ndarray  # int64 [N]
    created_at: np.ndarray  # int64 [N]


@dataclass
class SourceTables:
    users: Users
    goods: Goods
    collections: Collections
    collection_goods: CollectionGoods
    saves: Saves
    follows: Follows

    def counts(self) -> dict[str, int]:
        return {
            f.name: len(getattr(self, f.name).__dict__[fields(getattr(self, f.name))[0].name]) for f in fields(self)
        }


@dataclass
class DemoTruth:
    """The demo generator's planted answer (tables demo_user_interests and demo_good_styles)."""

    user_interests: dict[str, np.ndarray]  # user_id, style, weight (the interests at the end)
    good_style: dict[str, np.ndarray]  # good_id, style
    style_vecs: np.ndarray  # float32 [S, dim]; empty when read back from the database


def take(table: object, mask: np.ndarray) -> object:
    """The rows of a table where `mask` (bool or index array) selects, as a new table of the same type; the
    table itself when a bool mask keeps every row (no copy of a catalog's embeddings for nothing)."""
    if mask.dtype == bool and len(mask) and mask.all():
        return table
    return type(table)(**{f.name: getattr(table, f.name)[mask] for f in fields(table)})  # type: ignore[arg-type]
