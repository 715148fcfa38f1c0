"""Properties of the generated tiles (pure functions, no database)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from serving.web.tiles import tile_hue, tile_svg, tile_url, title_lines, xml_safe

SVG_TAGS = {"svg", "defs", "linearGradient", "stop", "style", "rect", "text"}


@given(
    title=st.text(max_size=200),
    domain=st.none() | st.text(max_size=60),
    category=st.none() | st.integers(0, 500),
)
def test_any_title_gives_well_formed_svg_with_the_title_only_as_text(
    title: str, domain: str | None, category: int | None
) -> None:
    svg = tile_svg(7, title, domain, category)
    root = ET.fromstring(svg)  # well-formed whatever the title holds
    assert {el.tag.split("}")[1] for el in root.iter()} <= SVG_TAGS
    texts = [el.text or "" for el in root.iter() if el.tag.endswith("text")]
    assert texts[:-1] == title_lines(title)
    assert svg == tile_svg(7, title, domain, category)  # deterministic


@given(st.text(min_size=1, max_size=300))
def test_wrapped_title_keeps_its_words_in_order_within_four_lines(title: str) -> None:
    lines = title_lines(title)
    assert 1 <= len(lines) <= 4 and all(len(line) <= 17 for line in lines)
    kept = "".join(xml_safe(title).split())
    shown = "".join("".join(lines).split())
    if len(shown) < len(kept):
        assert shown.endswith("\u2026")  # cut titles say so
        shown = shown[:-1]
    assert kept.startswith(shown)


def test_same_category_same_hue_and_categories_spread_around_the_wheel() -> None:
    assert tile_hue(category=3) == tile_hue(category=3, domain="other.example")
    hues = sorted(tile_hue(category=c) for c in range(40))
    assert min(np.diff(hues)) > 360 / 40 / 4  # the golden angle keeps 40 categories apart


def test_the_embedding_sets_the_hue_before_the_domain_and_the_domain_without_one() -> None:
    vec = np.random.default_rng(1).standard_normal(16).tolist()
    assert tile_hue(embedding=vec, domain="a.example") == tile_hue(embedding=vec, domain="b.example")
    assert tile_hue(domain="a.example") == tile_hue(domain="a.example") != tile_hue(domain="b.example")
    assert tile_url(42) == "/tiles/42.svg"


def test_goods_of_one_style_get_closer_hues_than_goods_of_different_styles() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((30, 512))

    def good(c: int) -> list[float]:
        v = centres[c] + 0.3 * rng.standard_normal(512)
        return (v / np.linalg.norm(v)).tolist()

    def gap(x: list[float], y: list[float]) -> float:
        d = abs(tile_hue(embedding=x) - tile_hue(embedding=y)) % 360
        return min(d, 360 - d)

    same = [gap(good(c), good(c)) for c in range(30)]
    other = [gap(good(c), good((c + 1) % 30)) for c in range(30)]
    assert np.median(same) * 4 < np.median(other)
