"""Which events a recommendation earned, in its own channel or another one.

Rules (one place, so reports and tests agree):
- Direct: an IMPRESSION, CLICK, ADD_TO_CART or PURCHASE that carries the recommendation_id of a
  recommendation served in the period is attributed to it, whatever channel it happened in, if it
  happened at most `window` after the recommendation was served.
- Across channels: a PURCHASE without a known recommendation_id is attributed to the customer's
  latest recommendation served before it, within the window, whose items include the purchased
  item (a mailed offer bought at the till three days later) — last touch.
- Each event is attributed at most once. Revenue is price x quantity.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass

from models.storage import Storage

ATTRIBUTABLE = ("IMPRESSION", "CLICK", "ADD_TO_CART", "PURCHASE")
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class ServedRecommendation:
    recommendation_id: str
    customer_id: str
    channel: str
    placement: str
    items: frozenset[str]
    arm: str
    served_at: float


@dataclass(frozen=True, slots=True)
class Attributed:
    recommendation_id: str
    event_type: str
    event_channel: str
    item_id: str
    revenue: float
    occurred_at: float
    direct: bool  # carried the recommendation_id (else: matched by customer, item and window)


def served_in(db: Storage, start: float, end: float) -> dict[str, ServedRecommendation]:
    rows = (
        db.reader()
        .execute(
            "SELECT recommendation_id, customer_id, channel, placement, items, arm, served_at FROM recommendations"
            " WHERE served_at >= ? AND served_at < ?",
            (start, end),
        )
        .fetchall()
    )
    return {
        r[0]: ServedRecommendation(
            r[0],
            r[1] or "",
            r[2],
            r[3] or "",
            frozenset(json.loads(r[4] or "[]")),
            r[5] or "personalised",
            float(r[6]),
        )
        for r in rows
    }


def attribute(
    db: Storage, start: float, end: float, window_days: float
) -> tuple[dict[str, ServedRecommendation], list[Attributed]]:
    """The recommendations served in [start, end) and the events attributed to them."""
    window = window_days * DAY
    served = served_in(db, start, end)
    if not served:
        return served, []
    marks = ",".join("?" * len(ATTRIBUTABLE))
    events = (
        db.reader()
        .execute(
            "SELECT customer_id, type, channel, item_id, price, quantity, recommendation_id, occurred_at FROM events"
            f" WHERE type IN ({marks}) AND occurred_at >= ? AND occurred_at < ? ORDER BY occurred_at, seq",
            (*ATTRIBUTABLE, start, end + window),
        )
        .fetchall()
    )
    # Each customer's recommendations by time, for the cross-channel rule.
    by_customer: dict[str, list[ServedRecommendation]] = {}
    for rec in sorted(served.values(), key=lambda r: r.served_at):
        if rec.customer_id:
            by_customer.setdefault(rec.customer_id, []).append(rec)
    times = {c: [r.served_at for r in recs] for c, recs in by_customer.items()}
    out: list[Attributed] = []
    for customer, etype, channel, item, price, qty, rec_id, at in events:
        revenue = float(price or 0.0) * int(qty or 1) if etype == "PURCHASE" else 0.0
        direct = served.get(rec_id) if rec_id else None
        if direct is not None:
            if at <= direct.served_at + window:
                out.append(Attributed(direct.recommendation_id, etype, channel, item, revenue, at, True))
            continue
        if etype != "PURCHASE" or customer not in by_customer:
            continue
        recs = by_customer[customer]
        pos = bisect.bisect_right(times[customer], at)
        for candidate in reversed(recs[:pos]):
            if at - candidate.served_at > window:
                break
            if item in candidate.items:
                out.append(Attributed(candidate.recommendation_id, etype, channel, item, revenue, at, False))
                break
    return served, out
