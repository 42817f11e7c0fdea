"""Simulated shoppers for the demo and the reports: recommendations asked for and reacted to.

Each simulated visit goes through the real service: `recommend()` (so the hold-out arm, the
served log and the recommendation ids are the real ones), then tracked events: an IMPRESSION per
item shown, CLICKs, ADD_TO_CARTs and PURCHASEs — in the recommendation's channel, or, for
e-mailed offers, sometimes bought in a store without the id (attributed by the window rule). A
shopper reacts more to items in the categories they bought before (`taste_boost`), so better
recommendations earn more; that is the only way the personalised arm can win. Ad and e-mail
journeys (AD_CLICK -> web view -> cart -> purchase, EMAIL_CLICK -> visit -> purchase) with their
drop-offs feed the funnel report. Events are stamped with the time they are simulated at (the
service stamps the recommendations so), in journey order.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from models.domain import Event, Identifier
from models.service import Seenext
from models.serving.recommender import RecommendQuery


@dataclass
class Behaviour:
    click: float = 0.12  # chance a shown item is clicked
    cart: float = 0.5  # chance a clicked item goes to the basket
    buy: float = 0.5  # chance a basket item is bought
    taste_boost: float = 3.0  # odds multiplier of all three for an item in a category the shopper bought
    email_bought_in_store: float = 0.4  # share of e-mailed offers bought at the till (no recommendation id)
    ad_journeys: float = 0.3  # chance a visit starts from an ad click
    email_journeys: float = 0.2  # chance a visit starts from a newsletter click


@dataclass
class Tally:
    recommendations: Counter = field(default_factory=Counter)  # (channel, arm) -> served
    purchases: Counter = field(default_factory=Counter)  # (channel, arm) -> purchases of recommended items
    events: int = 0


def simulate(
    service: Seenext,
    customers: Sequence[str],
    visits_per_customer: int = 2,
    channels: Sequence[str] = ("WEB", "EMAIL", "POS"),
    k: int = 4,
    behaviour: Behaviour | None = None,
    seed: int = 7,
) -> Tally:
    """Visits of `customers` (their CUSTOMER_ID values) through the service; what was served and bought."""
    b = behaviour or Behaviour()
    rng = random.Random(seed)
    snapshot = service.catalog.snapshot()
    tally = Tally()
    batch: list[Event] = []
    clock = [time.time()]

    def emit(
        customer: str,
        channel: str,
        etype: str,
        item: str = "",
        rec_id: str = "",
        price: float = 0.0,
        order: str = "",
        store: str = "",
    ) -> None:
        clock[0] = max(clock[0] + 1e-6, time.time())
        batch.append(
            Event(
                event_id=f"sim-{uuid.uuid4().hex}",
                identifiers=(Identifier("CUSTOMER_ID", customer),),
                channel=channel,
                type=etype,
                item_id=item,
                quantity=1,
                price=price,
                store_id=store,
                order_id=order,
                recommendation_id=rec_id,
                occurred_at=clock[0],
            )
        )
        tally.events += 1

    for n, customer in enumerate(customers):
        resolved = service.store.resolve(Identifier("CUSTOMER_ID", customer)) or customer
        taste = {
            snapshot.items[i].category
            for i, _ in service.store.purchased_items(resolved)
            if i in snapshot.items
        }
        for visit in range(visits_per_customer):
            channel = rng.choice(list(channels))
            journey = rng.random()
            if channel == "WEB" and journey < b.ad_journeys:
                emit(customer, "ADS", "AD_CLICK")
            elif channel == "WEB" and journey < b.ad_journeys + b.email_journeys:
                emit(customer, "EMAIL", "EMAIL_CLICK")
                emit(customer, "WEB", "VISIT")
            rec = service.recommend(
                RecommendQuery(
                    channel=channel,
                    who=Identifier("CUSTOMER_ID", customer),
                    k=k,
                    placement="newsletter" if channel == "EMAIL" else "home",
                )
            )
            if not rec.items:  # nothing may be offered here (e.g. no e-mail consent): nothing served
                continue
            arm = "holdout" if rec.strategy.startswith("holdout") else "personalised"
            tally.recommendations[(channel, arm)] += 1
            order = f"sim-{seed}-{n}-{visit}"
            for item in rec.items:
                emit(customer, channel, "IMPRESSION", item.item_id, rec.recommendation_id)
                odds = b.taste_boost if item.category in taste else 1.0
                if rng.random() >= _boosted(b.click, odds):
                    continue
                web = "WEB" if channel == "EMAIL" else channel
                emit(customer, channel, "CLICK", item.item_id, rec.recommendation_id)
                emit(customer, web, "VIEW", item.item_id, rec.recommendation_id)
                if rng.random() >= _boosted(b.cart, odds):
                    continue
                emit(customer, web, "ADD_TO_CART", item.item_id, rec.recommendation_id)
                if rng.random() >= _boosted(b.buy, odds):
                    continue
                price = item.offer.price if item.offer is not None else 0.0
                if channel == "EMAIL" and rng.random() < b.email_bought_in_store:
                    emit(customer, "POS", "PURCHASE", item.item_id, "", price, order, "store-1")
                else:
                    emit(customer, web, "PURCHASE", item.item_id, rec.recommendation_id, price, order)
                tally.purchases[(channel, arm)] += 1
            if len(batch) >= 5000:
                _store(service, batch)
                batch = []
    _store(service, batch)
    service.served.flush()
    return tally


def _store(service: Seenext, batch: list[Event]) -> None:
    if batch:
        result = service.track_batch(batch)
        if result.rejected:  # the simulator's own bug; never hide it
            raise ValueError(f"simulated events rejected: {result.rejected[:3]}")


def _boosted(p: float, odds: float) -> float:
    """p with its odds multiplied (stays a probability)."""
    if p <= 0 or p >= 1:
        return p
    o = p / (1 - p) * odds
    return o / (1 + o)
