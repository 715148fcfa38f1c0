"""The graph filter (training.graph_filter's GF-CF, injected by the app) over the user's saves."""

from __future__ import annotations

import numpy as np

from serving.foryou.context import ForYouContext
from serving.foryou.sources.base import DenseSource


class GraphFilter(DenseSource):
    name = "graph_filter"

    def block(self, ctx: ForYouContext, users: np.ndarray) -> np.ndarray:
        if ctx.graph_filter is None:
            raise ValueError("the graph_filter source needs a graph filter; the app passes one in")
        return np.asarray(ctx.graph_filter(users), dtype=np.float32)
