"""Rules the source rows must keep, stated once for every layer (etl checks them, serving and the API obey them).

- Ids (users.id, goods.id, collections.id and every reference to them) are positive bigints: 1 to 2**63-1.
  etl reports rows with an id <= 0 (or NULL) as findings and skips them; serving's reads leave them out; the
  API refuses such an id with 400.
- Times are finite and not in the future: an 'infinity' / '-infinity' timestamp, or an event time (a save,
  a join, a collection membership...) later than now + FUTURE_TOLERANCE_S, is a finding and the row is
  skipped, so one bad clock cannot move the graph's as-of time.
- Titles are shown at most MAX_TITLE_CHARS characters long (`short_title`), in reasons, API responses and
  tiles; longer titles are kept in the database and flagged by build-graph.
"""

from __future__ import annotations

MIN_ID = 1
MAX_ID = 2**63 - 1
# Clocks of the app's servers may run a little ahead of the database's.
FUTURE_TOLERANCE_S = 3600
MAX_TITLE_CHARS = 200
ELLIPSIS = "\u2026"


def valid_id(value: int) -> bool:
    """Whether `value` is an id a source row may have."""
    return MIN_ID <= value <= MAX_ID


def short_title(title: str | None, limit: int = MAX_TITLE_CHARS) -> str:
    """The title as shown anywhere: at most `limit` characters, cut with an ellipsis when longer."""
    text = title or ""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
