"""Answering "what should this customer see next?" for one request.

Order of strategies: a recognised customer the model knows is ranked from their embedding
("personalised"); a visitor with session items (or a customer newer than the model) is ranked
from those items ("similar_items"); anyone else gets what is popular in the channel ("popular").
Items the customer bought (and that are not repeatable), basket and context items, and items the
filters reject are never returned, whatever the model says — purchases tracked a second ago included.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from models import foldin
from models.catalog import Catalog, CatalogSnapshot
from models.domain import CHANNELS, Identifier, Offer
from models.errors import InvalidArgument
from models.popularity import Popularity
from models.ranking import RankingModel, top_items
from models.registry import ModelRegistry
from models.served import Served, ServedLog
from models.store import EventStore
from models.validation import check_identifier, check_k

SESSION_DAYS = 30  # how far back a customer's own events count as their session


@dataclass
class RecommendQuery:
    channel: str
    who: Identifier | None = None
    placement: str = "home"
    item_ids: list[str] = field(default_factory=list)
    basket_item_ids: list[str] = field(default_factory=list)
    store_id: str = ""
    k: int = 10
    categories: list[str] = field(default_factory=list)
    exclude_item_ids: list[str] = field(default_factory=list)
    max_price: float = 0.0
    in_stock_only: bool = False
    explain: bool = False


@dataclass
class Reason:
    code: str
    text: str = ""
    related_item_id: str = ""
    related_at: float | None = None


@dataclass
class Recommended:
    item_id: str
    score: float
    reasons: list[Reason]
    offer: Offer | None = None
    title: str = ""
    category: str = ""


@dataclass
class Recommendation:
    recommendation_id: str
    customer_id: str
    recognised: bool
    items: list[Recommended]
    model_version: str
    strategy: str


class Recommender:
    def __init__(
        self,
        store: EventStore,
        catalog: Catalog,
        registry: ModelRegistry,
        popularity: Popularity,
        served: ServedLog,
        max_k: int = 100,
        holdout: float = 0.0,
        tuning: foldin.Tuning | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.registry = registry
        self.popularity = popularity
        self.served = served
        self.max_k = max_k
        self.holdout = holdout
        self.tuning = tuning or foldin.Tuning()

    def recommend(self, q: RecommendQuery) -> Recommendation:
        k = self._validate(q)
        customer_id = self.store.resolve(q.who) if q.who is not None else None
        snapshot = self.catalog.snapshot()
        model = self.registry.current
        excluded = set(q.basket_item_ids) | set(q.exclude_item_ids) | set(q.item_ids)
        if customer_id is not None:
            excluded |= self._owned(customer_id, snapshot)
        allowed = self._filter(q, snapshot, excluded)
        arm = "holdout" if customer_id and in_holdout(customer_id, self.holdout) else "personalised"

        items: list[Recommended] = []
        strategy = "popular"
        if model is not None and arm == "personalised":
            items, strategy = self._from_model(model, snapshot, customer_id, q, k, allowed)
        if len(items) < k:
            taken = {r.item_id for r in items}
            items += self._popular(q, k - len(items), lambda i: i not in taken and allowed(i))
        if strategy == "popular" and arm == "holdout":
            strategy = "holdout_popular"
        rec = Recommendation(
            recommendation_id=uuid.uuid4().hex, customer_id=customer_id or "", recognised=customer_id is not None,
            items=[self._decorate(r, snapshot, q.explain) for r in items],
            model_version=model.version if model is not None else "", strategy=strategy,
        )
        self.served.record(Served(
            rec.recommendation_id, rec.customer_id, q.channel, q.placement, [r.item_id for r in rec.items],
            strategy, rec.model_version, arm, time.time(),
        ))
        return rec

    # -- strategies ------------------------------------------------------------------------------

    def _from_model(
        self, model: RankingModel, snapshot: CatalogSnapshot, customer_id: str | None,
        q: RecommendQuery, k: int, allowed: Callable[[str], bool],
    ) -> tuple[list[Recommended], str]:
        space = model.items(snapshot)
        row = model.user_row(customer_id) if customer_id else None
        if row is not None:  # fresh events fold in; own repeatable purchases blend in
            scores = foldin.known_customer_scores(model, space, self.store, customer_id, row, snapshot, self.tuning)
            return [
                Recommended(i, s, [Reason("personalised")]) for i, s in top_items(space.ids, scores, k, allowed)
            ], "personalised"
        session = list(q.item_ids)
        folded = foldin.newcomer_scores(model, space, self.store, customer_id, session, snapshot, self.tuning) \
            if customer_id else None  # known to the store but newer than the model: folded in
        if folded is not None:
            return [
                Recommended(i, s, [Reason("similar_to_viewed", related_item_id=folded[1])])
                for i, s in top_items(space.ids, folded[0], k, allowed)
            ], "similar_items"
        rows = [space.index[i] for i in dict.fromkeys(session) if i in space.index]
        if not rows:
            return [], "popular"
        scores = model.score_session(space, rows)
        anchor = space.ids[rows[0]]
        return [
            Recommended(i, s, [Reason("similar_to_viewed", related_item_id=anchor)])
            for i, s in top_items(space.ids, scores, k, allowed)
        ], "similar_items"

    def _popular(self, q: RecommendQuery, k: int, allowed: Callable[[str], bool]) -> list[Recommended]:
        out: list[Recommended] = []
        for source, code in ((q.channel, "popular_in_channel"), ("", "popular")):
            for item_id, score in self.popularity.top(source):
                if len(out) == k:
                    return out
                if allowed(item_id) and all(r.item_id != item_id for r in out):
                    out.append(Recommended(item_id, score, [Reason(code)]))
        return out

    # -- rules -----------------------------------------------------------------------------------

    def _owned(self, customer_id: str, snapshot: CatalogSnapshot) -> set[str]:
        """Bought and kept, and not a consumable: never offered again."""
        owned = set()
        for item_id, _ in self.store.purchased_items(customer_id):
            item = snapshot.items.get(item_id)
            if item is None or not item.repeatable:
                owned.add(item_id)
        return owned

    @staticmethod
    def _filter(q: RecommendQuery, snapshot: CatalogSnapshot, excluded: set[str]) -> Callable[[str], bool]:
        categories = set(q.categories)
        has_catalog = bool(snapshot.items)

        def allowed(item_id: str) -> bool:
            if item_id in excluded:
                return False
            item = snapshot.items.get(item_id)
            if item is None:
                return not has_catalog  # an item missing from a filled catalogue is not sellable
            if not item.active:
                return False
            if categories and item.category not in categories:
                return False
            if q.max_price and _effective_price(item.offer, item.price) > q.max_price:
                return False
            if q.in_stock_only and not snapshot.in_stock(item_id, q.store_id):
                return False
            return True

        return allowed

    def _validate(self, q: RecommendQuery) -> int:
        if q.channel not in CHANNELS:
            raise InvalidArgument("channel", f"must be set to one of {', '.join(CHANNELS)}, got {q.channel!r}")
        if q.who is not None:
            check_identifier(q.who, "who")
        if q.max_price < 0 or not np.isfinite(q.max_price):
            raise InvalidArgument("filter.max_price", f"must be >= 0, got {q.max_price}")
        if not q.placement:
            q.placement = "home"
        return check_k(q.k, self.max_k)

    def _decorate(self, r: Recommended, snapshot: CatalogSnapshot, explain: bool) -> Recommended:
        item = snapshot.items.get(r.item_id)
        if item is not None:
            r.title, r.category = item.title, item.category
            r.offer = item.offer if item.offer is not None else Offer(price=item.price)
        if explain:
            for reason in r.reasons:
                reason.text = reason.text or _explain(reason, snapshot)
        return r


def in_holdout(customer_id: str, share: float) -> bool:
    """Stable across processes and restarts: the same customer is always in the same arm."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def _effective_price(offer: Offer | None, price: float) -> float:
    if offer is None:
        return price
    now = time.time()
    live = (offer.valid_from is None or offer.valid_from <= now) and (offer.valid_until is None or now < offer.valid_until)
    return offer.promo_price if live and offer.promo_price > 0 else (offer.price or price)


def _explain(reason: Reason, snapshot: CatalogSnapshot) -> str:
    related = snapshot.items.get(reason.related_item_id)
    name = related.title if related is not None and related.title else reason.related_item_id
    return {
        "personalised": "Picked for you from what you bought and looked at",
        "similar_to_viewed": f"Similar to {name}, which you looked at",
        "popular_in_channel": "Popular right now",
        "popular": "Popular with our customers",
    }.get(reason.code, reason.code)
