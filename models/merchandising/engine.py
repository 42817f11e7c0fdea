"""Applying the rules in force to one request: filters while the ranking fills, then the list arranged.

Per request, `RulesInForce.for_request` picks the rules of the placement and channel. Filters (include
only, exclude) join the channel's filter, so the list is filled from the ranking with them in force and
an excluded item never comes back in any channel. Then `arrange` takes the list and the next candidates
of the ranking (the pool) and: scores them by place (1 / (1 + place)), multiplies by every boost's
factor and divides by every bury's, sorts, applies diversity (models/merchandising/diversity.py),
gives reserved places to the items of a promotion and puts pinned items at their place. Items a pin or
a reservation needs that the pool lacks come from the catalogue's matching items, when the request
lets them through.

When every reordering rule reads the item alone, `arrange` works on the rules' sets in one pass per
step (`_arrange_item_only`); a rule reading `context` takes the per-candidate path
(`Request.arrange_per_candidate`), which gives the same lists for the same matches.

A condition over the item alone is evaluated once per catalogue version (and hour: `item.age_days`
moves) for every item (`ItemMatches`); one that reads `context` is evaluated per candidate, per request.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from models.catalog import CatalogSnapshot
from models.domain import DAY, Item
from models.merchandising import rules as r
from models.merchandising.cel_engine import activation
from models.merchandising.diversity import DiversityPolicy, diversify, every_cap
from models.merchandising.experiments import Experiment
from models.merchandising.placements import PlacementPlan
from models.merchandising.rules import CompiledRule

MATCHES_MAX_AGE = 3600.0  # item-only matches are recomputed at least hourly (age_days, offers in force)


def item_view(item: Item, first_seen: float | None, now: float) -> dict[str, Any]:
    """The `item` a condition reads (docs/merchandising.md lists the fields)."""
    offer = item.offer
    live = offer is not None and (
        (offer.valid_from is None or offer.valid_from <= now)
        and (offer.valid_until is None or now < offer.valid_until)
    )
    promo = bool(live and offer is not None and offer.promo_price > 0)
    list_price = (offer.price if offer is not None and offer.price else 0.0) or item.price
    online = item.stock.get("", 0)
    return {
        "id": item.item_id,
        "title": item.title,
        "category": item.category,
        "brand": item.brand,
        "price": float(offer.promo_price if promo and offer is not None else list_price),
        "list_price": float(list_price),
        "on_offer": promo,
        "offer_id": offer.offer_id if offer is not None else "",
        "stock": int(sum(item.stock.values())),
        "online_stock": int(online),
        "in_stock": (online > 0) if item.stock else True,
        "age_days": max(0.0, (now - first_seen) / DAY) if first_seen is not None else 0.0,
        "repeatable": bool(item.repeatable),
        "attributes": dict(item.attributes),
        "accessory_for": list(item.accessory_for),
    }


def context_view(
    snapshot: CatalogSnapshot,
    *,
    channel: str,
    placement: str,
    owned: Iterable[str] = (),
    basket: Sequence[str] = (),
    page: Sequence[str] = (),
    known: bool = False,
) -> dict[str, Any]:
    """The `context` a condition reads: the request, what the customer owns, the basket, the page."""

    def slim(ids: Iterable[str]) -> list[dict[str, Any]]:
        out = []
        for i in ids:
            it = snapshot.items.get(i)
            if it is not None:
                out.append(
                    {"id": i, "category": it.category, "brand": it.brand, "price": float(it.price),
                     "attributes": dict(it.attributes)}
                )  # fmt: skip
        return out

    owned_v, basket_v, page_v = slim(owned), slim(basket), slim(page[:1])
    first = page_v[0] if page_v else {"id": "", "category": "", "brand": "", "price": 0.0, "attributes": {}}
    return {
        "channel": channel,
        "placement": placement,
        "customer_known": known,
        "owned": owned_v,
        "owned_brands": sorted({o["brand"] for o in owned_v if o["brand"]}),
        "owned_categories": sorted({o["category"] for o in owned_v if o["category"]}),
        "basket": basket_v,
        "basket_brands": sorted({o["brand"] for o in basket_v if o["brand"]}),
        "basket_categories": sorted({o["category"] for o in basket_v if o["category"]}),
        "page_item": first,
    }


@dataclass(frozen=True)
class ItemMatches:
    """For every item-only rule, the ids of the catalogue's items its condition matches."""

    catalog_version: int
    rules_version: int
    computed_at: float
    by_rule: Mapping[str, frozenset[str]]
    views: Mapping[str, dict[str, Any]]
    ordered: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # by_rule's ids, sorted once
    by_source: Mapping[str, frozenset[str]] = field(default_factory=dict)  # condition text -> matches
    prepared: dict[int, tuple[Sequence[CompiledRule], _Prepared, Request | None]] = field(
        default_factory=dict, compare=False, repr=False
    )  # see `prepared` and `request_for`


@dataclass(frozen=True)
class RulesInForce:
    """The enabled rules of one version, compiled; the placement plans set through the API; the running
    experiments; the item-only matches cached per catalogue."""

    version: int
    rules: tuple[CompiledRule, ...]
    plans: Mapping[str, PlacementPlan] = field(default_factory=dict)
    experiments: Mapping[str, Experiment] = field(default_factory=dict)  # placement -> its running one
    _matches: list[ItemMatches] = field(default_factory=list, compare=False)
    _computing: list[bool] = field(default_factory=list, compare=False)  # a thread computes matches
    _by_request: dict[tuple[str, str, frozenset[str]], tuple[CompiledRule, ...]] = field(
        default_factory=dict, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False)

    def for_request(
        self, placement: str, channel: str, variant_rules: frozenset[str] = frozenset()
    ) -> tuple[CompiledRule, ...]:
        """The rules of a placement and channel; a rule of an experiment's variant only for that variant's
        customers (`variant_rules`)."""
        key = (placement, channel, variant_rules)
        found = self._by_request.get(key)
        if found is None:
            held = frozenset(r for e in self.experiments.values() for r in e.rule_ids)
            found = tuple(
                c
                for c in self.rules
                if c.spec.applies_to(placement, channel)
                and (c.rule_id not in held or c.rule_id in variant_rules)
            )
            if len(self._by_request) < 10_000:  # placements come from requests: a bounded cache
                self._by_request[key] = found
        return found

    def matches(
        self,
        snapshot: CatalogSnapshot,
        now: float | None = None,
        wait: bool = False,
        previous: RulesInForce | None = None,
    ) -> ItemMatches:
        """The item-only matches for this catalogue. Computed here the first time; after the catalogue
        changed (or MATCHES_MAX_AGE passed) a request gets the previous ones while a thread computes the
        new ones (seconds on 20k items: no request waits for them); `wait` computes them now (the
        watcher thread, tests)."""
        now = time.time() if now is None else now
        cached = self._matches[0] if self._matches else None
        if cached is not None and _fresh(cached, snapshot, now):
            return cached
        if cached is not None and not wait:
            self._compute_later(snapshot, now)
            return cached
        with self._lock:
            cached = self._matches[0] if self._matches else None
            if cached is not None and _fresh(cached, snapshot, now):
                return cached
            earlier = previous._matches[0] if previous is not None and previous._matches else None
            fresh = _compute(
                self,
                snapshot,
                now,
                earlier if earlier is not None and _fresh(earlier, snapshot, now) else None,
            )
            self._matches[:] = [fresh]
            return fresh

    def _compute_later(self, snapshot: CatalogSnapshot, now: float) -> None:
        if self._computing:
            return
        self._computing.append(True)

        def run() -> None:
            try:
                self.matches(snapshot, now, wait=True)
            finally:
                self._computing.clear()

        threading.Thread(target=run, name="merchandising-matches", daemon=True).start()


def _fresh(cached: ItemMatches, snapshot: CatalogSnapshot, now: float) -> bool:
    return cached.catalog_version == snapshot.version and now - cached.computed_at < MATCHES_MAX_AGE


def _compute(
    rules: RulesInForce, snapshot: CatalogSnapshot, now: float, earlier: ItemMatches | None = None
) -> ItemMatches:
    """Every item-only condition over the catalogue; those `earlier` evaluated (same catalogue, same
    condition) are taken from it."""
    item_only = [c for c in rules.rules if not c.condition.uses_context]
    found: dict[str, set[str]] = {}
    if earlier is not None:
        views = earlier.views
        for c in item_only:
            same = earlier.by_source.get(c.condition.source)
            if same is not None:
                found[c.rule_id] = set(same)
        item_only = [c for c in item_only if c.rule_id not in found]
    else:
        views = {i: item_view(it, snapshot.first_seen.get(i), now) for i, it in snapshot.items.items()}
    found.update({c.rule_id: set() for c in item_only})
    # A condition that names its fields is evaluated over those fields only: converting a whole item
    # into CEL values is what costs (~100 µs; two fields: a few µs), so 20k items take ~0.2 s, not 2 s.
    whole = [c for c in item_only if c.condition.item_fields is None]
    for c in item_only:
        if c.condition.item_fields is not None:
            found[c.rule_id] = _matching(c, views, c.condition.item_fields)
    if whole:
        for item_id, view in views.items():
            act = activation(item=view)
            for c in whole:
                if c.condition.test(act):
                    found[c.rule_id].add(item_id)
    by_rule = {k: frozenset(v) for k, v in found.items()}
    sources = {c.condition.source: by_rule[c.rule_id] for c in rules.rules if c.rule_id in by_rule}
    if earlier is not None:
        sources = {**earlier.by_source, **sources}
    return ItemMatches(
        snapshot.version,
        rules.version,
        earlier.computed_at if earlier is not None else now,
        by_rule,
        views,
        {k: tuple(sorted(v)) for k, v in found.items()},
        sources,
    )


def _matching(rule: CompiledRule, views: Mapping[str, dict[str, Any]], fields: frozenset[str]) -> set[str]:
    """The items whose named fields satisfy the rule's condition."""
    test = rule.condition.test
    return {
        item_id
        for item_id, view in views.items()
        if test(activation(item={f: view[f] for f in fields if f in view}))
    }


@dataclass(frozen=True)
class _Prepared:
    """What one request's rules need that depends only on the rules and the catalogue's matches: worked
    out once per (rules of a placement and channel) x item-only matches, not per request."""

    sets: Mapping[str, AbstractSet[str]]  # item-only rule -> the items it matches
    filters: list[CompiledRule]
    reorders: list[CompiledRule]
    excluded: AbstractSet[str]  # every item-only exclusion's items
    required: list[AbstractSet[str]]  # every item-only include-only rule's items
    context_filters: list[CompiledRule]
    # boost and bury: item -> its factors in rule order (None when a boost or bury reads `context`)
    factors: Mapping[str, tuple[float, ...]] | None
    boosts: list[CompiledRule]
    reserves: list[CompiledRule]
    pins: list[CompiledRule]  # by position
    # every boost, bury, reservation and pin reads the item alone: `arrange` works on their sets
    item_only: bool = False


def _prepare(rules: Sequence[CompiledRule], matches: ItemMatches) -> _Prepared:
    sets: dict[str, AbstractSet[str]] = {
        c.rule_id: matches.by_rule.get(c.rule_id, frozenset()) for c in rules if not c.condition.uses_context
    }
    filters = [c for c in rules if c.spec.action in r.FILTERS]
    reorders = [c for c in rules if c.spec.action not in r.FILTERS]
    excluded = [sets[c.rule_id] for c in filters if c.spec.action == r.EXCLUDE and c.rule_id in sets]
    boosts = [c for c in reorders if c.spec.action in (r.BOOST, r.BURY)]
    factors: dict[str, tuple[float, ...]] | None = None
    if all(c.rule_id in sets for c in boosts):
        factors = {}
        for c in boosts:
            factor = c.spec.weight if c.spec.action == r.BOOST else 1.0 / c.spec.weight
            for i in sets[c.rule_id]:
                factors[i] = (*factors.get(i, ()), factor)
    return _Prepared(
        sets=sets,
        filters=filters,
        reorders=reorders,
        excluded=(
            excluded[0] if len(excluded) == 1 else frozenset().union(*excluded) if excluded else frozenset()
        ),
        required=[sets[c.rule_id] for c in filters if c.spec.action == r.INCLUDE_ONLY and c.rule_id in sets],
        context_filters=[c for c in filters if c.rule_id not in sets],
        factors=factors,
        boosts=boosts,
        reserves=[c for c in reorders if c.spec.action == r.RESERVE],
        pins=sorted((c for c in reorders if c.spec.action == r.PIN), key=lambda c: c.spec.position),
        item_only=all(c.rule_id in sets for c in reorders),
    )


# per ItemMatches object (held in its `prepared` field): the rules tuple's id -> (the tuple, prepared);
# `RulesInForce.for_request` hands out the same tuple for a placement and channel, so its id is the key
_PREPARED_MAX = 1_000


def prepared(rules: Sequence[CompiledRule], matches: ItemMatches) -> _Prepared:
    """The item-only work of these rules over these matches, cached on the matches."""
    cache = matches.prepared
    hit = cache.get(id(rules))
    if hit is not None and hit[0] is rules:
        return hit[1]
    found = _prepare(rules, matches)
    if len(cache) >= _PREPARED_MAX:  # rules tuples come from requests' placements: bounded
        cache.clear()
    cache[id(rules)] = (rules, found, None)
    return found


def request_for(
    rules: Sequence[CompiledRule], matches: ItemMatches, context: Callable[[], Mapping[str, Any]]
) -> Request:
    """The rules of one request, ready to apply. When none of them reads `context`, a Request holds
    nothing of the request's own (no context, no memo of context conditions), so one built on the
    first request serves every later one of these rules and matches; `context` is called only when a
    rule reads it."""
    hit = matches.prepared.get(id(rules))
    if hit is not None and hit[0] is rules and hit[2] is not None:
        return hit[2]
    if any(c.condition.uses_context for c in rules):
        return Request(rules, matches, context())
    shared = Request(rules, matches, {})
    matches.prepared[id(rules)] = (rules, shared._prepared, shared)
    return shared


class Request:
    """The rules of one request, with what they need to evaluate conditions."""

    def __init__(
        self, rules: Sequence[CompiledRule], matches: ItemMatches, context: Mapping[str, Any]
    ) -> None:
        self.rules = rules
        self.matches = matches
        self.context = context
        self._ctx_act: Any = None
        self._memo: dict[tuple[str, str], bool] = {}
        # A context condition's answers by the values of the item fields it reads (see `match`).
        self._by_values: dict[tuple[str, tuple[Any, ...]], bool] = {}
        p = self._prepared = prepared(rules, matches)
        self._sets = p.sets
        self.filters = p.filters
        self.reorders = p.reorders
        # item-only filters as sets: what a candidate is checked against while the ranking fills
        self._excluded = p.excluded
        self._required = p.required
        self._context_filters = p.context_filters

    def match(self, rule: CompiledRule, item_id: str) -> bool:
        found = self._sets.get(rule.rule_id)
        if found is not None:
            return item_id in found
        key = (rule.rule_id, item_id)
        hit = self._memo.get(key)
        if hit is None:
            view = self.matches.views.get(item_id)
            if view is None:
                hit = False
            elif rule.condition.item_fields is None:
                hit = self._test(rule, view)
            else:
                # A condition that reads only some item fields (and the request's context, the same for
                # every candidate) answers alike for items with the same values of those fields: "the
                # brand of something they own" is evaluated once per brand among the candidates, not
                # once per candidate. Handing an item to the CEL runtime is what costs (~4-6 us for a
                # one-field map, against ~1 us to evaluate). A field's values have one type (item_view),
                # so equal values are the same value; a list or a map (attributes, accessory_for) is
                # not hashable, and such an item is evaluated on its own. The fields are read in the
                # frozenset's order, which is the same for every candidate (one object, never changed).
                fields = rule.condition.item_fields
                by_values = (rule.rule_id, tuple(view.get(f, _ABSENT) for f in fields))
                try:
                    hit = self._by_values.get(by_values)
                    shared = True
                except TypeError:  # an unhashable value
                    shared = False
                if hit is None:
                    hit = self._test(rule, {f: view[f] for f in fields if f in view})
                    if shared:
                        self._by_values[by_values] = hit
            self._memo[key] = hit
        return hit

    def _test(self, rule: CompiledRule, item: Mapping[str, Any]) -> bool:
        """The rule's condition for one item (only the fields it reads: turning a whole item into CEL
        values costs ~0.2 ms) and this request's context."""
        if self._ctx_act is None:
            self._ctx_act = activation(context=self._context_read())
        self._ctx_act.add_variable("item", item)
        return rule.condition.test(self._ctx_act)

    def _context_read(self) -> dict[str, Any]:
        """The context, or only the fields the request's context conditions read (turning the customer's
        owned items into CEL values is the costly part)."""
        wanted: set[str] = set()
        for c in self.rules:
            if c.condition.uses_context:
                if c.condition.context_fields is None:
                    return dict(self.context)
                wanted |= c.condition.context_fields
        return {f: self.context[f] for f in wanted if f in self.context}

    def passes(self, item_id: str) -> bool:
        """The filters: every include-only rule matches, no exclude rule does."""
        if item_id in self._excluded:
            return False
        for required in self._required:
            if item_id not in required:
                return False
        if self._context_filters:
            return all((c.spec.action == r.EXCLUDE) != self.match(c, item_id) for c in self._context_filters)
        return True

    def exclusions_only(self) -> AbstractSet[str] | None:
        """The items the rules exclude, when item-only exclusions are all their filters (then a
        caller checks this set itself, in its own predicate); None when another filter applies."""
        if self._required or self._context_filters:
            return None
        return self._excluded

    def filter_with(self, first: Callable[[str], bool]) -> Callable[[str], bool]:
        """`first` (the channel's filter) and these filters in one predicate, the cheap set membership of
        the item-only exclusions tried first (the ranking calls it for every candidate it walks)."""
        excluded = self._excluded
        if not self._required and not self._context_filters:
            return lambda item_id: item_id not in excluded and first(item_id)
        passes = self.passes
        return lambda item_id: passes(item_id) and first(item_id)

    def _matcher(self, rule: CompiledRule) -> Callable[[str], bool]:
        """`match` for one rule: set membership for an item-only one."""
        found = self._sets.get(rule.rule_id)
        if found is not None:
            return found.__contains__
        return lambda item_id: self.match(rule, item_id)

    def arrange(
        self,
        pool: Sequence[str],
        k: int,
        snapshot: CatalogSnapshot,
        diversity: DiversityPolicy,
        eligible: Callable[[str], bool],
    ) -> list[str]:
        """The k items to serve, in order, from the pool (the list and the next candidates, best first)."""
        p = self._prepared
        if p.item_only:
            return _arrange_item_only(p, self.matches.ordered, pool, k, snapshot, diversity, eligible)
        return self.arrange_per_candidate(pool, k, snapshot, diversity, eligible)

    def arrange_per_candidate(
        self,
        pool: Sequence[str],
        k: int,
        snapshot: CatalogSnapshot,
        diversity: DiversityPolicy,
        eligible: Callable[[str], bool],
    ) -> list[str]:
        """`arrange` asking each rule about each candidate: the path of rules that read `context` (and
        the reference the item-only path is tested against)."""
        order = list(pool)
        p = self._prepared
        if p.boosts:
            factors = p.factors
            if factors is not None:  # item-only boosts and buries: each item's factors, looked up once
                keyed: list[tuple[float, int, str]] = []
                moved = False
                for n, i in enumerate(order):
                    score = 1.0 / (1 + n)
                    fs = factors.get(i)
                    if fs is not None:
                        moved = True
                        for f in fs:  # in rule order, as one multiplication per rule
                            score *= f
                    keyed.append((-score, n, i))
                if moved:  # (-score, place): the stable sort by score
                    keyed.sort()
                    order = [i for _, _, i in keyed]
            else:
                scores = {i: 1.0 / (1 + n) for n, i in enumerate(order)}
                for c in p.boosts:
                    factor = c.spec.weight if c.spec.action == r.BOOST else 1.0 / c.spec.weight
                    matches = self._matcher(c)
                    for i in [i for i in order if matches(i)]:
                        scores[i] *= factor
                order.sort(key=lambda i: -scores[i])
        order = every_cap(order, k, snapshot, diversity)
        chosen = order[:k]
        rest = order[k:]
        placed: set[str] = set()
        for c in p.reserves:
            chosen, rest = self._reserve(c, chosen, rest, k, eligible, placed)
        for c in p.pins:
            chosen = self._pin(c, chosen, rest, k, eligible, placed)
        return chosen[:k]

    def _outside(self, rule: CompiledRule, taken: set[str], eligible: Callable[[str], bool]) -> Iterable[str]:
        """Catalogue items matching an item-only rule that the pool lacks, in id order (stable)."""
        if rule.condition.uses_context:
            return ()
        return (i for i in self.matches.ordered.get(rule.rule_id, ()) if i not in taken and eligible(i))

    def _reserve(
        self,
        rule: CompiledRule,
        chosen: list[str],
        rest: list[str],
        k: int,
        eligible: Callable[[str], bool],
        placed: set[str],
    ) -> tuple[list[str], list[str]]:
        want = min(k, math.ceil(rule.spec.share * k))
        match = self._matcher(rule)
        hits = [i for i in chosen if match(i)]
        have = len(hits)
        if have >= want:
            placed.update(hits)
            return chosen, rest
        taken = set(chosen) | set(rest)
        extra = [i for i in rest if match(i)]
        extra += list(_take(self._outside(rule, taken, eligible), want - have - len(extra)))
        extra = extra[: want - have]
        out = list(chosen)
        for new in extra:  # each takes the last place a non-matching, not placed item holds
            for n in range(len(out) - 1, -1, -1):
                if out[n] not in placed and not match(out[n]):
                    out[n] = new
                    break
            else:
                if len(out) < k:
                    out.append(new)
        # reserved items keep the ranking's order among the others: sorted by where the pool had them
        where = {i: n for n, i in enumerate([*chosen, *rest])}
        out.sort(key=lambda i: where.get(i, len(where)))
        placed.update(i for i in out if match(i))
        return out, [i for i in rest if i not in out]

    def _pin(
        self,
        rule: CompiledRule,
        chosen: list[str],
        rest: list[str],
        k: int,
        eligible: Callable[[str], bool],
        placed: set[str],
    ) -> list[str]:
        match = self._matcher(rule)
        best = next((i for i in [*chosen, *rest] if i not in placed and match(i)), None)
        if best is None:
            best = next(iter(self._outside(rule, set(chosen) | set(rest), eligible)), None)
        if best is None:
            return chosen
        out = [i for i in chosen if i != best]
        out.insert(min(rule.spec.position - 1, len(out)), best)
        placed.add(best)
        return out[:k] if len(out) > k else out


_ABSENT = object()  # an item field a condition names that the item's view lacks (a key of `_by_values`)


def _take(it: Iterable[str], n: int) -> list[str]:
    out: list[str] = []
    if n <= 0:
        return out
    for i in it:
        out.append(i)
        if len(out) >= n:
            break
    return out


def _arrange_item_only(
    p: _Prepared,
    ordered: Mapping[str, tuple[str, ...]],
    pool: Sequence[str],
    k: int,
    snapshot: CatalogSnapshot,
    diversity: DiversityPolicy,
    eligible: Callable[[str], bool],
) -> list[str]:
    """`Request.arrange_per_candidate` when every reordering rule reads the item alone: the same list,
    with each rule a set and each step one pass over the pool that touches only the items a rule
    concerns (the per-request cost of rules and diversity, issue 12's target)."""
    order = _boosted(pool, p.factors) if p.boosts and p.factors else list(pool)
    order = diversify(order, k, snapshot, diversity)
    chosen = order[:k]
    rest = order[k:]
    if not p.reserves and not p.pins:
        return chosen
    placed: set[str] = set()
    for c in p.reserves:
        chosen, rest = _reserved(
            p.sets[c.rule_id], ordered.get(c.rule_id, ()), c.spec.share, chosen, rest, k, eligible, placed
        )
    for c in p.pins:
        chosen = _pinned(
            p.sets[c.rule_id], ordered.get(c.rule_id, ()), c.spec.position, chosen, rest, k, eligible, placed
        )
    return chosen[:k]


_BY_PLACE = [-1.0 / (1 + n) for n in range(64)]  # an unmoved candidate's sort key by its place


def _boosted(pool: Sequence[str], factors: Mapping[str, tuple[float, ...]]) -> list[str]:
    """The pool by 1 / (1 + place) times each boost's factor and divided by each bury's, in rule order
    (the same multiplications as the per-candidate path: equal scores stay equal), stable."""
    moved = [n for n, i in enumerate(pool) if i in factors]
    if not moved:
        return list(pool)
    size = len(pool)
    if size > len(_BY_PLACE):
        _BY_PLACE.extend(-1.0 / (1 + n) for n in range(len(_BY_PLACE), size))
    keyed = list(zip(_BY_PLACE[:size], range(size), pool, strict=True))
    for n in moved:
        score = 1.0 / (1 + n)
        for f in factors[pool[n]]:
            score *= f
        keyed[n] = (-score, n, pool[n])
    keyed.sort()
    return [i for _, _, i in keyed]


def _reserved(
    matched: AbstractSet[str],
    ordered: Sequence[str],
    share: float,
    chosen: list[str],
    rest: list[str],
    k: int,
    eligible: Callable[[str], bool],
    placed: set[str],
) -> tuple[list[str], list[str]]:
    """`Request._reserve` over the rule's set."""
    want = min(k, math.ceil(share * k))
    hits = [i for i in chosen if i in matched]
    have = len(hits)
    if have >= want:
        placed.update(hits)
        return chosen, rest
    extra = _reserve_extra(matched, ordered, want - have, chosen, rest, eligible)
    out = list(chosen)
    for new in extra:  # each takes the last place a non-matching, not placed item holds
        for n in range(len(out) - 1, -1, -1):
            if out[n] not in placed and out[n] not in matched:
                out[n] = new
                break
        else:
            if len(out) < k:
                out.append(new)
    # reserved items keep the ranking's order among the others: in the pool's order, then those from
    # the catalogue in the order they were taken (the per-candidate path's stable sort by pool place)
    kept = set(out)
    ranked = [i for i in chosen if i in kept]
    from_rest = [i for i in rest if i in kept]
    ranked += from_rest
    if len(ranked) < len(out):
        taken = {*chosen, *rest}
        ranked += [i for i in out if i not in taken]
    placed.update(i for i in ranked if i in matched)
    return ranked, [i for i in rest if i not in kept] if from_rest else rest


def _reserve_extra(
    matched: AbstractSet[str],
    ordered: Sequence[str],
    need: int,
    chosen: list[str],
    rest: list[str],
    eligible: Callable[[str], bool],
) -> list[str]:
    """The `need` items a reservation brings in: the pool's rest first, then the catalogue's matching
    items the pool lacks, in id order."""
    extra: list[str] = []
    for i in rest:
        if i in matched:
            extra.append(i)
            if len(extra) >= need:
                return extra
    taken = {*chosen, *rest}
    for i in ordered:
        if i not in taken and eligible(i):
            extra.append(i)
            if len(extra) >= need:
                break
    return extra


def _pinned(
    matched: AbstractSet[str],
    ordered: Sequence[str],
    position: int,
    chosen: list[str],
    rest: list[str],
    k: int,
    eligible: Callable[[str], bool],
    placed: set[str],
) -> list[str]:
    """`Request._pin` over the rule's set: a pin usually names one item, so the set is walked rather
    than the pool when it is the smaller."""
    best = None
    if len(matched) == 1:  # `item.id == ...`: that item, in the pool or else when the request allows it
        (only,) = matched
        if only in placed:
            return chosen
        best = only if only in chosen or only in rest or eligible(only) else None
        if best is None:
            return chosen
    elif len(matched) < len(chosen) + len(rest):
        found = [i for i in matched if i not in placed]
        if found:
            if len(found) == 1:
                only = found[0]
                best = only if only in chosen or only in rest else None
            else:
                best = next((i for i in (*chosen, *rest) if i in matched and i not in placed), None)
    else:
        best = next((i for i in (*chosen, *rest) if i not in placed and i in matched), None)
    if best is None:
        taken = {*chosen, *rest}
        best = next((i for i in ordered if i not in taken and eligible(i)), None)
    if best is None:
        return chosen
    out = [i for i in chosen if i != best]
    out.insert(min(position - 1, len(out)), best)
    placed.add(best)
    return out[:k] if len(out) > k else out
