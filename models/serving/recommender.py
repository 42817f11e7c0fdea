"""Answering "what should this customer see next?" for one request.

A request is ranked once, independently of its channel (models/serving/ranking.py): the
placement's plan (models/serving/channel_rules.py) says which candidate sources fill the ranking
first — complements of the basket or of what the customer owns, items similar to the one on the
page, the customer's LightFM ranking, what is popular. The channel then only filters that ranking
(stock, consent, recently mailed), so channels never contradict each other (story 3). Items the
customer bought and does not buy again (learned from every customer's history,
models/serving/rebuying.py: a consumable comes back when it is due, a one-off never), the other items
of a durable's category while its buyers do not buy in it again (story 1), basket and context items,
inactive items and the caller's filters never come back, whatever the model says — purchases
tracked a second ago included.

Everything about the customer is read once, as one `CustomerState` (models/serving/customer_state.py);
fold-in, repurchase, channel rules and candidates are pure functions of it, the model, the
catalogue snapshot and the learned tables (complements, rebuying), which are never built per request.

The model's affinity for a customer: a recognised customer the model knows is scored from their
embedding ("personalised"); a visitor with session items (or a customer newer than the model) from
those items ("similar_items"); anyone else gets what is popular ("popular").
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from models.catalog import Catalog, CatalogSnapshot
from models.domain import CHANNELS, DAY, Identifier, Offer
from models.errors import InvalidArgument, NotFound
from models.identity.graph import IdentityGraph
from models.merchandising import engine as merchandising
from models.merchandising.diversity import DiversityPolicy, diversify
from models.merchandising.engine import RulesInForce
from models.privacy.consent import ConsentDefaults
from models.serving import channel_rules, exploration, foldin, looked_at, ranking, reasons
from models.serving.complements import Complements
from models.serving.customer_state import ANONYMOUS, CustomerState, StateWindow
from models.serving.embeddings import RankingModel
from models.serving.exploration import Exploration
from models.serving.popularity import Popularity
from models.serving.ranking import Affinity, Candidate, RankingState
from models.serving.reasons import Reason
from models.serving.rebuying import FLAGS_ONLY, Rebuying
from models.serving.registry import ModelRegistry
from models.serving.score_cache import ScoreCache
from models.serving.served import Served, ServedLog
from models.serving.state_cache import CustomerStates
from models.storage import Storage
from models.validation import (
    MAX_ID_LENGTH,
    MAX_REF_LENGTH,
    check_batch_size,
    check_identifier,
    check_k,
    check_query_sizes,
    check_text,
)

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
    # False for a campaign list (RecommendBatch asks each customer once): the customer's product with
    # every item is not kept, and a long list does not push out the web's and the tills' kept ones
    keep_scores: bool = True


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
        storage: Storage,
        graph: IdentityGraph,
        catalog: Catalog,
        registry: ModelRegistry,
        popularity: Popularity,
        served: ServedLog,
        max_k: int = 100,
        holdout: float = 0.0,
        complements: Complements | None = None,
        policy: channel_rules.Policy | None = None,
        tuning: foldin.Tuning | None = None,
        consent_defaults: ConsentDefaults | None = None,
        rebuying: Rebuying | None = None,
        exploration: Exploration | None = None,
        states: CustomerStates | None = None,
        rules: Callable[[], RulesInForce] | None = None,
        diversity: Mapping[str, DiversityPolicy] | None = None,
        score_cache: ScoreCache | None = None,
    ) -> None:
        self.storage = storage
        # the customer states: from memory while the change feed is followed, else read per request
        self.states = states if states is not None else CustomerStates(storage)
        self.graph = graph
        self.catalog = catalog
        self.registry = registry
        self.popularity = popularity
        self.served = served
        self.max_k = max_k
        self.holdout = holdout
        self.complements = complements
        self.policy = policy or channel_rules.Policy()
        self.tuning = tuning or foldin.Tuning()
        # a customer's product over every item, kept while their vector is the same (the page's other
        # placements, the till's next scan): models/serving/score_cache.py
        self.score_cache = score_cache
        self.consent_defaults = consent_defaults or ConsentDefaults()
        self.rebuying = rebuying  # None: the catalogue's flags only (an unflagged item is a one-off)
        self.exploration = exploration  # None: no new items tried (models/serving/exploration.py)
        self.rules = rules  # the merchandising rules in force (models/merchandising/); None: none
        # per placement ("" = every other one); models/merchandising/diversity.py
        self.diversity = diversity if diversity is not None else {"": DiversityPolicy(0.0, near_duplicates=0)}

    def customer_state(
        self,
        who: Identifier | None = None,
        *,
        customer_id: str | None = None,
        recent_since: float | None = None,
        mailed_since: float | None = None,
        served_before: float = math.inf,
    ) -> CustomerState:
        """The state of the customer an identifier (or a customer id) names, read in one statement
        unless held in memory (models/serving/state_cache.py); no read at all when neither is given.
        Item events are read since `recent_since`, items
        mailed since `mailed_since` (None: not read)."""
        if who is None and customer_id is None:
            return ANONYMOUS
        window = StateWindow(recent_since, foldin.MAX_FRESH, mailed_since, served_before)
        if who is not None:
            node = self.graph.node(who, "who")
            record = self.states.record(window, node=(node.kind, node.key))
        else:
            record = self.states.record(window, customer_id=customer_id)
        return CustomerState.of(record)

    def recommend(self, q: RecommendQuery) -> Recommendation:
        return self.answer(q, self.rules() if self.rules is not None else None)

    def preview(
        self, q: RecommendQuery, without: RulesInForce, with_rule: RulesInForce
    ) -> tuple[list[Recommended], list[Recommended]]:
        """What the request gets without and with a rule (PreviewRule); nothing is logged as served."""
        return self.answer(q, without, log=False).items, self.answer(q, with_rule, log=False).items

    def answer(self, q: RecommendQuery, rules: RulesInForce | None, log: bool = True) -> Recommendation:
        """`recommend` with the given merchandising rules in force."""
        k = self._validate(q)
        snapshot = self.catalog.snapshot()
        model = self.registry.current
        version = model.version if model is not None else ""
        rule = channel_rules.rule_for(q.channel)
        now = time.time()
        state = self.customer_state(  # the one read of the request
            q.who,
            # what fold-in uses, and far enough back for the looked-at source's horizon
            recent_since=min(
                foldin.state_window_start(model),
                looked_at.window_start(foldin.reference_time(model), now, self.policy.looked_at_days),
            )
            if model is not None
            else None,
            mailed_since=self.policy.mailed_since(now) if rule.hold_back_mailed else None,
            served_before=self.policy.served_before(now),
        )
        customer_id = state.customer_id
        if not channel_rules.consents(rule, state, q.channel, self.consent_defaults):
            # no consent for this channel: nothing may be offered here
            return Recommendation(
                uuid.uuid4().hex, customer_id or "", customer_id is not None, [], version, "no_consent"
            )
        purchases = state.kept()
        # what customers buy again, and when (learned; the catalogue's flags override): a one-off and
        # the substitutes resting after it never come back, a consumable once it is due (story 1)
        rebuy = self.rebuying.table(version) if self.rebuying is not None else FLAGS_ONLY
        latest = [t.last for t in state.purchases.values()] + [e.at for e in state.recent[:1]]
        owned = channel_rules.owned(
            state,
            snapshot,
            rebuy,
            rebuy.anchor(now, foldin.reference_time(model) if model is not None else 0.0, latest),
        )
        excluded = set(q.basket_item_ids) | set(q.item_ids) | owned.excluded
        arm = "holdout" if customer_id and in_holdout(customer_id, self.holdout) else "personalised"
        # A customer who refused profiling is ranked like a visitor: from this request's context only
        # (what they bought is still never offered again, but it no longer steers the ranking).
        profiled = channel_rules.profiling_allowed(state, q.channel, self.consent_defaults)
        # the placement's plan: set through MerchandisingService, else the one in code; an experiment's
        # variant may replace its sources and bring rules of its own (models/merchandising/)
        placement = rules.plans.get(q.placement) if rules is not None else None
        plan = placement.sources if placement is not None else channel_rules.plan_for(q.placement)
        variant_rules: frozenset[str] = frozenset()
        experiment = rules.experiments.get(q.placement) if rules is not None else None
        if experiment is not None and customer_id and arm == "personalised":
            variant = experiment.assign(customer_id)
            arm = experiment.arm(variant)
            if variant is not None:
                plan = variant.sources or plan
                variant_rules = frozenset(variant.rule_ids)
        explore_share = placement.exploration_share if placement is not None else None

        ranking_state = RankingState(
            snapshot=snapshot,
            customer_id=customer_id if profiled else None,
            purchases=purchases if profiled else {},
            basket=q.basket_item_ids,
            context=q.item_ids,
            owned_since=now - self.policy.owned_days * DAY,
            popular=self._popular_list(q, customer_id if profiled else None),
            complements_key=version,
            looked_at=self._looked_at(state, model, snapshot, now) if profiled else (),
            # new items, in at most exploration.slots(k) of the last places
            new_items=self.exploration.new_items(snapshot, model, now) if self.exploration else (),
            explore_slots=(
                (self.exploration.slots(k) if explore_share is None else exploration.slots(k, explore_share))
                if self.exploration
                else 0
            ),
            met=frozenset(e.item_id for e in state.recent),  # not new to them: never tried
        )
        if model is not None and arm != "holdout":
            ranking_state.model = model
            ranking_state.affinity = self._from_model(
                model, snapshot, state if profiled else ANONYMOUS, q, owned.due
            )
        else:
            plan = (channel_rules.Source("popular"),)
        mailed = channel_rules.held_back(rule, state)
        merch = (
            self._rules_of(q, rules, snapshot, state, purchases, variant_rules) if rules is not None else None
        )
        # the rules' exclusions of items, when those are all their filters, go into the channel's filter
        # as one more set (the ranking asks it for every candidate); any other rule filter wraps it
        ruled_out = merch.exclusions_only() if merch is not None else frozenset()
        passes = channel_rules.channel_filter(
            rule, q.store_id, snapshot, _caller_filter(q), mailed, ruled_out or frozenset()
        )
        if ruled_out is None and merch is not None:
            passes = merch.filter_with(passes)  # one predicate, exclusions first (models/merchandising)
        allowed = channel_rules.base_filter(
            snapshot, excluded, owned.resting.keys(), [*q.basket_item_ids, *q.item_ids]
        )

        ranked = ranking.ranking(plan, ranking_state, self.complements, allowed, passes)
        new, slots = ranking.exploring(plan, ranking_state, allowed)
        chosen = ranking.take(ranked, k, passes, new, slots, checked=True)  # `ranked` passed `passes`
        diversity = (
            placement.diversity
            if placement is not None and placement.diversity is not None
            else self.diversity.get(q.placement) or self.diversity.get("") or DiversityPolicy(0.0, "", 0)
        )
        if (merch is not None and merch.reorders) or (diversity.active and len(chosen) > 1):
            chosen = _arranged(chosen, ranked, k, passes, allowed, merch, diversity, snapshot)

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
        # scores stay non-increasing down the list when rules or diversity moved items
        for r, score in zip(rec.items, sorted((r.score for r in rec.items), reverse=True), strict=True):
            r.score = score
        if rec.items and log:
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
                RecommendQuery(
                    channel=channel,
                    who=ident,
                    placement=first.placement,
                    k=k,
                    explain=explain,
                    keep_scores=False,
                )
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
        check_text(item_id, "item_id", MAX_ID_LENGTH)  # before NOT_FOUND quotes it
        check_text(store_id, "store_id", MAX_REF_LENGTH)
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
        # the merchandising filters of product pages that read the item alone (no request context here)
        in_force = self.rules() if self.rules is not None else None
        if in_force is not None:
            filters = [
                c
                for c in in_force.for_request("product", channel)
                if c.spec.action in ("include_only", "exclude") and not c.condition.uses_context
            ]
            if filters:
                passes = _both(passes, merchandising.Request(filters, in_force.matches(snapshot), {}).passes)

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
        state: CustomerState,
        q: RecommendQuery,
        due: Mapping[str, bool],
    ) -> Affinity | None:
        """The customer's scores over every item: their own vector, else their session's items."""
        space = model.items(snapshot)
        cache = self.score_cache if q.keep_scores else None
        rows = _user_rows(model, state)
        if rows:  # merged since training: the mean of the vectors the model has for each merged id
            user = (
                model.user_vector(rows[0])
                if len(rows) == 1
                else np.mean([model.user_vector(r) for r in rows], axis=0)
            )
            # fresh events fold in; own purchases due again blend in (models/serving/foldin.py)
            scores = foldin.known_customer_scores(model, space, state, user, due, self.tuning, cache)
            return Affinity(space, scores, "personalised")
        session = list(q.item_ids) + list(q.basket_item_ids)
        # the item "Similar to the X you looked at" names: never one bought or in the basket
        seen = looked_at.anchor(state.recent, q.item_ids, {*q.basket_item_ids, *state.purchases}, space.index)
        if state.known:  # known to the store but newer than the model: folded in from their first events
            folded = foldin.newcomer_scores(model, space, state, session, due, self.tuning, cache)
            if folded is not None:
                return Affinity(space, folded[0], "similar_items", seen)
        rows = [space.index[i] for i in dict.fromkeys(session) if i in space.index]
        if not rows:
            return None
        return Affinity(space, model.score_session(space, rows), "similar_items", seen)

    def _rules_of(
        self,
        q: RecommendQuery,
        rules: RulesInForce,
        snapshot: CatalogSnapshot,
        state: CustomerState,
        purchases: Mapping[str, float],
        variant_rules: frozenset[str] = frozenset(),
    ) -> merchandising.Request | None:
        """The rules of this placement and channel, ready to evaluate; None when none applies."""
        applicable = rules.for_request(q.placement, q.channel, variant_rules)
        if not applicable:
            return None
        return merchandising.request_for(
            applicable,
            rules.matches(snapshot),
            lambda: merchandising.context_view(
                snapshot,
                channel=q.channel,
                placement=q.placement,
                owned=purchases.keys(),
                basket=q.basket_item_ids,
                page=q.item_ids,
                known=state.known,
            ),
        )

    def _looked_at(
        self, state: CustomerState, model: RankingModel | None, snapshot: CatalogSnapshot, now: float
    ) -> list[looked_at.LookedAt]:
        """What the customer looked at and did not buy, aged from the newest event the request knows."""
        ref = foldin.reference_time(model) if model is not None else None
        days, half_life = self.policy.looked_at_days, self.policy.looked_at_half_life_days

        def category_of(item_id: str) -> str:
            item = snapshot.items.get(item_id)
            return item.category if item is not None else ""

        return looked_at.ranked(state, looked_at.reference(state, ref, now), days, half_life, category_of)

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
        check_query_sizes(q)  # docs/limits.md
        if q.max_price < 0 or not np.isfinite(q.max_price):
            raise InvalidArgument("filter.max_price", f"must be >= 0, got {q.max_price}")
        if not q.placement:
            q.placement = channel_rules.DEFAULT_PLACEMENT
        return check_k(q.k, self.max_k)

    def decorate(self, c: Candidate, tiers: int, snapshot: CatalogSnapshot, q: RecommendQuery) -> Recommended:
        """A ranked candidate as served: its score, title, category, offer in force, sentences if asked."""
        r = Recommended(c.item_id, ranking.final_score(c, tiers), [c.reason])
        item = snapshot.items.get(r.item_id)
        if item is not None:
            r.title, r.category = item.title, item.category
            r.offer = channel_rules.live_offer(item)
        if q.explain:  # a copy with its sentence: sources share one Reason among their candidates
            r.reasons = [
                x if x.text else dataclasses.replace(x, text=reasons.sentence(x, snapshot, q.channel))
                for x in r.reasons
            ]
        return r


def _user_rows(model: RankingModel, state: CustomerState) -> list[int]:
    """The model's rows for this customer and for every id merged into them since it was trained."""
    if state.customer_id is None:
        return []
    ids = [state.customer_id, *state.aliases]
    return [r for r in (model.user_row(i) for i in ids) if r is not None]


def in_holdout(customer_id: str, share: float) -> bool:
    """Stable across processes and restarts: the same customer is always in the same arm."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def _both(first: Callable[[str], bool], second: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda item_id: first(item_id) and second(item_id)


# candidates beyond k that rules and diversity may bring up: k more, at least 5 (each costs ~3 µs)
POOL_EXTRA = 5


def _arranged(
    chosen: list[Candidate],
    ranked: Iterator[Candidate],
    k: int,
    passes: Callable[[str], bool],
    allowed: Callable[[str], bool],
    merch: merchandising.Request | None,
    diversity: DiversityPolicy,
    snapshot: CatalogSnapshot,
) -> list[Candidate]:
    """The list rearranged by the rules and diversity, from the list and the ranking's next candidates
    (`ranked` goes on where the list stopped)."""
    if merch is None or not merch.reorders:  # diversity alone: the list is often fine as it is
        ids = [c.item_id for c in chosen]
        if diversify(ids, k, snapshot, diversity) == ids:
            return chosen
    by_id = {c.item_id: c for c in chosen}  # the pool, in order (a dict keeps it)
    want = len(by_id) + max(k, POOL_EXTRA)
    for cand in ranked:  # `ranked` yields only what `passes` lets through: not asked twice
        if cand.item_id not in by_id:
            by_id[cand.item_id] = cand
            if len(by_id) >= want:
                break
    ids = list(by_id)
    if merch is not None:
        order = merch.arrange(ids, k, snapshot, diversity, lambda i: allowed(i) and passes(i))
    else:
        order = diversify(ids, k, snapshot, diversity)[:k]
    return [by_id.get(i) or Candidate(i, None, "merchandising", 0, Reason("promoted")) for i in order]


def _caller_filter(q: RecommendQuery) -> channel_rules.CallerFilter:
    return channel_rules.CallerFilter(
        categories=frozenset(q.categories),
        exclude_item_ids=frozenset(q.exclude_item_ids),
        max_price=q.max_price,
        in_stock_only=q.in_stock_only,
    )


__all__ = ["Reason", "RecommendQuery", "Recommendation", "Recommended", "Recommender", "in_holdout"]
