"""Story 4: who is due for a reminder in a date window, and what to offer them.

Three kinds of being due, merged per customer:

* **seasonal**: the category is seasonal at these dates — in earlier years (up to `max_years` back,
  the window moved back by whole years and widened by `slack_days`) it sold at least twice the share
  the calendar would give it (flowers around 14 February; not coffee, bought all year) — and the
  customer bought in it around the same dates in an earlier year, has not
  bought in it again since the window's season began, and bought in it on at most two days between
  last year's season and this one (Valentine's roses and Mothering Sunday tulips are seasons; coffee
  every month is a routine, left to replenishment). Only categories of items customers buy again
  count — flagged, or learned (models/serving/rebuying.py): flowers recur; a phone bought last
  February does not make its buyer due for another.
* **personal occasions** (`anniversary`): the customer's own dates, not the population's — they
  bought in a category around these dates in two or more earlier years (flowers on 9 December 2024
  and 10 December 2025), and the category is one customers buy for occasions. Which categories those
  are is learned from the history: among customers who bought in a category in two or more years, the
  share whose purchases in different years fall within the slack of the same calendar day must reach
  MIN_OCCASION_SHARE (flowers, gifts; not shirts bought any time of the year). A one-off purchase is
  no occasion, nor are two Decembers of an everyday category.
* **replenishment** (`due_again`): an item customers buy again (flagged or learned) whose interval has
  elapsed by the window's end —
  the customer's own median gap between purchases of it (two gaps or more), or else the median gap of
  every customer who bought it repeatedly (three gaps or more); either only when the gaps are regular
  (spread within half their mean). A customer more than one interval overdue at the window's start
  has lapsed and is not reminded.

Customers come out in customer_id order, one `Reminder` each, produced as the caller reads them: the
history is read through cursors sorted by customer, never loaded whole.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from models.catalog import Catalog, CatalogSnapshot
from models.domain import CHANNELS, DAY
from models.errors import InvalidArgument
from models.serving import channel_rules, reasons
from models.serving.ranking import Candidate
from models.serving.reasons import Reason
from models.serving.rebuying import FLAGS_ONLY, RebuyTable
from models.serving.recommender import Recommended, Recommender, RecommendQuery
from models.serving.registry import ModelRegistry
from models.storage import Storage
from models.validation import check_k, check_time

MAX_WINDOW_DAYS = 92
MIN_POPULATION_GAPS = 3  # gaps needed before an item's typical interval is trusted
MAX_BETWEEN_SEASONS = 2  # purchase days in a category between two seasons before it counts as a routine
MIN_SEASON_LIFT = 2.0  # how much more of a category's sales its seasons must hold than the calendar gives
MIN_SEASON_PURCHASES = 3  # purchases in earlier seasons before a category is called seasonal at all
MAX_INTERVAL_CV = 0.5  # replenishment: gaps between purchases must be this regular (stdev / mean)
MIN_OCCASION_SHARE = 0.5  # occasions: share of multi-year buyers of a category who buy on the same dates
MIN_OCCASION_CUSTOMERS = 1  # ... and how many such customers the category needs at least


@dataclass
class Reminder:
    customer_id: str
    items: list[Recommended]
    reason: str  # the main reason, as a sentence for campaign copy


@dataclass(frozen=True)
class Due:
    customer_id: str
    kind: str  # "due_again", "seasonal" or "anniversary"
    item_id: str  # due_again: the item; seasonal: the item bought back then
    at: float  # due_again: the last purchase; seasonal: the purchase an earlier year
    category: str = ""
    interval_days: float = 0.0
    due_at: float = 0.0


class DueReminders:
    def __init__(
        self,
        storage: Storage,
        catalog: Catalog,
        registry: ModelRegistry,
        recommender: Recommender,
        slack_days: float = 7.0,
        max_years: int = 3,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.registry = registry
        self.recommender = recommender
        self.slack = slack_days * DAY
        self.max_years = max_years

    def due(
        self, window_start: float | None, window_end: float | None, k: int = 0, channel: str = ""
    ) -> Iterator[Reminder]:
        """Reminders for the window, customer by customer; a channel applies its rules (consent, stock,
        recently mailed) to customers and items."""
        start, end = _check_window(window_start, window_end)
        k = check_k(k, 100, default=3)
        if channel and channel not in CHANNELS:
            raise InvalidArgument(
                "channel", f"must be one of {', '.join(CHANNELS)} or unset, got {channel!r}"
            )
        return self._run(start, end, k, channel)

    def _run(self, start: float, end: float, k: int, channel: str) -> Iterator[Reminder]:
        snapshot = self.catalog.snapshot()
        streams = heapq.merge(
            self._replenishment(start, end, snapshot),
            self._seasonal(start, end, snapshot),
            self._anniversaries(start, end, snapshot),
            key=lambda d: d.customer_id,
        )
        for customer_id, dues in itertools.groupby(streams, key=lambda d: d.customer_id):
            reminder = self._reminder(customer_id, list(dues), k, channel, start, snapshot)
            if reminder is not None:
                yield reminder

    # -- who is due -------------------------------------------------------------------------------

    def _seasons(self, start: float, end: float) -> list[tuple[float, float]]:
        return seasons(start, end, self.slack, self.max_years)

    def seasonal_categories(self, start: float, end: float, snapshot: CatalogSnapshot) -> set[str]:
        return seasonal_categories(
            self.storage, start, end, snapshot, self.slack, self.max_years, self._rebuy()
        )

    def _rebuy(self) -> RebuyTable:
        """What customers buy again, as the recommender learned it (the flags alone without it)."""
        learned = self.recommender.rebuying
        model = self.registry.current
        return (
            learned.table(model.version if model is not None else "") if learned is not None else FLAGS_ONLY
        )

    def _seasonal(self, start: float, end: float, snapshot: CatalogSnapshot) -> Iterator[Due]:
        seasonal = self.seasonal_categories(start, end, snapshot)
        if not seasonal:
            return
        ranges = self._seasons(start, end)
        rows = self.storage.purchases_in(ranges)
        for customer_id, group in itertools.groupby(rows, key=lambda r: r[0]):
            latest: dict[str, tuple[str, float]] = {}  # category -> (item, time) of the latest year
            for _, item_id, at in group:
                item = snapshot.items.get(item_id)
                if item is not None and item.category in seasonal and item.category not in latest:
                    latest[item.category] = (item_id, at)
            if not latest:
                continue
            in_season, between = self._since_last_season(customer_id, start, end, snapshot)
            for category, (item_id, at) in sorted(latest.items(), key=lambda kv: -kv[1][1]):
                if category not in in_season and len(between.get(category, ())) <= MAX_BETWEEN_SEASONS:
                    yield Due(customer_id, "seasonal", item_id, at, category=category)

    def _anniversaries(self, start: float, end: float, snapshot: CatalogSnapshot) -> Iterator[Due]:
        """Customers whose own purchases in a category recur around these dates (see the module doc)."""
        ranges = self._seasons(start, end)
        occasions = occasion_categories(self.storage.category_purchases(start - self.slack), self.slack)
        rows = self.storage.purchases_in(ranges)
        for customer_id, group in itertools.groupby(rows, key=lambda r: r[0]):
            years: dict[str, set[int]] = {}  # category -> earlier years (1 = last year) bought around now
            latest: dict[str, tuple[str, float]] = {}
            for _, item_id, at in group:
                item = snapshot.items.get(item_id)
                if item is None or not item.category:
                    continue
                back = next((y + 1 for y, (a, b) in enumerate(ranges) if a <= at <= b), 0)
                years.setdefault(item.category, set()).add(back)
                latest.setdefault(item.category, (item_id, at))  # rows come newest first
            due = {c for c, ys in years.items() if len(ys) >= 2 and c in occasions}
            if not due:
                continue
            in_season, _ = self._since_last_season(customer_id, start, end, snapshot)
            for category in sorted(due - in_season, key=lambda c: -latest[c][1]):
                item_id, at = latest[category]
                yield Due(customer_id, "anniversary", item_id, at, category=category)

    def _since_last_season(
        self, customer_id: str, start: float, end: float, snapshot: CatalogSnapshot
    ) -> tuple[set[str], dict[str, set[int]]]:
        """Categories bought this season already, and the days each was bought on between last year's
        season and this one (a category bought every month is a routine, not a season)."""
        rows = self.storage.customer_purchases_between(customer_id, years_before(end, 1) + self.slack, end)
        in_season: set[str] = set()
        between: dict[str, set[int]] = {}
        for item_id, at in rows:
            item = snapshot.items.get(item_id)
            if item is None:
                continue
            if at >= start - self.slack:
                in_season.add(item.category)
            else:
                between.setdefault(item.category, set()).add(int(at // DAY))
        return in_season, between

    def _replenishment(self, start: float, end: float, snapshot: CatalogSnapshot) -> Iterator[Due]:
        rebuy = self._rebuy()
        repeatable = {i for i, it in snapshot.items.items() if rebuy.again_after(it) is not None}
        if not repeatable:
            return
        typical = self._typical_intervals(end, repeatable)
        rows = (r for r in self.storage.item_purchases(end) if r[1] in repeatable)
        for customer_id, group in itertools.groupby(rows, key=lambda r: r[0]):
            found: list[Due] = []
            for item_id, purchases in itertools.groupby(group, key=lambda r: r[1]):
                times = [t for _, _, t in purchases]
                own = _gaps(times)
                interval = regular_interval(own, 2) or typical.get(item_id, 0.0)
                if interval < DAY:
                    continue
                last = times[-1]
                due_at = last + interval
                if last < start and start - interval <= due_at <= end:
                    found.append(
                        Due(
                            customer_id,
                            "due_again",
                            item_id,
                            last,
                            interval_days=interval / DAY,
                            due_at=due_at,
                        )
                    )
            yield from sorted(found, key=lambda d: (d.due_at, d.item_id))

    def _typical_intervals(self, until: float, repeatable: set[str]) -> dict[str, float]:
        """Each repeatable item's median gap between purchases by the same customer."""
        rows = self.storage.item_purchase_gaps(until)
        gaps: dict[str, list[float]] = {}
        for item_id, gap in rows:
            if gap >= DAY and item_id in repeatable:
                gaps.setdefault(item_id, []).append(gap)
        typical = {i: regular_interval(g, MIN_POPULATION_GAPS) for i, g in gaps.items()}
        return {i: t for i, t in typical.items() if t}

    # -- what to offer ----------------------------------------------------------------------------

    def _reminder(
        self,
        customer_id: str,
        dues: list[Due],
        k: int,
        channel: str,
        start: float,
        snapshot: CatalogSnapshot,
    ) -> Reminder | None:
        # The customer's state, read once, as Recommend reads it: the same consent decision, the same
        # exclusions, the same mail history (mailed since the window's start, not since today).
        policy = self.recommender.policy
        defaults = self.recommender.consent_defaults
        rule = channel_rules.rule_for(channel) if channel else None
        state = self.recommender.customer_state(
            customer_id=customer_id,
            mailed_since=start - policy.email_repeat_days * DAY if rule and rule.hold_back_mailed else None,
            served_before=policy.served_before(time.time()),
        )
        passes: Callable[[str], bool] = _anything
        if rule is not None:
            if not channel_rules.consents(rule, state, channel, defaults):
                return None
            held_back = channel_rules.held_back(rule, state)
            passes = channel_rules.channel_filter(rule, "", snapshot, channel_rules.CallerFilter(), held_back)
        # A reminder is for what the customer buys again by definition (due again, their season, their
        # occasion), so a learned one-off does not hold it back; the catalogue's explicit "never again" does.
        never_again = {
            i for i in state.kept() if (it := snapshot.items.get(i)) is None or it.repeatable is False
        }
        base = channel_rules.base_filter(snapshot, never_again)

        def allowed(item_id: str) -> bool:
            return base(item_id) and passes(item_id)

        chosen: list[Candidate] = []
        taken: set[str] = set()
        for due in (d for d in dues if d.kind == "due_again"):
            if due.item_id not in taken and allowed(due.item_id):
                taken.add(due.item_id)
                chosen.append(
                    Candidate(
                        due.item_id,
                        None,
                        "due_again",
                        0,
                        Reason(
                            "due_again",
                            related_item_id=due.item_id,
                            related_at=due.at,
                            detail=f"{due.interval_days:.0f}",
                        ),
                    )
                )
        # A customer who refused profiling is not ranked by their history here either (as in Recommend).
        profiled = channel_rules.profiling_allowed(state, channel, defaults)
        scores = self._affinity(customer_id if profiled else None, snapshot)
        for due in (d for d in dues if d.kind in ("seasonal", "anniversary")):
            in_category = [
                i
                for i, it in snapshot.items.items()
                if it.category == due.category and i not in taken and allowed(i)
            ]
            in_category.sort(key=lambda i: (i != due.item_id, -scores(i), i))  # what they bought then, first
            for item_id in in_category:
                taken.add(item_id)
                chosen.append(
                    Candidate(
                        item_id,
                        scores(item_id),
                        "seasonal",
                        1,
                        Reason(
                            "seasonal", related_item_id=due.item_id, related_at=due.at, detail=due.category
                        ),
                    )
                )
                if len(chosen) >= k:
                    break
        chosen = chosen[:k]
        if not chosen:
            return None
        for c in chosen:  # sentences speak from the window's point of view ("last year")
            c.reason.text = reasons.sentence(c.reason, snapshot, channel, now=start)
        query = RecommendQuery(channel=channel or "EMAIL", explain=True)
        items = [self.recommender.decorate(c, 2, snapshot, query) for c in chosen]
        return Reminder(customer_id, items, items[0].reasons[0].text)

    def _affinity(self, customer_id: str | None, snapshot: CatalogSnapshot) -> Callable[[str], float]:
        """The customer's model score for an item; popularity rank when the model does not know them
        (or they refused profiling: None)."""
        model = self.registry.current
        if model is not None and customer_id is not None:
            row = model.user_row(customer_id)
            if row is not None:
                space = model.items(snapshot)
                scores = model.score_user(space, row)
                return lambda i: float(scores[space.index[i]]) if i in space.index else -np.inf
        rank = {i: -n for n, (i, _) in enumerate(self.recommender.popularity.top(""))}
        return lambda i: float(rank.get(i, -1e9))


def seasons(start: float, end: float, slack: float, max_years: int) -> list[tuple[float, float]]:
    """The window moved back by 1..max_years years, widened by the slack (seconds) on both sides."""
    return [(years_before(start, y) - slack, years_before(end, y) + slack) for y in range(1, max_years + 1)]


def seasonal_categories(
    storage: Storage,
    start: float,
    end: float,
    snapshot: CatalogSnapshot,
    slack: float = 7 * DAY,
    max_years: int = 3,
    rebuy: RebuyTable = FLAGS_ONLY,
) -> set[str]:
    """Categories of items customers buy again (flagged, or learned: `rebuy`) whose sales peak around
    these dates in earlier years: their share of purchases in those seasons is at least MIN_SEASON_LIFT
    times what the calendar gives."""
    candidates = {
        it.category for it in snapshot.items.values() if it.category and rebuy.again_after(it) is not None
    }
    ranges = seasons(start, end, slack, max_years)
    until = start - slack
    first = storage.first_purchase_since(ranges[-1][0])
    if not candidates or first is None or first >= until:
        return set()
    covered = sum(max(0.0, min(b, until) - max(a, first)) for a, b in ranges)
    expected = covered / (until - first)  # the seasons' share of the time the data covers
    if expected <= 0:
        return set()
    rows = storage.category_seasonality(ranges, first, until)
    return {
        category
        for category, seasonal, total in rows
        if category in candidates
        and seasonal >= MIN_SEASON_PURCHASES
        and seasonal / total >= MIN_SEASON_LIFT * expected
    }


def occasion_categories(rows: list[tuple[str, str, float]], slack: float) -> set[str]:
    """Categories customers buy for their own occasions: among customers who bought in the category in
    two or more calendar years, the share who did so within `slack` of the same calendar day in two
    different years (rows: (customer, category, time) sorted by customer and category)."""
    multi_year: dict[str, int] = {}
    recurring: dict[str, int] = {}
    for (_, category), group in itertools.groupby(rows, key=lambda r: (r[0], r[1])):
        days = [dt.datetime.fromtimestamp(at, dt.UTC) for _, _, at in group]
        if len({d.year for d in days}) < 2:
            continue
        multi_year[category] = multi_year.get(category, 0) + 1
        if any(_same_date(a, b, slack) for a, b in itertools.combinations(days, 2) if a.year != b.year):
            recurring[category] = recurring.get(category, 0) + 1
    return {
        c
        for c, n in multi_year.items()
        if recurring.get(c, 0) >= MIN_OCCASION_CUSTOMERS and recurring.get(c, 0) / n >= MIN_OCCASION_SHARE
    }


def _same_date(a: dt.datetime, b: dt.datetime, slack: float) -> bool:
    """Whether two moments of different years fall on (nearly) the same calendar day."""
    moved = years_before(b.timestamp(), b.year - a.year)
    return abs(moved - a.timestamp()) <= slack


def years_before(at: float, years: int) -> float:
    """The same calendar day and time `years` earlier (29 February becomes 28 February), UTC."""
    day = dt.datetime.fromtimestamp(at, dt.UTC)
    try:
        return day.replace(year=day.year - years).timestamp()
    except ValueError:
        return day.replace(year=day.year - years, day=28).timestamp()


def regular_interval(gaps: list[float], at_least: int) -> float:
    """The median gap when there are enough and they are regular (spread at most MAX_INTERVAL_CV of the
    mean: coffee every 30 days is; flowers at Valentine's and Mothering Sunday are not); else 0."""
    if len(gaps) < at_least:
        return 0.0
    mean = statistics.fmean(gaps)
    if len(gaps) > 1 and statistics.pstdev(gaps) > MAX_INTERVAL_CV * mean:
        return 0.0
    return statistics.median(gaps)


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times) if b - a >= DAY]


def _check_window(start: float | None, end: float | None) -> tuple[float, float]:
    if start is None:
        raise InvalidArgument("window_start", "is required")
    if end is None:
        raise InvalidArgument("window_end", "is required")
    # From 1970 (no event is older: models/validation.check_event) to the end of what a Timestamp holds.
    # Seasons look years back by calendar date, which fails before year 1: a window from year 0 was INTERNAL.
    check_time(start, "window_start", 0.0)
    check_time(end, "window_end", 0.0)
    if end <= start:
        raise InvalidArgument("window_end", f"must be after window_start, got {end} <= {start}")
    if end - start > MAX_WINDOW_DAYS * DAY:
        raise InvalidArgument(
            "window_end", f"the window may span at most {MAX_WINDOW_DAYS} days, got {(end - start) / DAY:.1f}"
        )
    return start, end


__all__ = ["Due", "DueReminders", "Reminder", "years_before"]


def _anything(_: str) -> bool:
    return True
