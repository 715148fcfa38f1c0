"""Named SQL blocks from a package's `.sql` file, so each layer keeps every statement it runs in one place.

A file holds blocks, each opened by a `-- name: <identifier>` line and running to the next one (after
procrastinate's `sql/queries.sql`). Comment lines right under the name say what the statement is for; they
stay in the text (Postgres ignores them). Anything before the first block may only be comments or blank:

    -- Queries of the web layer.

    -- name: user_names
    -- Names of the given users, for the page's lists.
    SELECT id, name FROM users WHERE id = ANY(%(ids)s) ORDER BY name, id;

Statements take psycopg's `%(name)s` parameters (a literal `%` is written `%%`); never format values into
them. Load a file once, at import: `QUERIES = load_queries(__package__, "queries.sql")`.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_NAME = re.compile(r"--\s*name:\s*(\S*)\s*")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def parse_queries(text: str, source: str = "<string>") -> dict[str, str]:
    """{name: statement} from the text of a `.sql` file of named blocks, in file order.

    Each statement is its block with surrounding whitespace and one trailing `;` removed (so it can be
    nested, e.g. in `COPY (...) TO STDOUT`). Raises ValueError naming `source` and the line for a bad name, a
    repeated name, an empty block, or SQL before the first name.
    """
    queries: dict[str, str] = {}
    name: str | None = None
    start = 0
    body: list[str] = []

    def close() -> None:
        if name is None:
            return
        statement = "\n".join(body).strip().removesuffix(";").rstrip()
        if not any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines()):
            raise ValueError(f"{source}:{start}: query {name!r} has no SQL")
        queries[name] = statement

    for number, line in enumerate(text.splitlines(), start=1):
        header = _NAME.fullmatch(line.strip())
        if header is not None:
            close()
            name, start, body = header.group(1), number, []
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"{source}:{number}: query name {name!r} is not a lower-case identifier")
            if name in queries:
                raise ValueError(f"{source}:{number}: query {name!r} is defined twice")
        elif name is None:
            if line.strip() and not line.strip().startswith("--"):
                raise ValueError(f"{source}:{number}: SQL before the first '-- name:' line")
        else:
            body.append(line)
    close()
    return queries


@functools.cache
def _load(package: str, filename: str) -> tuple[tuple[str, str], ...]:
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    return tuple(parse_queries(text, f"{package}/{filename}").items())


def load_queries(package: str, filename: str) -> dict[str, str]:
    """{name: statement} of the `.sql` file `filename` inside `package` (e.g. "serving.web", "queries.sql").

    The file is read and parsed once per process; each call returns a new dict. Raises FileNotFoundError
    for a missing file and ValueError (file and line) for a malformed one.
    """
    return dict(_load(package, filename))
