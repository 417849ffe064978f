"""Charts for the reports page, drawn on the server as inline SVG (pure: no I/O, stdlib only).

Every chart is `role="img"` with a `<title>` and a `<desc>` that reads out its data, scales to its container
(`viewBox`, no fixed size), and tells its series apart without colour: fill patterns (solid, hatched, dotted) and
a legend for bars, line styles and marker shapes for lines, and values written next to the marks. Text from alert
data (names, signatures) is escaped here, so a `<script>` name is drawn as text. A chart with nothing to show is a
sentence ("No incidents in this range."), never an empty axis. Colours use presentation attributes only: the
dashboard's Content-Security-Policy allows no inline style.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from itsmd.core.report import duration

WIDTH = 480  # viewBox units; the SVG scales to its container's width (about 1:1 on a laptop, 0.7 on a phone)
PLOT_HEIGHT = 180
LEFT, RIGHT, TOP, BOTTOM = 62, 10, 16, 34  # BOTTOM: the category labels; the legend's rows come below
FONT = 15
LEGEND_ROW = 22
CHAR = 9.0  # a generous width of one character at FONT, to lay out the legend
ROW = 42  # a ranking's row: its label and its bar
TICKS = 5
LABEL_CHARS = 52  # a ranking's label is cut to this many characters (the whole text is in the bar's <title>)
EMPTY = "No incidents in this range."
COLOURS = ("#1f5fbf", "#c2410c", "#1a7f37", "#6e40c9")  # told apart by pattern and legend too
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")

ValueText = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # a machine name (the `data-series` of its marks)
    name: str  # shown in the legend and read out
    values: Sequence[float | None]  # one per category; None = nothing measured


@dataclass(frozen=True, slots=True)
class Bar:
    label: str  # untrusted text allowed: escaped when drawn
    value: float
    note: str = ""  # written after the value (e.g. "known error")


def text(value: object) -> str:
    """Escaped for SVG/HTML text and attribute values; control characters become U+FFFD."""
    return escape(_CONTROL.sub("\ufffd", str(value)), quote=True)


def number_text(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def duration_text(seconds: float) -> str:
    """A duration as at most two units (`45s`, `12m 5s`, `3h 20m`, `2d 4h`, as the CLI's tables); tenths below 1 s."""
    return f"{seconds:.1f}s" if 0 < seconds < 1 else duration(seconds)


_DURATION_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
                   172800, 604800)


def ticks(top: float, count: int = TICKS, durations: bool = False) -> list[float]:
    """Evenly spaced round tick values from 0 covering `top` (at least 1): 1/2/5 x 10^k steps, or for durations
    steps of whole seconds, minutes, hours and days."""
    top = max(float(top), 1.0)
    raw = top / count
    if durations and raw <= _DURATION_STEPS[-1]:
        step = float(next(s for s in _DURATION_STEPS if s >= raw))
    else:
        power = 10.0 ** math.floor(math.log10(raw))
        step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
        if not durations:
            step = max(step, 1.0)
    n = math.ceil(top / step - 1e-9)
    return [step * k for k in range(n + 1)]


@dataclass(frozen=True, slots=True)
class Scale:
    """Values 0..top onto a pixel span, growing upwards (y) or rightwards (x)."""

    top: float
    start: float  # pixel of 0
    length: float  # pixels of `top`
    upwards: bool = True

    def __call__(self, value: float) -> float:
        offset = self.length * (value / self.top) if self.top > 0 else 0.0
        return round(self.start - offset if self.upwards else self.start + offset, 2)


def _has_data(values: Sequence[float | None]) -> bool:
    return any(v is not None and v > 0 for v in values)


def empty(message: str = EMPTY) -> str:
    return f'<p class="chart-empty">{text(message)}</p>'


def _open(chart_id: str, title: str, desc: str, height: float) -> list[str]:
    cid = text(chart_id)
    return [
        f'<svg class="chart" id="{cid}" role="img" aria-labelledby="{cid}-title" aria-describedby="{cid}-desc" '
        f'viewBox="0 0 {WIDTH} {height:g}" preserveAspectRatio="xMidYMid meet" font-size="{FONT}" '
        'font-family="system-ui, sans-serif" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{cid}-title">{text(title)}</title>',
        f'<desc id="{cid}-desc">{text(desc)}</desc>',
    ]


def _patterns(chart_id: str, count: int) -> list[str]:
    """Fills that survive greyscale: solid, hatched, dotted, cross-hatched."""
    out = ["<defs>"]
    for k in range(count):
        colour, pid = COLOURS[k % len(COLOURS)], f"{text(chart_id)}-p{k}"
        shape = k % 4
        if shape == 0:
            continue
        out.append(f'<pattern id="{pid}" width="8" height="8" patternUnits="userSpaceOnUse">'
                   f'<rect width="8" height="8" fill="#fff"/>')
        if shape == 1:
            out.append(f'<path d="M-2,2 l4,-4 M0,8 l8,-8 M6,10 l4,-4" stroke="{colour}" stroke-width="2.5"/>')
        elif shape == 2:
            out.append(f'<circle cx="4" cy="4" r="2.2" fill="{colour}"/>')
        else:
            out.append(f'<path d="M0,0 l8,8 M8,0 l-8,8" stroke="{colour}" stroke-width="1.5"/>')
        out.append("</pattern>")
    out.append("</defs>")
    return out


def _fill(chart_id: str, k: int) -> str:
    return COLOURS[0] if k % 4 == 0 else f"url(#{text(chart_id)}-p{k})"


def _legend_rows(names: Sequence[str]) -> list[list[tuple[int, str, float]]]:
    """The legend's entries (index, name, x) in rows that fit the width."""
    rows: list[list[tuple[int, str, float]]] = [[]]
    x = float(LEFT)
    for k, name in enumerate(names):
        need = 44 + CHAR * len(name)
        if rows[-1] and x + need > WIDTH:
            rows.append([])
            x = float(LEFT)
        rows[-1].append((k, name, x))
        x += need
    return rows


def _legend(chart_id: str, rows: list[list[tuple[int, str, float]]], top: float, lines: bool = False) -> list[str]:
    out = ['<g class="legend">']
    for r, row in enumerate(rows):
        y = top + LEGEND_ROW * (r + 1) - 6
        for k, name, x in row:
            colour = COLOURS[k % len(COLOURS)]
            if lines:
                dash = ' stroke-dasharray="6 4"' if k % 2 else ""
                out.append(f'<line x1="{x:g}" y1="{y - 5:g}" x2="{x + 24:g}" y2="{y - 5:g}" stroke="{colour}" '
                           f'stroke-width="2.5"{dash}/>')
                out.append(_marker(k, x + 12, y - 5, colour))
            else:
                out.append(f'<rect x="{x:g}" y="{y - 13:g}" width="24" height="16" fill="{_fill(chart_id, k)}" '
                           f'stroke="{colour}"/>')
            out.append(f'<text x="{x + 30:g}" y="{y:g}">{text(name)}</text>')
    out.append("</g>")
    return out


def _marker(k: int, x: float, y: float, colour: str) -> str:
    if k % 2 == 0:
        return f'<circle cx="{x:g}" cy="{y:g}" r="4" fill="{colour}"/>'
    # hollow, so a mean drawn at the same place still shows inside it
    return f'<rect x="{x - 5:g}" y="{y - 5:g}" width="10" height="10" fill="none" stroke="{colour}" stroke-width="2"/>'


def _axis(scale: Scale, tick_values: Sequence[float], value_text: ValueText) -> list[str]:
    out = ['<g class="axis">']
    for v in tick_values:
        y = scale(v)
        out.append(f'<line x1="{LEFT}" y1="{y:g}" x2="{WIDTH - RIGHT}" y2="{y:g}" stroke="#d0d7de"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:g}" text-anchor="end" fill="#59636e">{text(value_text(v))}</text>')
    out.append("</g>")
    return out


def _category_labels(categories: Sequence[str], short: Callable[[str], str], band: float) -> list[str]:
    y = TOP + PLOT_HEIGHT + 20
    out = ['<g class="categories">']
    for k, c in enumerate(categories):
        x = LEFT + band * (k + 0.5)
        out.append(f'<text x="{x:g}" y="{y}" text-anchor="middle">{text(short(c))}</text>')
    out.append("</g>")
    return out


def _describe(categories: Sequence[str], series: Sequence[Series], value_text: ValueText) -> str:
    parts = []
    for k, c in enumerate(categories):
        values = [f"{s.name} {value_text(v) if (v := s.values[k]) is not None else 'none'}" for s in series]
        parts.append(f"{c}: {', '.join(values)}")
    return "; ".join(parts) + "."


def columns(chart_id: str, title: str, categories: Sequence[str], series: Sequence[Series], *,
            stacked: bool = True, value_text: ValueText = number_text, short: Callable[[str], str] = str,
            empty_text: str = EMPTY) -> str:
    """Vertical bars per category: the series stacked (e.g. resolutions per week) or side by side (e.g. ack and
    restore breaches per priority)."""
    if not categories or not any(_has_data(s.values) for s in series):
        return empty(empty_text)
    totals = [sum(s.values[k] or 0 for s in series) if stacked else max(s.values[k] or 0 for s in series)
              for k in range(len(categories))]
    tick_values = ticks(max(totals))
    scale = Scale(tick_values[-1], TOP + PLOT_HEIGHT, PLOT_HEIGHT)
    band = (WIDTH - LEFT - RIGHT) / len(categories)
    legend = _legend_rows([s.name for s in series])
    height = TOP + PLOT_HEIGHT + BOTTOM + LEGEND_ROW * len(legend)
    out = _open(chart_id, title, _describe(categories, series, value_text), height)
    out += _patterns(chart_id, len(series)) + _axis(scale, tick_values, value_text)
    bar = band * (0.6 if stacked else 0.8)
    width = bar if stacked else bar / len(series)
    for k, c in enumerate(categories):
        x0, base = LEFT + band * k + (band - bar) / 2, 0.0
        out.append(f'<g class="group" data-category="{text(c)}">')
        for j, s in enumerate(series):
            v = s.values[k] or 0
            lo, hi = (base, base + v) if stacked else (0.0, v)
            x = x0 if stacked else x0 + j * width
            y, h = scale(hi), round(scale(lo) - scale(hi), 2)
            colour = COLOURS[j % len(COLOURS)]
            out.append(f'<rect class="bar" data-series="{text(s.key)}" data-value="{v:g}" x="{x:.2f}" y="{y:g}" '
                       f'width="{width:.2f}" height="{h:g}" fill="{_fill(chart_id, j)}" stroke="{colour}">'
                       f'<title>{text(c)}: {text(s.name)} {text(value_text(v))}</title></rect>')
            if v > 0 and h >= FONT + 2:
                ink = ('fill="#fff"' if j % 4 == 0 else
                       'fill="#1b1f24" stroke="#fff" stroke-width="3" paint-order="stroke"')  # readable on a pattern
                out.append(f'<text x="{x + width / 2:.2f}" y="{y + h / 2 + 4:g}" text-anchor="middle" '
                           f'{ink} font-weight="600">{text(value_text(v))}</text>')
            if stacked:
                base += v
        out.append("</g>")
    out += _category_labels(categories, short, band)
    out += _legend(chart_id, legend, TOP + PLOT_HEIGHT + BOTTOM)
    out.append("</svg>")
    return "\n".join(out)


def lines(chart_id: str, title: str, categories: Sequence[str], series: Sequence[Series], *,
          value_text: ValueText = duration_text, short: Callable[[str], str] = str,
          empty_text: str = EMPTY) -> str:
    """One point per category and series, joined by a line (solid, then dashed); a category without a value
    breaks the line. Durations on the axis by default (MTTR, MTTA per week)."""
    if not categories or not any(_has_data(s.values) for s in series):
        return empty(empty_text)
    top = max(v for s in series for v in s.values if v is not None)
    tick_values = ticks(top, durations=value_text is duration_text)
    scale = Scale(tick_values[-1], TOP + PLOT_HEIGHT, PLOT_HEIGHT)
    band = (WIDTH - LEFT - RIGHT) / len(categories)
    legend = _legend_rows([s.name for s in series])
    height = TOP + PLOT_HEIGHT + BOTTOM + LEGEND_ROW * len(legend)
    out = _open(chart_id, title, _describe(categories, series, value_text), height)
    out += _axis(scale, tick_values, value_text)
    for j, s in enumerate(series):
        colour = COLOURS[j % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if j % 2 else ""
        out.append(f'<g class="series" data-series="{text(s.key)}">')
        run: list[str] = []
        points = []
        for k, v in enumerate([*s.values, None]):
            if v is None:
                if len(run) > 1:
                    out.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                               f'stroke-width="2.5"{dash}/>')
                run = []
                continue
            x, y = LEFT + band * (k + 0.5), scale(v)
            run.append(f"{x:.2f},{y:g}")
            points.append(f'<g class="point" data-category="{text(categories[k])}" data-value="{v:g}">'
                          f'{_marker(j, x, y, colour)}<title>{text(categories[k])}: {text(s.name)} '
                          f'{text(value_text(v))}</title></g>')
        out += points
        out.append("</g>")
    out += _category_labels(categories, short, band)
    out += _legend(chart_id, legend, TOP + PLOT_HEIGHT + BOTTOM, lines=True)
    out.append("</svg>")
    return "\n".join(out)


def ranking(chart_id: str, title: str, bars: Sequence[Bar], *, value_text: ValueText = number_text,
            empty_text: str = EMPTY) -> str:
    """Horizontal bars, largest first as given, each with its label above it and its value after it (noisiest
    alert names, recurring problems). No links inside: a `role="img"` hides them from screen readers, so links
    belong in the table beside the chart."""
    if not _has_data([b.value for b in bars]):
        return empty(empty_text)
    tick_values = ticks(max(b.value for b in bars))
    value_room = 170  # the value and note after the longest bar
    scale = Scale(tick_values[-1], 8, WIDTH - 8 - value_room, upwards=False)
    height = ROW * len(bars) + 8
    desc = "; ".join(f"{b.label}: {value_text(b.value)}{', ' + b.note if b.note else ''}" for b in bars) + "."
    out = _open(chart_id, title, desc, height)
    for k, b in enumerate(bars):
        y = 8 + ROW * k
        label = b.label if len(b.label) <= LABEL_CHARS else b.label[:LABEL_CHARS - 1] + "…"
        end = scale(b.value)
        after = value_text(b.value) + (f" · {b.note}" if b.note else "")
        mark = (f'<text x="8" y="{y + 13}">{text(label)}</text>'
                f'<rect class="bar" x="8" y="{y + 19}" width="{max(end - 8, 1):g}" height="16" '
                f'fill="{COLOURS[0]}"/>'
                f'<text x="{end + 6:g}" y="{y + 32}">{text(after)}</text>'
                f'<title>{text(b.label)}: {text(after)}</title>')
        out.append(f'<g class="rank" data-label="{text(b.label)}" data-value="{b.value:g}">{mark}</g>')
    out.append("</svg>")
    return "\n".join(out)
