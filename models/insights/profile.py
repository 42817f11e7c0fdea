"""The call-centre view of one customer (story 5): who they are, where they shop, what they bought
online and in store, whether they read their mail, what they allowed, what they did lately, and
what to offer them now.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from models.catalog import CatalogSnapshot
from models.domain import Identifier
from models.errors import InvalidArgument
from models.identity.graph import IdentifierView, IdentityGraph
from models.privacy.rights import ConsentRecord
from models.serving.recommender import Recommended
from models.storage import Storage
from models.validation import MAX_PAGE_TOKEN_LENGTH, check_text

DEFAULT_TIMELINE = 50
MAX_TIMELINE = 500
MAX_PURCHASES = 100  # newest purchase lines shown; the timeline pages through everything


@dataclass(slots=True)
class ChannelUse:
    channel: str
    events: int
    last_seen: float


@dataclass(slots=True)
class PurchaseLine:
    item_id: str
    title: str
    channel: str
    store_id: str
    order_id: str
    quantity: int
    price: float
    occurred_at: float


@dataclass(slots=True)
class EmailStats:
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    last_opened: float | None = None


@dataclass(slots=True)
class TimelineEntry:
    event_id: str
    channel: str
    type: str
    item_id: str
    store_id: str
    occurred_at: float


@dataclass
class Profile:
    customer_id: str
    identifiers: list[IdentifierView]
    channels: list[ChannelUse]
    purchases: list[PurchaseLine]
    email: EmailStats
    consents: list[ConsentRecord]
    timeline: list[TimelineEntry]
    next_page_token: str
    first_seen: float | None
    last_seen: float | None
    next_best_offers: list[Recommended] = field(default_factory=list)


def timeline_limit(limit: int) -> int:
    if limit == 0:
        return DEFAULT_TIMELINE
    if not 1 <= limit <= MAX_TIMELINE:
        raise InvalidArgument(
            "timeline_limit",
            f"must be between 1 and {MAX_TIMELINE} (0 means {DEFAULT_TIMELINE}), got {limit}",
        )
    return limit


def build(
    storage: Storage,
    graph: IdentityGraph,
    snapshot: CatalogSnapshot,
    customer_id: str,
    consents: list[ConsentRecord],
    limit: int = 0,
    page_token: str = "",
    shown: Sequence[Identifier] = (),
) -> Profile:
    """Everything but the offers (the facade asks the recommender for those), read in one snapshot.
    `shown`: the identifier the agent looked the customer up with, the one e-mail or phone shown masked."""
    limit = timeline_limit(limit)
    seen = storage.customer_activity(customer_id, MAX_PURCHASES, limit + 1, _decode(page_token))
    rows = seen.timeline
    token = _encode(rows[limit - 1].occurred_at, rows[limit - 1].seq) if len(rows) > limit else ""
    sent, opened, clicked = (seen.email.get(t, (0, 0.0)) for t in ("EMAIL_SENT", "EMAIL_OPEN", "EMAIL_CLICK"))
    return Profile(
        customer_id=customer_id,
        identifiers=graph.identifiers(customer_id, shown),
        channels=[ChannelUse(c, n, t) for c, n, t in seen.channels],
        purchases=[
            PurchaseLine(
                p.item_id,
                _title(snapshot, p.item_id),
                p.channel,
                p.store_id,
                p.order_id,
                p.quantity,
                p.price,
                p.occurred_at,
            )
            for p in seen.purchases
        ],
        email=EmailStats(sent[0], opened[0], clicked[0], opened[1] if opened[0] else None),
        consents=consents,
        timeline=[
            TimelineEntry(r.event_id, r.channel, r.type, r.item_id, r.store_id, r.occurred_at)
            for r in rows[:limit]
        ],
        next_page_token=token,
        first_seen=seen.first_seen,
        last_seen=seen.last_seen,
    )


def _title(snapshot: CatalogSnapshot, item_id: str) -> str:
    item = snapshot.items.get(item_id)
    return item.title if item is not None else ""


def _encode(occurred_at: float, seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([occurred_at, seq]).encode()).decode().rstrip("=")


def _decode(token: str) -> tuple[float, int] | None:
    if not token:
        return None
    check_text(token, "page_token", MAX_PAGE_TOKEN_LENGTH)  # ours are ~40 characters
    try:
        at, seq = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return float(at), int(seq)
    except (ValueError, TypeError):
        raise InvalidArgument(
            "page_token", f"is not a token from a previous profile page, got {token[:40]!r}"
        ) from None
