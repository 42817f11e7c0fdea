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
from models.serving.recommender import Recommended, RecommendQuery


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
    recommendations: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, arm) -> served
    purchases: Counter[tuple[str, str]] = field(
        default_factory=Counter
    )  # (channel, arm) -> purchases of recommended items
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
    sim = _Simulation(service, random.Random(seed), behaviour or Behaviour())
    snapshot = service.catalog_snapshot()
    for n, customer in enumerate(customers):
        resolved = service.resolve(Identifier("CUSTOMER_ID", customer)) or customer
        taste = {
            snapshot.items[i].category for i, _ in service.purchased_items(resolved) if i in snapshot.items
        }
        for visit in range(visits_per_customer):
            sim.visit(customer, channels, k, taste, order=f"sim-{seed}-{n}-{visit}")
    _store(service, sim.batch)
    service.flush_served()
    return sim.tally


@dataclass
class _Simulation:
    """One simulation's state: its random draws, the events not yet stored and the tally."""

    service: Seenext
    rng: random.Random
    b: Behaviour
    tally: Tally = field(default_factory=Tally)
    batch: list[Event] = field(default_factory=list)
    clock: float = field(default_factory=time.time)

    def visit(self, customer: str, channels: Sequence[str], k: int, taste: set[str], order: str) -> None:
        """One visit: how it started, the recommendation served and the shopper's reaction to each item."""
        channel = self.rng.choice(list(channels))
        self._journey(customer, channel)
        rec = self.service.recommend(
            RecommendQuery(
                channel=channel,
                who=Identifier("CUSTOMER_ID", customer),
                k=k,
                placement="newsletter" if channel == "EMAIL" else "home",
            )
        )
        if not rec.items:  # nothing may be offered here (e.g. no e-mail consent): nothing served
            return
        arm = "holdout" if rec.strategy.startswith("holdout") else "personalised"
        self.tally.recommendations[(channel, arm)] += 1
        for item in rec.items:
            if self._react(customer, channel, item, rec.recommendation_id, taste, order):
                self.tally.purchases[(channel, arm)] += 1
        if len(self.batch) >= 5000:
            _store(self.service, self.batch)
            self.batch = []

    def _journey(self, customer: str, channel: str) -> None:
        """Some web visits start from an ad click or a newsletter click."""
        journey = self.rng.random()
        if channel == "WEB" and journey < self.b.ad_journeys:
            self._emit(customer, "ADS", "AD_CLICK")
        elif channel == "WEB" and journey < self.b.ad_journeys + self.b.email_journeys:
            self._emit(customer, "EMAIL", "EMAIL_CLICK")
            self._emit(customer, "WEB", "VISIT")

    def _react(
        self, customer: str, channel: str, item: Recommended, rec_id: str, taste: set[str], order: str
    ) -> bool:
        """Impression, then maybe click, cart and purchase of one shown item; True if it was bought."""
        self._emit(customer, channel, "IMPRESSION", item.item_id, rec_id)
        odds = self.b.taste_boost if item.category in taste else 1.0
        if self.rng.random() >= _boosted(self.b.click, odds):
            return False
        web = "WEB" if channel == "EMAIL" else channel
        self._emit(customer, channel, "CLICK", item.item_id, rec_id)
        self._emit(customer, web, "VIEW", item.item_id, rec_id)
        if self.rng.random() >= _boosted(self.b.cart, odds):
            return False
        self._emit(customer, web, "ADD_TO_CART", item.item_id, rec_id)
        if self.rng.random() >= _boosted(self.b.buy, odds):
            return False
        price = item.offer.price if item.offer is not None else 0.0
        if channel == "EMAIL" and self.rng.random() < self.b.email_bought_in_store:
            self._emit(customer, "POS", "PURCHASE", item.item_id, "", price, order, "store-1")
        else:
            self._emit(customer, web, "PURCHASE", item.item_id, rec_id, price, order)
        return True

    def _emit(
        self,
        customer: str,
        channel: str,
        etype: str,
        item: str = "",
        rec_id: str = "",
        price: float = 0.0,
        order: str = "",
        store: str = "",
    ) -> None:
        self.clock = max(self.clock + 1e-6, time.time())  # strictly increasing: journey order survives
        self.batch.append(
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
                occurred_at=self.clock,
            )
        )
        self.tally.events += 1


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
