"""The reports page's SVG charts (pure): scales and ticks, bars and points where the data says, empty data as a
sentence, accessibility attributes, and escaping of untrusted text (also inside SVG text and attributes)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from itsmd.web.dashboard import chart
from itsmd.web.dashboard.chart import Bar, Scale, Series

EVIL = '<script>alert("x")</script>'
SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    """The chart is well-formed XML (so the browser's parser and ours agree on what is text)."""
    return ET.fromstring(svg)


def marks(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("class") == cls]


@pytest.mark.parametrize(("top", "durations", "want"), [
    (7, False, [0, 2, 4, 6, 8]),
    (5, False, [0, 1, 2, 3, 4, 5]),
    (0, False, [0, 1]),  # nothing yet: a unit axis, never a division by zero
    (1234, False, [0, 500, 1000, 1500]),
    (2.5, False, [0, 1, 2, 3]),  # counts: whole steps
    (3700, True, [0, 900, 1800, 2700, 3600, 4500]),  # 15 minutes
    (50, True, [0, 10, 20, 30, 40, 50]),
    (86400 * 3, True, [0, 86400, 172800, 259200]),  # days
])
def test_ticks_are_round_and_cover_the_top(top: float, durations: bool, want: list[float]) -> None:
    got = chart.ticks(top, durations=durations)
    assert got == want and got[-1] >= top


def test_scale_maps_zero_and_top_to_the_ends() -> None:
    up = Scale(10, start=216, length=200)
    assert (up(0), up(10), up(5)) == (216, 16, 116)
    right = Scale(4, start=8, length=400, upwards=False)
    assert (right(0), right(4), right(1)) == (8, 408, 108)
    assert Scale(0, 5, 100)(3) == 5  # an empty scale does not divide by zero


@pytest.mark.parametrize(("seconds", "want"), [
    (0, "0s"), (0.5, "0.5s"), (59, "59s"), (60, "1m"), (3725, "1h 2m"), (3600, "1h"), (90061, "1d 1h"),
])
def test_duration_text(seconds: float, want: str) -> None:
    assert chart.duration_text(seconds) == want


def test_stacked_columns_stack_each_week_to_its_total() -> None:
    svg = chart.columns("c", "Resolved", ["2026-W47", "2026-W48"], [
        Series("auto", "auto", [1, 2]), Series("self", "self", [3, 0]), Series("manual", "manual", [0, 2])])
    root = parse(svg)
    assert root.get("role") == "img" and root.get("aria-labelledby") == "c-title"
    assert root.get("aria-describedby") == "c-desc"
    assert root.get("viewBox", "").startswith("0 0 ") and root.get("width") is None  # scales to its container
    groups = marks(root, "group")
    assert [g.get("data-category") for g in groups] == ["2026-W47", "2026-W48"]
    bars = [[(b.get("data-series"), float(b.get("data-value", "-1")), float(b.get("y", 0)),
              float(b.get("height", 0))) for b in marks(g, "bar")] for g in groups]
    assert [[v for _, v, _, _ in week] for week in bars] == [[1, 3, 0], [2, 0, 2]]
    # both weeks total 4: their stacks reach the same height, and a segment sits on the one below it
    tops = [min(y for _, _, y, h in week if h > 0) for week in bars]
    assert tops[0] == tops[1]
    (_, _, y1, h1), (_, _, y2, h2), _ = bars[0]
    assert y2 + h2 == pytest.approx(y1) and h2 == pytest.approx(3 * h1)
    # told apart without colour: a pattern per series after the first, and a legend naming them
    fills = [b.get("fill") for b in marks(groups[0], "bar")]
    assert fills[0].startswith("#") and fills[1] == "url(#c-p1)" and fills[2] == "url(#c-p2)"
    assert [t.text for t in root.iter(f"{SVG}text") if t.text in ("auto", "self", "manual")] == [
        "auto", "self", "manual"]
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text == "2026-W47: auto 1, self 3, manual 0; 2026-W48: auto 2, self 0, manual 2."


def test_grouped_columns_stand_side_by_side() -> None:
    root = parse(chart.columns("s", "SLA", ["P1", "P2"], [Series("ack", "ack", [2, 0]), Series("restore", "restore",
                                                                                                    [1, 4])],
                               stacked=False))
    p1 = marks(marks(root, "group")[0], "bar")
    assert float(p1[0].get("x", 0)) < float(p1[1].get("x", 0))
    assert float(p1[0].get("height", 0)) == pytest.approx(2 * float(p1[1].get("height", 0)))


def test_lines_have_a_point_per_value_and_break_at_gaps() -> None:
    svg = chart.lines("m", "MTTR", ["2026-W46", "2026-W47", "2026-W48", "2026-W49"], [
        Series("mean", "mean", [600, None, 1200, 1800]), Series("p90", "p90", [900, None, 2400, 3600])],
        short=lambda w: w[-3:])
    root = parse(svg)
    points = marks(root, "point")
    assert [(p.get("data-category"), p.get("data-value")) for p in points[:3]] == [
        ("2026-W46", "600"), ("2026-W48", "1200"), ("2026-W49", "1800")]
    assert len(points) == 6
    # the missing week breaks each line: one polyline of the last two points per series, the lone first
    # point stands alone
    polylines = list(root.iter(f"{SVG}polyline"))
    assert len(polylines) == 2 and all(len(p.get("points", "").split()) == 2 for p in polylines)
    assert polylines[1].get("stroke-dasharray")  # the second series is dashed: not by colour alone
    assert {t.text for t in root.iter(f"{SVG}text")} >= {"W46", "W49", "1h", "mean", "p90"}
    higher = [float(p.get("data-value", 0)) for p in points]
    ys = [float(next(iter(p)).get("cy") or next(iter(p)).get("y") or 0) for p in points]
    assert ys[0] > ys[1] > ys[2] and higher[2] > higher[1]  # a longer time is drawn higher


def test_ranking_draws_bars_in_order_with_notes() -> None:
    root = parse(chart.ranking("r", "Recurring", [Bar("disk-full", 5, "known error"), Bar("probe", 2)]))
    rows = marks(root, "rank")
    assert [(r.get("data-label"), r.get("data-value")) for r in rows] == [("disk-full", "5"), ("probe", "2")]
    widths = [float(next(e for e in r.iter() if e.get("class") == "bar").get("width", 0)) for r in rows]
    assert widths[0] == pytest.approx(2.5 * widths[1], rel=0.01)
    assert list(root.iter(f"{SVG}a")) == []  # links belong in the table: role="img" hides them
    assert any(t.text == "5 · known error" for t in root.iter(f"{SVG}text"))


@pytest.mark.parametrize("svg", [
    chart.columns("e", "t", [], []),
    chart.columns("e", "t", ["2026-W48"], [Series("a", "a", [0])]),
    chart.lines("e", "t", ["2026-W48"], [Series("a", "a", [None])]),
    chart.ranking("e", "t", []),
])
def test_no_data_is_a_sentence_not_an_empty_axis(svg: str) -> None:
    assert svg == '<p class="chart-empty">No incidents in this range.</p>'
    assert chart.ranking("e", "t", [], empty_text="No <alerts>.") == '<p class="chart-empty">No &lt;alerts&gt;.</p>'


def test_untrusted_text_is_escaped_in_text_titles_and_attributes() -> None:
    svg = "\n".join([
        chart.ranking("r", "Noisiest", [Bar(EVIL, 3, note=EVIL), Bar('a" onload="x', 1), Bar("nul\x00bell\x07", 1)]),
        chart.columns("c", EVIL, [EVIL], [Series(EVIL, EVIL, [1])]),
        chart.lines("l", "t", [EVIL], [Series("k", EVIL, [60])]),
    ])
    assert "<script" not in svg and 'onload="' not in svg and "\x00" not in svg and "\x07" not in svg
    for part in svg.split("\n<svg")[0:1]:
        root = parse(part if part.startswith("<svg") else "<svg" + part)
        texts = [t.text or "" for t in root.iter(f"{SVG}text")]
        assert EVIL in texts  # shown as text, whole
        assert any(r.get("data-label") == 'a" onload="x' for r in marks(root, "rank"))
        assert any("nul\ufffdbell\ufffd" in t for t in texts)
    titles = re.findall(r"<title[^>]*>([^<]*)</title>", svg)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in titles


def test_long_labels_are_cut_but_kept_whole_in_the_tooltip() -> None:
    label = "x" * 100
    root = parse(chart.ranking("r", "t", [Bar(label, 1)]))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "x" * (chart.LABEL_CHARS - 1) + "…" in texts and label not in texts
    assert any((t.text or "").startswith(label) for t in root.iter(f"{SVG}title"))
