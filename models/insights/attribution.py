"""Which events a recommendation earned, in its own channel or another one.

Rules (one place, so reports and tests agree):
- Direct: an IMPRESSION, CLICK, ADD_TO_CART or PURCHASE that carries the recommendation_id of a
  recommendation served in the period is attributed to it, whatever channel it happened in, if it
  happened at most `window` after the recommendation was served.
- Across channels: a PURCHASE without a known recommendation_id is attributed to the customer's
  latest recommendation served before it, within the window, whose items include the purchased
  item (a mailed offer bought at the till three days later) — last touch.
- Each event is attributed at most once. Revenue is price x quantity.
- Only what reached the customer counts: an e-mail recommendation (RecommendBatch answers a campaign
  list; the e-mail system may send only some, or run the list twice) counts once an event quotes its
  recommendation_id (EMAIL_SENT, EMAIL_OPEN, EMAIL_CLICK, IMPRESSION or CLICK). A recommendation of
  another channel was asked for to be shown at once, so it counts as served.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from models.domain import DAY
from models.storage import Storage

ATTRIBUTABLE = ("IMPRESSION", "CLICK", "ADD_TO_CART", "PURCHASE")
DELIVERED = ("EMAIL_SENT", "EMAIL_OPEN", "EMAIL_CLICK", "IMPRESSION", "CLICK")  # proof a mail went out
SENT_ONLY_WHEN_PROVEN = frozenset({"EMAIL"})  # channels whose recommendations count once delivered


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


def served_in(storage: Storage, start: float, end: float) -> dict[str, ServedRecommendation]:
    return {
        r.recommendation_id: ServedRecommendation(
            r.recommendation_id, r.customer_id, r.channel, r.placement, frozenset(r.items), r.arm, r.served_at
        )
        for r in storage.served_between(start, end)
    }


def attribute(
    storage: Storage, start: float, end: float, window_days: float
) -> tuple[dict[str, ServedRecommendation], list[Attributed]]:
    """The recommendations served in [start, end) and the events attributed to them."""
    window = window_days * DAY
    served = served_in(storage, start, end)
    if not served:
        return served, []
    events = storage.events_between(sorted({*ATTRIBUTABLE, *DELIVERED}), start, end + window)
    delivered = {e.recommendation_id for e in events if e.type in DELIVERED and e.recommendation_id}
    served = {
        rid: rec
        for rid, rec in served.items()
        if rec.channel not in SENT_ONLY_WHEN_PROVEN or rid in delivered
    }
    events = [e for e in events if e.type in ATTRIBUTABLE]
    # Each customer's recommendations by time, for the cross-channel rule.
    by_customer: dict[str, list[ServedRecommendation]] = {}
    for rec in sorted(served.values(), key=lambda r: r.served_at):
        if rec.customer_id:
            by_customer.setdefault(rec.customer_id, []).append(rec)
    times = {c: [r.served_at for r in recs] for c, recs in by_customer.items()}
    out: list[Attributed] = []
    for e in events:
        customer, etype, channel, item, rec_id, at = (
            e.customer_id,
            e.type,
            e.channel,
            e.item_id,
            e.recommendation_id,
            e.occurred_at,
        )
        revenue = e.price * e.quantity if etype == "PURCHASE" else 0.0
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
