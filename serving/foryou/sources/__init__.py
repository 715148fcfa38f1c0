"""Candidate sources, one module each, one contract (sources.base.Source): users in, scored goods out."""

from __future__ import annotations

from collections.abc import Callable

from serving.foryou.sources.base import Candidates, Source
from serving.foryou.sources.cosave import CoSave
from serving.foryou.sources.followees import Followees
from serving.foryou.sources.fresh import Fresh
from serving.foryou.sources.graph_filter import GraphFilter
from serving.foryou.sources.interest_embedding import InterestEmbedding
from serving.foryou.sources.model import Model
from serving.foryou.sources.sequence import NextGoods
from serving.foryou.sources.trending import Trending

SOURCES: dict[str, Callable[[], Source]] = {
    "graph_filter": GraphFilter,
    "cosave": CoSave,
    "followees": Followees,
    "trending": Trending,
    "fresh": Fresh,
    "model": Model,
    "interest": InterestEmbedding,
    "sequence": NextGoods,
}
# Fixed order: a pick's source is stored as its position here (int8). A new source goes at the end.
SOURCE_NAMES: tuple[str, ...] = tuple(SOURCES)


def make_source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"unknown For You source {name!r}; known: {', '.join(SOURCES)}")
    return SOURCES[name]()


__all__ = ["Candidates", "Source", "SOURCES", "SOURCE_NAMES", "make_source"]
