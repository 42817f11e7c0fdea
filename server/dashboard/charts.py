"""Inline SVG charts, drawn on the server: no script, no network, every label escaped.

Each mark carries its figure in data attributes at full precision (`repr` of the float), so a test
(or a curious reader) can compare the chart with the RPC reply it was drawn from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

ROW = 34  # px per bar
LABEL = 170  # px of the label column
PLOT = 420  # px of the plotting area
VALUE = 290  # px of the value column


@dataclass(frozen=True)
class IntervalBar:
    """One uplift: the relative gain with its 95 % interval, and the rates it compares."""

    channel: str
    variant: str  # "" until experiments split a channel into variants
    uplift: float
    ci_low: float
    ci_high: float
    treated_rate: float
    control_rate: float

    @property
    def label(self) -> str:
        return f"{self.channel} · {self.variant}" if self.variant else self.channel


@dataclass(frozen=True)
class FunnelBar:
    step: str
    customers: int
    conversion_from_previous: float


def percent(x: float) -> str:
    return f"{x * 100:+.1f} %" if math.isfinite(x) else "n/a"


def rate(x: float) -> str:
    return f"{x * 100:.2f} %" if math.isfinite(x) else "n/a"


def uplift_chart(bars: Sequence[IntervalBar]) -> str:
    """Horizontal bars from 0 to the uplift, a whisker over the interval; the 0 line marks no gain."""
    finite = [v for b in bars for v in (b.uplift, b.ci_low, b.ci_high) if math.isfinite(v)]
    low, high = min([0.0, *finite]), max([0.0, *finite])
    pad = (high - low) * 0.05 or 0.1
    low, high = low - pad, high + pad

    def x(v: float) -> float:
        v = min(max(v, low), high) if math.isfinite(v) else 0.0
        return LABEL + (v - low) / (high - low) * PLOT

    height = ROW * len(bars) + 28
    parts = [
        f'<svg class="chart uplift-chart" role="img" aria-label="uplift per channel with 95 % intervals"'
        f' width="{LABEL + PLOT + VALUE}" height="{height}" viewBox="0 0 {LABEL + PLOT + VALUE} {height}">',
        f'<line class="zero" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="0" y2="{height - 22}"/>',
        f'<text class="axis" x="{x(0):.1f}" y="{height - 6}" text-anchor="middle">0 (no gain)</text>',
    ]
    for n, b in enumerate(bars):
        y = n * ROW + 6
        mid = y + ROW / 2 - 4
        start, stop = sorted((x(0), x(b.uplift)))
        sign = "gain" if b.uplift >= 0 else "loss"
        parts.append(
            f'<g class="uplift" data-channel="{escape(b.channel)}" data-variant="{escape(b.variant)}"'
            f' data-uplift="{b.uplift!r}" data-ci-low="{b.ci_low!r}" data-ci-high="{b.ci_high!r}">'
            f"<title>{escape(b.label)}: uplift {percent(b.uplift)}, 95 % interval {percent(b.ci_low)}"
            f" to {percent(b.ci_high)}; conversion {rate(b.treated_rate)} vs hold-out"
            f" {rate(b.control_rate)}</title>"
            f'<text class="label" x="{LABEL - 8}" y="{mid + 4:.1f}" text-anchor="end">'
            f"{escape(b.label)}</text>"
            f'<rect class="bar {sign}" x="{start:.1f}" y="{y + 4}" width="{max(stop - start, 1):.1f}"'
            f' height="{ROW - 16}"/>'
            f'<line class="whisker" x1="{x(b.ci_low):.1f}" x2="{x(b.ci_high):.1f}"'
            f' y1="{mid:.1f}" y2="{mid:.1f}"/>'
            f'<line class="whisker" x1="{x(b.ci_low):.1f}" x2="{x(b.ci_low):.1f}" y1="{mid - 7:.1f}"'
            f' y2="{mid + 7:.1f}"/>'
            f'<line class="whisker" x1="{x(b.ci_high):.1f}" x2="{x(b.ci_high):.1f}" y1="{mid - 7:.1f}"'
            f' y2="{mid + 7:.1f}"/>'
            f'<text class="value" x="{LABEL + PLOT + 8}" y="{mid + 4:.1f}">{percent(b.uplift)}'
            f" [{percent(b.ci_low)}, {percent(b.ci_high)}]</text>"
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def funnel_chart(name: str, steps: Sequence[FunnelBar]) -> str:
    """One bar per step, as wide as the customers who reached it; between steps, who dropped off.
    The step that loses the largest share of the previous one is marked: that is where to look."""
    first = max((s.customers for s in steps[:1]), default=0) or 1
    drops = [
        (steps[n - 1].customers - s.customers) / steps[n - 1].customers if steps[n - 1].customers else 0.0
        for n, s in enumerate(steps)
        if n
    ]
    worst = 1 + drops.index(max(drops)) if drops and max(drops) > 0 else -1
    height = ROW * len(steps) + 8
    parts = [
        f'<svg class="chart funnel-chart" role="img" aria-label="funnel {escape(name)}"'
        f' width="{LABEL + PLOT + VALUE}" height="{height}" viewBox="0 0 {LABEL + PLOT + VALUE} {height}">'
    ]
    for n, s in enumerate(steps):
        y = n * ROW + 4
        width = max(PLOT * s.customers / first, 1.0)
        lost = steps[n - 1].customers - s.customers if n else 0
        note = f" · {lost:,} dropped ({drops[n - 1] * 100:.0f} %)" if n and lost > 0 else ""
        mark = " worst-drop" if n == worst else ""
        parts.append(
            f'<g class="funnel-step{mark}" data-funnel="{escape(name)}" data-step="{escape(s.step)}"'
            f' data-customers="{s.customers}" data-conversion="{s.conversion_from_previous!r}">'
            f"<title>{escape(s.step)}: {s.customers:,} customers"
            f" ({rate(s.conversion_from_previous)} of the previous step){escape(note)}</title>"
            f'<text class="label" x="{LABEL - 8}" y="{y + ROW / 2 + 1:.1f}" text-anchor="end">'
            f"{escape(s.step)}</text>"
            f'<rect class="bar step" x="{LABEL}" y="{y + 2}" width="{width:.1f}" height="{ROW - 10}"/>'
            f'<text class="value" x="{LABEL + PLOT + 8}" y="{y + ROW / 2 + 1:.1f}">{s.customers:,}'
            f"{escape(note)}{' ◀ biggest drop-off' if n == worst else ''}</text>"
            "</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def versus_chart(pairs: Sequence[tuple[str, float, float]], ours: str, theirs: str) -> str:
    """Per measure, the model's bar above the baseline's, on one scale per measure (its larger value)."""
    height = ROW * 2 * len(pairs) + 8
    parts = [
        f'<svg class="chart versus-chart" role="img" aria-label="{escape(ours)} against {escape(theirs)}"'
        f' width="{LABEL + PLOT + VALUE}" height="{height}" viewBox="0 0 {LABEL + PLOT + VALUE} {height}">'
    ]
    for n, (name, mine, base) in enumerate(pairs):
        top = max(mine, base, 1e-12)
        for k, (who, value, cls) in enumerate(((ours, mine, "gain"), (theirs, base, "base"))):
            y = n * ROW * 2 + k * (ROW - 6) + 4
            label = escape(name) if k == 0 else ""
            parts.append(
                f'<g class="versus" data-measure="{escape(name)}" data-who="{escape(who)}"'
                f' data-value="{value!r}">'
                f'<text class="label" x="{LABEL - 8}" y="{y + 15}" text-anchor="end">{label}</text>'
                f'<rect class="bar {cls}" x="{LABEL}" y="{y + 2}" width="{max(PLOT * value / top, 1):.1f}"'
                f' height="{ROW - 12}"/>'
                f'<text class="value" x="{LABEL + PLOT + 8}" y="{y + 15}">{escape(who)}: {value:.4f}'
                "</text></g>"
            )
    parts.append("</svg>")
    return "".join(parts)
