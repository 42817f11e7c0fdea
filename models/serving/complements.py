"""Complementary items: what goes with what, for baskets and for what a customer owns.

Two sources, merged:

* the catalogue's `accessory_for` links (the retailer says the case fits the phone);
* association rules learned from purchases (pairs from different categories). One *transaction*
  is everything a customer bought in one basket (`order_id`) or within `window_days` of the
  start of that shopping episode. A pair of items counts when at least `min_support`
  transactions hold both, and when its **lift** — how much more often they are bought together
  than chance would have it — is at least `min_lift`. Lift, not raw counts: a best-seller lands
  in many baskets by chance, and lift divides that out.

The learned table is built from the event store when first needed, again after every training
(`refresh`), and in the background when a model trained elsewhere is picked up or the table is older
than `ttl_seconds`; serving keeps using the previous table meanwhile.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from models.catalog import CatalogSnapshot
from models.domain import DAY
from models.serving.learned import LearnedTable
from models.storage import Storage

log = logging.getLogger(__name__)

ACCESSORY = "accessory"  # a catalogue accessory_for link
BOUGHT_TOGETHER = "bought_together"  # a learned association
MAX_TRANSACTION = 50  # larger transactions (bulk buys) say little about what goes together; skipped


@dataclass(frozen=True, slots=True)
class Link:
    """`item_id` complements the anchor item."""

    item_id: str
    kind: str  # ACCESSORY or BOUGHT_TOGETHER
    lift: float = 0.0  # learned links: the pair's lift
    support: int = 0  # learned links: transactions holding both


@dataclass(frozen=True)
class AssociationTable:
    links: dict[str, tuple[Link, ...]]  # item -> learned complements, highest lift first
    transactions: int
    key: str = ""  # what it was built for (the model version)
    built_at: float = 0.0

    def of(self, item_id: str) -> tuple[Link, ...]:
        return self.links.get(item_id, ())


def transactions(
    purchases: Iterable[tuple[str, str, str, float]], window_days: float
) -> Iterator[frozenset[str]]:
    """Sets of items bought together, from (customer_id, item_id, order_id, occurred_at) rows sorted
    by customer and time: one per shopping episode of `window_days` (an order never splits)."""
    window = window_days * DAY
    for _, rows in itertools.groupby(purchases, key=lambda r: r[0]):
        episode: set[str] = set()
        start = 0.0
        order_episode: dict[str, int] = {}
        n = 0
        for _, item_id, order_id, at in rows:
            same_order = bool(order_id) and order_episode.get(order_id) == n
            if episode and not same_order and at - start > window:
                yield frozenset(episode)
                episode, n = set(), n + 1
            if not episode:
                start = at
            episode.add(item_id)
            if order_id:
                order_episode.setdefault(order_id, n)
        if episode:
            yield frozenset(episode)


def learn(
    baskets: Iterable[frozenset[str]], min_support: int, min_lift: float, top_n: int = 20, key: str = ""
) -> AssociationTable:
    """Association rules by lift from transactions; each item keeps its `top_n` best complements."""
    item_count: Counter[str] = Counter()
    pair_count: Counter[tuple[str, str]] = Counter()
    n = 0
    for basket in baskets:
        n += 1
        item_count.update(basket)
        if 1 < len(basket) <= MAX_TRANSACTION:
            pair_count.update(itertools.combinations(sorted(basket), 2))
    found: dict[str, list[Link]] = {}
    for (a, b), together in pair_count.items():
        if together < min_support:
            continue
        lift = together * n / (item_count[a] * item_count[b])
        if lift < min_lift:
            continue
        found.setdefault(a, []).append(Link(b, BOUGHT_TOGETHER, lift, together))
        found.setdefault(b, []).append(Link(a, BOUGHT_TOGETHER, lift, together))
    links = {
        item: tuple(sorted(ls, key=lambda x: (-x.lift, -x.support, x.item_id))[:top_n])
        for item, ls in found.items()
    }
    return AssociationTable(links, n, key, time.time())


def _categories_completed_by(item_id: str, snapshot: CatalogSnapshot) -> set[str]:
    """The item's own category and those of the items it is an accessory for."""
    item = snapshot.items.get(item_id)
    if item is None:
        return set()
    cats = {snapshot.items[m].category for m in item.accessory_for if m in snapshot.items}
    cats.add(item.category)
    cats.discard("")
    return cats


class Complements:
    """The merged complements the recommender asks for; the learned part cached and refreshed."""

    def __init__(
        self,
        storage: Storage,
        window_days: float = 3.0,
        min_support: int = 3,
        min_lift: float = 1.5,
        ttl_seconds: float = 600.0,
    ) -> None:
        self.storage = storage
        self.window_days = window_days
        self.min_support = min_support
        self.min_lift = min_lift
        self._learned = LearnedTable(self._build, "complements", ttl_seconds)

    def table(self, key: str = "") -> AssociationTable:
        """The learned table (models/serving/learned.py: never rebuilt on the request path)."""
        return self._learned.get(key)

    def refresh(self, key: str = "") -> AssociationTable:
        """Learns again now (after a training, so the first request on the new model sees it)."""
        return self._learned.refresh(key)

    def links(
        self, anchors: Iterable[str], snapshot: CatalogSnapshot, key: str = ""
    ) -> Iterator[tuple[str, Link]]:
        """(anchor, link) for every complement of the anchors: catalogue accessories, then learned ones.

        Learned pairs that do not complete the anchor are left out: one in the anchor's own category
        (two phones bought together are alternatives or gifts), and, for an accessory, one in the
        category of the items it is an accessory for (who bought a laptop sleeve has the laptop)."""
        table = self.table(key)
        anchors = list(anchors)
        for anchor in anchors:
            for acc in snapshot.accessories_of.get(anchor, ()):
                yield anchor, Link(acc, ACCESSORY)
        for anchor in anchors:
            skip = _categories_completed_by(anchor, snapshot)
            for link in table.of(anchor):
                other = snapshot.items.get(link.item_id)
                if other is None or other.category not in skip:
                    yield anchor, link

    def _build(self, key: str) -> AssociationTable:
        started = time.perf_counter()
        rows = self.storage.purchase_rows()
        table = learn(transactions(rows, self.window_days), self.min_support, self.min_lift, key=key)
        log.info(
            "complements learned from %d transactions: %d items with complements in %.2fs",
            table.transactions,
            len(table.links),
            time.perf_counter() - started,
        )
        return table
