"""The dashboard's HTML: written on the server from the RPC replies; every text goes through escape()."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from html import escape

from google.protobuf.timestamp_pb2 import Timestamp

from protos.seenext.v1 import common_pb2, insights_pb2
from server.dashboard import charts
from server.dashboard.figures import Figures, Window
from server.dashboard.rules import RulesSection

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:center}
header h1{font-size:18px;margin:0}header form{margin-left:auto}
main{padding:8px 24px 40px;max-width:1100px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{font-size:16px;margin:4px 0 8px}h3{font-size:14px;margin:14px 0 4px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;border-bottom:1px solid #e6e8ec;
text-align:right}td:first-child,th:first-child{text-align:left}th{font-weight:600;background:#f1f3f6}
.note{color:#5b6472}.warning{color:#8a5300;background:#fff6e5;padding:4px 8px;border-radius:4px}
.error{color:#9b1c1c;background:#fdecec;padding:8px 12px;border-radius:4px}
.chart text{font-size:12px;fill:#1d2430}.chart .axis{fill:#5b6472}
.bar.gain{fill:#2f7d4f}.bar.base{fill:#9aa3b0}.bar.loss{fill:#b4483c}.bar.step{fill:#3d6fb6}
.worst-drop .bar.step{fill:#d08a1e}.whisker{stroke:#1d2430;stroke-width:1.5}
.zero{stroke:#8a93a0;stroke-dasharray:3 3}
form.window{display:flex;gap:12px;align-items:end;flex-wrap:wrap}label{display:grid;font-size:12px}
"""


def document(title: str, body: str, signed_in: bool = False) -> str:
    logout = (
        '<form method="post" action="/logout"><button type="submit">Sign out</button></form>'
        if signed_in
        else ""
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><header><h1>seenext · marketing</h1>{logout}</header><main>{body}</main></body></html>"
    )


def login_page(message: str = "") -> str:
    error = f'<p class="error" id="refused">{escape(message)}</p>' if message else ""
    return document(
        "seenext dashboard: sign in",
        f"<section><h2>Sign in with your API key</h2>{error}"
        '<p class="note">A key with the <code>insights</code> scope (the <code>marketing</code> key'
        " of the keys file; <code>make run</code> prints the development keys).</p>"
        '<form method="post" action="/login"><label>API key'
        '<input type="password" name="key" autocomplete="off" required size="40"></label>'
        ' <button type="submit">Sign in</button></form></section>',
    )


def refused_page(message: str) -> str:
    return document(
        "seenext dashboard",
        f'<section><p class="error" id="refused">{escape(message)}</p><p><a href="/">Back</a></p></section>',
    )


def dashboard_page(figures: Figures, rules: RulesSection, window: Window) -> str:
    body = "".join(
        [
            _window_form(figures.channels, window),
            _channels(figures.channels),
            _funnels(figures.funnels),
            _model(figures),
            _rules(rules),
        ]
    )
    return document("seenext dashboard", body, signed_in=True)


def _window_form(report: insights_pb2.ChannelReportResponse, window: Window) -> str:
    start, end = _when(report.period_start), _when(report.period_end)
    return (
        '<section id="window"><h2>Period</h2>'
        f'<p>From <span id="period-start" data-seconds="{report.period_start.seconds}">{start}</span>'
        f' to <span id="period-end" data-seconds="{report.period_end.seconds}">{end}</span> (UTC),'
        f' purchases attributed within <span id="attribution-days">{report.attribution_days}</span> days'
        " of a recommendation.</p>"
        '<form class="window" method="get" action="/">'
        f'<label>From (date, UTC)<input name="start" value="{escape(start[:10])}"></label>'
        f'<label>To (date, inclusive)<input name="end" value="{escape(_end_date(report))}"></label>'
        '<label>Attribution days<input name="attribution_days" size="4"'
        f' value="{window.attribution_days or report.attribution_days}"></label>'
        '<button type="submit">Show</button></form></section>'
    )


def _channels(report: insights_pb2.ChannelReportResponse) -> str:
    bars = [
        charts.IntervalBar(
            channel=_channel(u.channel),
            variant=str(getattr(u, "variant", "")),  # filled once experiments split channels (point 4)
            uplift=u.uplift,
            ci_low=u.ci_low,
            ci_high=u.ci_high,
            treated_rate=u.personalised_rate,
            control_rate=u.holdout_rate,
        )
        for u in report.uplift
    ]
    chart = (
        charts.uplift_chart(bars)
        if bars
        else '<p class="note" id="no-uplift">No channel has an uplift in this period: it needs both arms'
        " served and at least one hold-out conversion (SEENEXT_HOLDOUT &gt; 0).</p>"
    )
    warnings = "".join(f'<p class="warning">{escape(w)}</p>' for w in report.warnings)
    rows = [
        (
            f'<tr class="arm" data-channel="{escape(_channel(r.channel))}" data-arm="{escape(r.arm)}"'
            f' data-recommendations="{r.recommendations}" data-conversions="{r.conversions}"'
            f' data-revenue="{r.revenue!r}">',
            [
                escape(_channel(r.channel)),
                escape(r.arm),
                f"{r.recommendations:,}",
                f"{r.customers:,}",
                f"{r.impressions:,}",
                f"{r.clicks:,}",
                f"{r.add_to_carts:,}",
                f"{r.conversions:,}",
                f"{r.revenue:,.2f}",
                charts.rate(r.click_through),
                charts.rate(r.conversion_rate),
            ],
        )
        for r in report.rows
    ]
    table = _table(
        [
            "channel",
            "arm",
            "recommended",
            "customers",
            "shown",
            "clicks",
            "carts",
            "bought",
            "revenue",
            "click-through",
            "conversion",
        ],
        rows,
        "arms",
    )
    return (
        '<section id="channels"><h2>What personalisation earns, per channel</h2>'
        '<p class="note">Uplift = conversion per recommendation of the personalised arm over the hold-out'
        " arm, minus 1. The bar is the estimate, the whisker its 95 % interval (bootstrap over customers):"
        " a whisker that crosses the dashed 0 line means the gain is not established yet.</p>"
        f"{warnings}{chart}<h3>Per channel and arm</h3>{table}</section>"
    )


def _funnels(report: insights_pb2.FunnelReportResponse) -> str:
    parts = [
        '<section id="funnels"><h2>Journeys and where customers drop off</h2>'
        '<p class="note">Each bar counts the customers who reached the step; the orange one loses the'
        " largest share of the step before it.</p>"
    ]
    for funnel in report.funnels:
        bars = [charts.FunnelBar(s.name, s.customers, s.conversion_from_previous) for s in funnel.steps]
        last = funnel.steps[-1] if funnel.steps else None
        finished = (
            ", ".join(f"{escape(c)}: {n:,}" for c, n in sorted(last.finished_in_channel.items()))
            if last is not None
            else ""
        )
        parts.append(
            f"<h3>{escape(funnel.name)}</h3>{charts.funnel_chart(funnel.name, bars)}"
            + (f'<p class="note">Finished in: {finished}</p>' if finished else "")
        )
    if not report.funnels:
        parts.append('<p class="note">No journeys in this period.</p>')
    parts.append("</section>")
    return "".join(parts)


def _model(figures: Figures) -> str:
    if figures.model is None:
        return (
            '<section id="model"><h2>The serving model</h2>'
            f'<p class="note">{escape(figures.model_note)}</p></section>'
        )
    m = figures.model
    if not m.model_version:
        status = '<p class="note" id="no-model">No model is trained yet: recommendations are popularity.</p>'
    else:
        status = _table(
            ["serving version", "trained at (UTC)", "customers", "items", "interactions", "events stored"],
            [
                (
                    f'<tr id="serving-model" data-version="{escape(m.model_version)}">',
                    [
                        escape(m.model_version),
                        _when(m.trained_at),
                        f"{m.customers:,}",
                        f"{m.items:,}",
                        f"{m.interactions:,}",
                        f"{m.events_stored:,}",
                    ],
                )
            ],
            "model-status",
        )
    metrics = _table(
        ["measure (on the latest days held out at training)", "value"],
        [
            (f'<tr class="metric" data-metric="{escape(k)}" data-value="{v!r}">', [escape(k), _number(v)])
            for k, v in sorted(m.metrics.items())
        ],
        "metrics",
    )
    # "precision@10" beside "popularity.precision@10": the model against the baseline it must beat
    pairs = [
        (k, v, m.metrics[f"popularity.{k}"])
        for k, v in sorted(m.metrics.items())
        if f"popularity.{k}" in m.metrics
    ]
    if pairs:
        metrics = charts.versus_chart(pairs, "model", "popularity") + metrics
    versions = _table(
        ["kept versions, newest first", "trained at (UTC)", "customers", "items"],
        [
            (
                "<tr>",
                [escape(v.model_version), _when(v.trained_at), f"{v.customers:,}", f"{v.items:,}"],
            )
            for v in figures.versions
        ],
        "versions",
    )
    return (
        '<section id="model"><h2>The serving model</h2>'
        f"{status}<h3>Evaluation</h3>{metrics if m.metrics else '<p class=note>No evaluation figures.</p>'}"
        f"<h3>Versions</h3>{versions}</section>"
    )


def _rules(rules: RulesSection) -> str:
    if rules.note:
        in_force = f'<p class="note" id="rules-note">{escape(rules.note)}</p>'
    elif not rules.rules:
        in_force = '<p class="note" id="no-rules">No rules: every placement serves its plan unchanged.</p>'
    else:
        in_force = _table(
            ["rule", "name", "placement", "channel", "when", "then", "on", "version", "by", "changed (UTC)"],
            [
                (
                    f'<tr class="rule" data-rule="{escape(r.rule_id)}">',
                    [
                        escape(r.rule_id),
                        escape(r.name),
                        escape(r.placement or "all"),
                        escape(r.channel or "all"),
                        f"<code>{escape(r.condition)}</code>",
                        escape(r.action),
                        "yes" if r.enabled else "no",
                        str(r.version),
                        escape(r.changed_by),
                        _when_seconds(r.changed_at),
                    ],
                )
                for r in rules.rules
            ],
            "rules-table",
        )
    history = (
        _table(
            ["changed (UTC)", "rule", "version", "change", "what", "by"],
            [
                (
                    f'<tr class="rule-change" data-rule="{escape(c.rule_id)}" data-version="{c.version}">',
                    [
                        _when_seconds(c.changed_at),
                        escape(c.rule_id),
                        str(c.version),
                        escape(c.change),
                        f"<code>{escape(c.summary)}</code>",
                        escape(c.changed_by),
                    ],
                )
                for c in rules.history
            ],
            "rules-history",
        )
        if rules.history
        else '<p class="note" id="no-rule-history">No changes.</p>'
    )
    return (
        '<section id="rules"><h2>Merchandising rules in force</h2>'
        f"{in_force}<h3>History</h3>{history}</section>"
    )


def _table(head: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]], table_id: str) -> str:
    """A table of already-escaped cells; each row brings its opening <tr …> tag (with its data)."""
    header = "".join(f"<th>{h}</th>" for h in head)
    body = "".join(open_tag + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for open_tag, cells in rows)
    return f'<table id="{table_id}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def _number(v: float) -> str:
    return f"{int(v):,}" if v.is_integer() and abs(v) < 1e15 else f"{v:.4f}"


def _channel(value: int) -> str:
    try:
        return common_pb2.Channel.Name(value).removeprefix("CHANNEL_")
    except ValueError:
        return f"channel {value}"


def _when(ts: Timestamp) -> str:
    return _when_seconds(ts.seconds + ts.nanos / 1e9) if ts.seconds or ts.nanos else ""


def _when_seconds(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M")


def _end_date(report: insights_pb2.ChannelReportResponse) -> str:
    """The inclusive end date of the form: the day before an end at midnight, else the end's day."""
    end = report.period_end.seconds
    at_midnight = end % 86400 == 0 and not report.period_end.nanos
    return _when_seconds(end - 86400 if at_midnight else end)[:10]
