"""Generated image tiles for goods without a real image (the demo data): the SVG of a good and the URL it is served at.

The colour says what the good looks like, so a glance at a page of tiles shows whether picks match a
user's saves: the hue comes from the good's CLIP embedding (two fixed random projections -> an angle),
else from its domain; a caller that knows a class of look (a cluster, say) can pass it as `category`.
Only the good's own columns are read (routers/tiles.py), never the demo's planted truth. The title and
domain are written on the tile. Pure functions: the same good always gives the same bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re
import textwrap
from collections.abc import Sequence
from xml.sax.saxutils import escape

import numpy as np

from graphrec.core.rules import short_title

GOLDEN_ANGLE = 137.508
SIZE = 240
_LINE_CHARS = 17
_MAX_LINES = 4
# Characters XML 1.0 cannot hold at all (escaping does not help): drop them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# The tile route's path (a FastAPI path template), the one place the tile URL is spelled.
TILE_PATH = "/tiles/{good_id}.svg"


def tile_url(good_id: int) -> str:
    """Where the app serves the tile of `good_id`."""
    return TILE_PATH.format(good_id=int(good_id))


def _hash_unit(text: str) -> float:
    """A stable number in [0, 1) from a string (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64


def _projection(dim: int) -> np.ndarray:
    """Two fixed unit directions in embedding space, the same in every process."""
    rng = np.random.default_rng(20_240_512 + dim)
    p = rng.standard_normal((2, dim))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


def tile_hue(category: int | None = None, embedding: Sequence[float] | None = None, domain: str | None = None) -> float:
    """Hue in degrees [0, 360): from the category, else the embedding's direction, else the domain."""
    if category is not None:
        return (category * GOLDEN_ANGLE) % 360.0
    if embedding is not None and len(embedding) > 1:
        vec = np.asarray(embedding, dtype=np.float64)
        a, b = _projection(len(vec)) @ vec
        if a or b:
            return math.degrees(math.atan2(b, a)) % 360.0
    return _hash_unit(domain or "") * 360.0


def _rgb(hue: float, lightness: float, saturation: float) -> str:
    r, g, b = colorsys.hls_to_rgb(hue / 360.0, lightness, saturation)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def xml_safe(text: str) -> str:
    """The text without the characters XML 1.0 cannot hold."""
    return _NOT_XML.sub("", text)


def title_lines(title: str, width: int = _LINE_CHARS, max_lines: int = _MAX_LINES) -> list[str]:
    """The title wrapped for the tile, at most `max_lines`, the last cut with an ellipsis when longer."""
    words = " ".join(xml_safe(short_title(title)).split())  # cut first: a 1 MB title costs nothing
    lines = textwrap.wrap(words, width=width, break_long_words=True) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "\u2026"
    return lines


def tile_svg(
    good_id: int,
    title: str,
    domain: str | None = None,
    category: int | None = None,
    embedding: Sequence[float] | None = None,
) -> str:
    """An SVG image for a good: background coloured by its look, its title and domain on top, XML-escaped."""
    hue = tile_hue(category, embedding, domain)
    # A little lightness variation per good so neighbouring tiles of one look are told apart.
    shade = 0.42 + 0.12 * _hash_unit(f"good:{good_id}")
    top, bottom = _rgb(hue, shade + 0.12, 0.55), _rgb((hue + 25) % 360, shade - 0.08, 0.6)
    lines = title_lines(title)
    line_h = 26
    y0 = SIZE / 2 - (len(lines) - 1) * line_h / 2
    text = "".join(
        f'<text x="{SIZE / 2:g}" y="{y0 + i * line_h:g}" class="t">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    label = escape(xml_safe(domain or ""))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}">'
        f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{top}"/><stop offset="1" stop-color="{bottom}"/>'
        f"</linearGradient></defs>"
        f"<style>.t{{font:600 19px system-ui,sans-serif;fill:#fff;text-anchor:middle;"
        f"dominant-baseline:middle}}"
        f".d{{font:13px system-ui,sans-serif;fill:#ffffffcc;text-anchor:middle}}</style>"
        f'<rect width="{SIZE}" height="{SIZE}" fill="url(#g)"/>'
        f"{text}"
        f'<text x="{SIZE / 2:g}" y="{SIZE - 18}" class="d">{label}</text>'
        f"</svg>"
    )
