"""Answering "what should this customer see next?" for one request.

A request is ranked once, independently of its channel (models/serving/ranking.py): the placement's plan
(models/serving/channel_rules.py) says which candidate sources fill the ranking first — complements of the basket or
of what the customer owns, items similar to the one on the page, the customer's LightFM ranking,
what is popular. The channel then only filters that ranking (stock, consent, recently mailed), so
channels never contradict each other (story 3). Items the customer bought (and that are not
repeatable), basket and context items, inactive items and the caller's filters never come back,
whatever the model says — purchases tracked a second ago included.

The model's affinity for a customer: a recognised customer the model knows is scored from their
embedding ("personalised"); a visitor with session items (or a customer newer than the model) from
those items ("similar_items"); anyone else gets what is popular ("popular").
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from models.catalog import Catalog, CatalogSnapshot
from models.domain import CHANNELS, Identifier, Offer
from models.errors import InvalidArgument, NotFound
from models.events import EventStore
from models.serving import channel_rules, foldin, ranking, reasons, repurchase
from models.serving.complements import Complements
from models.serving.embeddings import RankingModel
from models.serving.popularity import Popularity
from models.serving.ranking import Affinity, Candidate, RankingState
from models.serving.reasons import Reason
from models.serving.registry import ModelRegistry
from models.serving.served import Served, ServedLog
from models.validation import check_batch_size, check_identifier, check_k

SESSION_DAYS = 30  # how far back a customer's own events count as their session
MAX_BATCH_CUSTOMERS = 100_000


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
        complements: Complements | None = None,
        policy: channel_rules.Policy | None = None,
        tuning: foldin.Tuning | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.registry = registry
        self.popularity = popularity
        self.served = served
        self.max_k = max_k
        self.holdout = holdout
        self.complements = complements
        self.policy = policy or channel_rules.Policy()
        self.tuning = tuning or foldin.Tuning()
        # Consent, set by the service from models/privacy/rights.py: (customer_id, channel, purpose) -> allowed.
        self.has_consent: Callable[[str, str, str], bool] = lambda customer_id, channel, purpose: (
            channel_rules.has_consent(self.store.db.reader(), customer_id, channel, purpose)
        )

    def recommend(self, q: RecommendQuery) -> Recommendation:
        k = self._validate(q)
        customer_id = self.store.resolve(q.who) if q.who is not None else None
        snapshot = self.catalog.snapshot()
        model = self.registry.current
        version = model.version if model is not None else ""
        rule = channel_rules.rule_for(q.channel)
        if rule.consent and not (
            customer_id and self.has_consent(customer_id, q.channel, rule.consent)
        ):  # no recorded consent for this channel: nothing may be offered here
            return Recommendation(
                uuid.uuid4().hex, customer_id or "", customer_id is not None, [], version, "no_consent"
            )
        history = (
            self.store.purchase_history(customer_id) if customer_id is not None else []
        )  # read once per request
        purchases = dict(self.store.purchased_items(customer_id, history)) if customer_id is not None else {}
        excluded = (
            set(q.basket_item_ids)
            | set(q.item_ids)
            | channel_rules.owned_durables(purchases.items(), snapshot)
        )
        arm = "holdout" if customer_id and in_holdout(customer_id, self.holdout) else "personalised"
        # A customer who refused profiling is ranked like a visitor: from this request's context only
        # (what they bought is still never offered again, but it no longer steers the ranking).
        profiled = (
            customer_id if customer_id and self.has_consent(customer_id, q.channel, "profiling") else None
        )

        state = RankingState(
            snapshot=snapshot,
            customer_id=profiled,
            purchases=purchases if profiled else {},
            basket=q.basket_item_ids,
            context=q.item_ids,
            owned_since=time.time() - self.policy.owned_days * 86400.0,
            popular=self._popular_list(q, profiled),
            complements_key=version,
        )
        plan = channel_rules.plan_for(q.placement)
        if model is not None and arm == "personalised":
            state.model = model
            state.affinity = self._from_model(model, snapshot, profiled, q, repurchase.from_history(history))
        else:
            plan = (channel_rules.Source("popular"),)
        mailed: set[str] = set()
        if rule.hold_back_mailed and customer_id:
            now = time.time()
            mailed = channel_rules.mailed_items(
                self.store.db.reader(),
                customer_id,
                now - self.policy.email_repeat_days * 86400.0,
                served_before=now - self.policy.email_retry_minutes * 60.0,
            )
        passes = channel_rules.channel_filter(rule, q.store_id, snapshot, _caller_filter(q), mailed)
        ranked = ranking.ranking(plan, state, self.complements, channel_rules.base_filter(snapshot, excluded))
        chosen = ranking.take(ranked, k, passes)

        strategy = "+".join(dict.fromkeys(c.source for c in chosen)) or "popular"
        if arm == "holdout":
            strategy = "holdout_popular"
        rec = Recommendation(
            recommendation_id=uuid.uuid4().hex,
            customer_id=customer_id or "",
            recognised=customer_id is not None,
            items=[self.decorate(c, len(plan), snapshot, q) for c in chosen],
            model_version=version,
            strategy=strategy,
        )
        if rec.items:
            self.served.record(
                Served(
                    rec.recommendation_id,
                    rec.customer_id,
                    q.channel,
                    q.placement,
                    [r.item_id for r in rec.items],
                    strategy,
                    rec.model_version,
                    arm,
                    time.time(),
                )
            )
        return rec

    def recommend_batch(
        self,
        who: list[Identifier],
        channel: str,
        placement: str = "",
        k: int = 0,
        explain: bool = False,
    ) -> Iterator[Recommendation]:
        """One recommendation per identifier, in order, produced as the caller consumes them."""
        check_batch_size(len(who), "who", "customer", MAX_BATCH_CUSTOMERS)
        for i, ident in enumerate(who):
            check_identifier(ident, f"who[{i}]")
        first = RecommendQuery(channel=channel, placement=placement, k=k)
        self._validate(first)
        return (
            self.recommend(
                RecommendQuery(channel=channel, who=ident, placement=first.placement, k=k, explain=explain)
            )
            for ident in who
        )

    def similar_items(
        self,
        item_id: str,
        k: int = 0,
        channel: str = "",
        store_id: str = "",
        explain: bool = True,
    ) -> tuple[list[Recommended], str]:
        """Items closest to one item (product pages), filtered by a channel's stock rule when given."""
        if not item_id:
            raise InvalidArgument("item_id", "is required")
        k = check_k(k, self.max_k)
        if channel and channel not in CHANNELS:
            raise InvalidArgument(
                "channel", f"must be one of {', '.join(CHANNELS)} or unset, got {channel!r}"
            )
        snapshot = self.catalog.snapshot()
        model = self.registry.current
        known_to_model = model is not None and item_id in model.items(snapshot).index
        if item_id not in snapshot.items and not known_to_model:
            raise NotFound(f"item_id: no item {item_id!r} in the catalogue")
        caller = channel_rules.CallerFilter(in_stock_only=bool(store_id))
        passes = (
            channel_rules.channel_filter(channel_rules.rule_for(channel), store_id, snapshot, caller)
            if channel
            else (
                channel_rules.channel_filter(
                    channel_rules.ChannelRule(channel_rules.NO_STOCK), store_id, snapshot, caller
                )
            )
        )
        base = channel_rules.base_filter(snapshot, {item_id})

        def allowed(i: str) -> bool:
            return base(i) and passes(i)

        if model is not None:
            found = ranking.similar_items(model, snapshot, item_id, allowed, k)
        else:  # no model yet: the same category, by popularity
            category = snapshot.items[item_id].category
            found = [
                Candidate(i, s, "popular", 0, Reason("similar_to_item", related_item_id=item_id))
                for i, s in self.popularity.top("")
                if allowed(i) and snapshot.items.get(i) is not None and snapshot.items[i].category == category
            ][:k]
        q = RecommendQuery(channel=channel, explain=explain)
        return [self.decorate(c, 1, snapshot, q) for c in found], model.version if model is not None else ""

    # -- affinity --------------------------------------------------------------------------------

    def _from_model(
        self,
        model: RankingModel,
        snapshot: CatalogSnapshot,
        customer_id: str | None,
        q: RecommendQuery,
        bought: list[tuple[str, float, int]] | None = None,
    ) -> Affinity | None:
        """The customer's scores over every item: their own vector, else their session's items."""
        space = model.items(snapshot)
        rows = self._user_rows(model, customer_id) if customer_id else []
        if rows:  # merged since training: the mean of the vectors the model has for each merged id
            user = (
                model.user_vector(rows[0])
                if len(rows) == 1
                else np.mean([model.user_vector(r) for r in rows], axis=0)
            )
            # fresh events fold in; own repeatable purchases blend in (models/serving/foldin.py)
            scores = foldin.known_customer_scores(
                model, space, self.store, customer_id or "", user, snapshot, self.tuning, bought
            )
            return Affinity(space, scores, "personalised")
        session = list(q.item_ids) + list(q.basket_item_ids)
        if customer_id:  # known to the store but newer than the model: folded in from their first events
            folded = foldin.newcomer_scores(
                model, space, self.store, customer_id, session, snapshot, self.tuning, bought
            )
            if folded is not None:
                return Affinity(space, folded[0], "similar_items", folded[1])
        rows = [space.index[i] for i in dict.fromkeys(session) if i in space.index]
        if not rows:
            return None
        return Affinity(space, model.score_session(space, rows), "similar_items", str(space.ids[rows[0]]))

    def _user_rows(self, model: RankingModel, customer_id: str) -> list[int]:
        """The model's rows for this customer and for every id merged into them since it was trained."""
        ids = [customer_id, *self.store.aliases(customer_id)]
        return [r for r in (model.user_row(i) for i in ids) if r is not None]

    def _popular_list(self, q: RecommendQuery, customer_id: str | None) -> Iterator[tuple[str, float, str]]:
        """A known customer: popular everywhere (the same in every channel); a visitor: in their store or
        channel first."""
        sources: list[tuple[list[tuple[str, float]], str]] = []
        if customer_id is None:
            if q.store_id:
                sources.append((self.popularity.top(store_id=q.store_id), "popular_in_store"))
            sources.append((self.popularity.top(q.channel), "popular_in_channel"))
        sources.append((self.popularity.top(""), "popular"))
        seen: set[str] = set()
        for ranked, code in sources:
            for item_id, score in ranked:
                if item_id not in seen:
                    seen.add(item_id)
                    yield item_id, score, code

    # -- checks and decoration -------------------------------------------------------------------

    def _validate(self, q: RecommendQuery) -> int:
        if q.channel not in CHANNELS:
            raise InvalidArgument(
                "channel", f"must be set to one of {', '.join(CHANNELS)}, got {q.channel!r}"
            )
        if q.who is not None:
            check_identifier(q.who, "who")
        if q.max_price < 0 or not np.isfinite(q.max_price):
            raise InvalidArgument("filter.max_price", f"must be >= 0, got {q.max_price}")
        if not q.placement:
            q.placement = channel_rules.DEFAULT_PLACEMENT
        return check_k(q.k, self.max_k)

    def decorate(self, c: Candidate, tiers: int, snapshot: CatalogSnapshot, q: RecommendQuery) -> Recommended:
        """A ranked candidate as served: its score, title, category, offer in force, and sentences if asked."""
        r = Recommended(c.item_id, ranking.final_score(c, tiers), [c.reason])
        item = snapshot.items.get(r.item_id)
        if item is not None:
            r.title, r.category = item.title, item.category
            r.offer = channel_rules.live_offer(item)
        if q.explain:
            for reason in r.reasons:
                reason.text = reason.text or reasons.sentence(reason, snapshot, q.channel)
        return r


def in_holdout(customer_id: str, share: float) -> bool:
    """Stable across processes and restarts: the same customer is always in the same arm."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def _caller_filter(q: RecommendQuery) -> channel_rules.CallerFilter:
    return channel_rules.CallerFilter(
        categories=frozenset(q.categories),
        exclude_item_ids=frozenset(q.exclude_item_ids),
        max_price=q.max_price,
        in_stock_only=q.in_stock_only,
    )


__all__ = ["Reason", "RecommendQuery", "Recommendation", "Recommended", "Recommender", "in_holdout"]
