"""What customers buy again, and after how long: learned from the purchase history, not from flags.

A retailer's catalogue rarely says which items are consumables. The history does: coffee is bought
again about every month, a phone is not, and after a phone nobody buys another phone for a long
while. Three tables, learned together from every purchase:

* **the same item again, per item** (items with at least `min_buyers` buyers): whether a purchase of
  the item is followed by another purchase of it, and the gaps between them;
* **the same item again, pooled over a category** (for items with too few buyers of their own:
  fashion articles, most of a long tail);
* **the category again**: after a purchase in a category, how long until the customer buys in it
  again (any item) — how long the substitutes of a one-off purchase rest.

Purchases of one customer within a day of an occasion's first purchase are one occasion (a basket,
a size swap). After each occasion, the time to the next one is a gap; the last occasion of a
customer is *censored* (they may still come back), so shares are Kaplan-Meier estimates: a purchase
made last week counts only for the week it could be watched, and recent buyers do not make an item
look like a one-off.

Decisions (an explicit `Item.repeatable` overrides them):

* an item **comes back** after a purchase when at least `min_share` of its purchases (pooled over its
  category, and its own once it has `min_buyers`, the two weighed by `PRIOR_BUYERS`) are followed by
  another within `horizon_days`; it comes back once the `due_quantile` quantile of those gaps has
  passed (its usual interval is near). Otherwise — or when the history is too thin to say — it is a
  **one-off** and never offered again;
* after a one-off purchase, the other items of its category **rest** until `rest_share` of the
  category's purchases are followed by another purchase in it (at most `horizon_days`, and no longer
  than the history has watched its purchases: 20 days of data say nothing of a year) — when that
  is at least `min_rest_days`: a category bought again sooner is not a durable (a world where every
  phone buyer buys a second phone three days later says phones are not one-offs).

On the H&M sample (fashion), 3.6 % of (customer, article) pairs are bought on two days or more, half
of them within a week (size and colour swaps), and the customer buys in the category again after
about half of the purchases; 93 % of the purchases are of articles that come back. On the demo
retailer, a phone is never bought twice, and 10 % of phone purchases are followed by another phone
within 34 days: phones rest that long.

The table is learned from the store when first needed, again after every training (`refresh`),
and in the background when a model trained elsewhere is picked up or it is older than
`ttl_seconds`; serving keeps using the previous table meanwhile. Never per request.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from models.catalog import CatalogSnapshot
from models.domain import DAY, Item
from models.serving.learned import LearnedTable
from models.storage import Storage

log = logging.getLogger(__name__)

OCCASION = 1.0 * DAY  # purchases of one customer this close to an occasion's first purchase are one occasion
# An item's own share is shrunk towards its category's, which weighs as much as this many of its buyers:
# on the H&M sample 30 of the 67 articles with 10 buyers or more had no repeat of their own (0 of 11,
# where the category's 2.7 % expects 0.3) and would have been one-offs on that alone.
PRIOR_BUYERS = 30.0
MIN_OWN_GAPS = 3  # an item's own gaps say when it is due once it has this many; else its category's


@dataclass(frozen=True)
class RebuyPolicy:
    """The thresholds of the learned decisions (from Settings)."""

    min_buyers: int = 10  # buyers an item (else its category) needs before its behaviour is learned
    min_share: float = 0.02  # purchases followed by another of the same item: at least this share comes back
    due_quantile: float = 0.1  # it comes back once this quantile of its gaps has passed
    rest_share: float = 0.1  # substitutes rest until this share of the category's buyers bought in it again
    min_rest_days: float = 14.0  # a shorter rest: customers buy in the category again soon, not a durable
    horizon_days: float = 365.0  # the longest gap that counts; the longest rest


@dataclass(frozen=True, slots=True)
class Rhythm:
    """How purchases of one item (or in one category) are followed by the next one."""

    buyers: int  # (customer, item or category) pairs: customers who bought
    share: float  # of purchases followed by another within the horizon (Kaplan-Meier)
    due_after: float | None  # seconds: the due quantile of the gaps (None: never bought again)
    rest: float  # seconds until `rest_share` of purchases are followed by another (at most as long as
    # the history watched the purchases, and the horizon)
    gaps: int = 0  # repeat gaps observed within the horizon


@dataclass(frozen=True)
class RebuyTable:
    """The learned rhythms and the decisions made from them."""

    items: Mapping[str, Rhythm] = field(default_factory=dict)  # the same item again, items with enough buyers
    pooled: Mapping[str, Rhythm] = field(default_factory=dict)  # the same item again, per category
    categories: Mapping[str, Rhythm] = field(default_factory=dict)  # any item of the category again
    policy: RebuyPolicy = field(default_factory=RebuyPolicy)
    newest: float = 0.0  # the newest purchase learned from
    key: str = ""  # what it was built for (the model version)
    built_at: float = 0.0

    def again_after(self, item: Item | None) -> float | None:
        """Seconds after a purchase from which the item may be offered again; None: never (a one-off,
        or nothing known). The catalogue's flag overrides: True = any time, False = never."""
        if item is None or item.repeatable is False:
            return None
        if item.repeatable:
            return 0.0
        own, pooled = self.items.get(item.item_id), self.pooled.get(item.category)
        if own is not None and pooled is not None:  # its own buyers, shrunk towards its category's
            share = (own.buyers * own.share + PRIOR_BUYERS * pooled.share) / (own.buyers + PRIOR_BUYERS)
            due = own.due_after if own.gaps >= MIN_OWN_GAPS else pooled.due_after or own.due_after
        else:
            only = own or pooled
            if only is None:
                return None
            share, due = only.share, only.due_after
        if share < self.policy.min_share or due is None:
            return None
        return due

    def rest_after(self, item: Item | None) -> float:
        """Seconds the other items of the item's category rest after a purchase of it: only after a
        one-off (a durable), for as long as the category's buyers do not buy in it again."""
        if item is None or item.repeatable or not item.category:
            return 0.0
        if item.repeatable is None and self.again_after(item) is not None:
            return 0.0  # bought again itself: a consumable, its substitutes do not rest
        if item.repeatable is None and item.item_id not in self.items and item.category not in self.pooled:
            return 0.0  # nothing known about the item: nothing is suppressed on a guess
        rhythm = self.categories.get(item.category)
        if rhythm is None or rhythm.rest < self.policy.min_rest_days * DAY:
            return 0.0  # customers buy in the category again soon: not a durable, nothing rests
        return rhythm.rest

    def anchor(self, now: float, reference_time: float, latest: Iterable[float]) -> float:
        """The time a purchase's age is measured at: the newest thing known (the history learned
        from, the model's data, the customer's own latest events), never later than now — so an
        imported history behaves as on its last day, and a live one as now."""
        return min(now, max(self.newest, reference_time, *latest, 0.0))


FLAGS_ONLY = RebuyTable()  # nothing learned: an unflagged item is a one-off, nothing rests


def _add(starts: list[float], at: float) -> None:
    if not starts or at - starts[-1] >= OCCASION:
        starts.append(at)


class _Gaps:
    """The gaps after each occasion of one key (item or category): observed, or censored at the end."""

    __slots__ = ("buyers", "censored", "observed")

    def __init__(self) -> None:
        self.buyers = 0
        self.observed: list[float] = []
        self.censored: list[float] = []  # the last occasion's time: censored at the newest purchase

    def add(self, starts: list[float]) -> None:
        self.buyers += 1
        self.observed.extend(b - a for a, b in itertools.pairwise(starts))
        self.censored.append(starts[-1])

    def extend(self, other: _Gaps) -> None:
        self.buyers += other.buyers
        self.observed.extend(other.observed)
        self.censored.extend(other.censored)

    def rhythm(self, newest: float, policy: RebuyPolicy) -> Rhythm:
        horizon = policy.horizon_days * DAY
        censored = [newest - t for t in self.censored]
        curve = bought_again(self.observed, censored)
        share = next((s for t, s in reversed(curve) if t <= horizon), 0.0)
        # never reached within the data: the data says no more than "not for as long as it watched"
        watched = max(self.observed + censored, default=0.0)
        rest = next((t for t, s in curve if s >= policy.rest_share), watched)
        gaps = sorted(g for g in self.observed if g <= horizon)
        due = gaps[min(int(policy.due_quantile * len(gaps)), len(gaps) - 1)] if gaps else None
        return Rhythm(self.buyers, share, due, min(rest, horizon), len(gaps))


def bought_again(observed: Iterable[float], censored: Iterable[float]) -> list[tuple[float, float]]:
    """Kaplan-Meier: (t, share of purchases followed by another within t) at each observed gap.

    `observed` are gaps to the next purchase; `censored` the time each last purchase has been watched
    without one. At a tie a repurchase counts before a censoring (the usual convention)."""
    times = sorted([(g, 0) for g in observed] + [(c, 1) for c in censored])
    at_risk = len(times)
    surviving = 1.0
    curve: list[tuple[float, float]] = []
    for t, group in itertools.groupby(times, key=lambda x: x[0]):
        kinds = [k for _, k in group]
        again = kinds.count(0)
        if again:
            surviving *= 1.0 - again / at_risk
            curve.append((t, 1.0 - surviving))
        at_risk -= len(kinds)
    return curve


def learn(
    purchases: Iterable[tuple[str, str, str, float]],
    snapshot: CatalogSnapshot,
    policy: RebuyPolicy,
    key: str = "",
) -> RebuyTable:
    """The three rhythms from (customer_id, item_id, order_id, occurred_at) rows sorted by customer and
    time (`Storage.purchase_rows`)."""
    by_item: dict[str, _Gaps] = {}
    by_category: dict[str, _Gaps] = {}
    newest = 0.0
    for _, rows in itertools.groupby(purchases, key=lambda r: r[0]):
        items: dict[str, list[float]] = {}
        categories: dict[str, list[float]] = {}
        for _, item_id, _, at in rows:
            if not item_id:
                continue
            newest = max(newest, at)
            _add(items.setdefault(item_id, []), at)
            item = snapshot.items.get(item_id)
            if item is not None and item.category:
                _add(categories.setdefault(item.category, []), at)
        for item_id, starts in items.items():
            by_item.setdefault(item_id, _Gaps()).add(starts)
        for category, starts in categories.items():
            by_category.setdefault(category, _Gaps()).add(starts)
    pooled: dict[str, _Gaps] = {}
    for item_id, gaps in by_item.items():
        item = snapshot.items.get(item_id)
        if item is not None and item.category:
            pooled.setdefault(item.category, _Gaps()).extend(gaps)

    def rhythms(table: dict[str, _Gaps]) -> dict[str, Rhythm]:
        return {k: g.rhythm(newest, policy) for k, g in table.items() if g.buyers >= policy.min_buyers}

    return RebuyTable(
        rhythms(by_item), rhythms(pooled), rhythms(by_category), policy, newest, key, time.time()
    )


class Rebuying:
    """The learned table the recommender asks for, cached per model version and refreshed."""

    def __init__(
        self,
        storage: Storage,
        snapshot: Callable[[], CatalogSnapshot],
        policy: RebuyPolicy | None = None,
        ttl_seconds: float = 600.0,
    ) -> None:
        self.storage = storage
        self.snapshot = snapshot
        self.policy = policy or RebuyPolicy()
        self._learned = LearnedTable(self._build, "rebuying", ttl_seconds)

    def table(self, key: str = "") -> RebuyTable:
        """The learned table (models/serving/learned.py: never rebuilt on the request path)."""
        return self._learned.get(key)

    def refresh(self, key: str = "") -> RebuyTable:
        """Learns again now (after a training, so the first request on the new model sees it)."""
        return self._learned.refresh(key)

    def _build(self, key: str) -> RebuyTable:
        started = time.perf_counter()
        table = learn(self.storage.purchase_rows(), self.snapshot(), self.policy, key)
        log.info(
            "rebuying learned: %d items, %d categories rebought per item, %d categories in %.2fs",
            len(table.items),
            len(table.pooled),
            len(table.categories),
            time.perf_counter() - started,
        )
        return table
