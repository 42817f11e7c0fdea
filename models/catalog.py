"""The catalogue: items with features, accessory links, stock per store and offers.

Serving reads a `CatalogSnapshot` held in memory; it is rebuilt when the catalogue version in
the database moves (an upsert here at once; one in another serving process within about a second).

What a shop needs to sell an item (issue 9 point 7): an item with stock rows has stock only where it
has a row with units. An item without a price, or without any stock row, is judged by what the
catalogue usually carries: where most items (more than half) have a price, one without is not offered;
where most have stock rows, one without any has no stock anywhere (a new item the ERP has not stocked
yet). A catalogue mostly without prices or stock data (MovieLens, a clickstream export, a shop that
sends stock for a few limited items only) filters nothing on that account.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from models.domain import Item
from models.errors import NotFound
from models.storage import Storage
from models.validation import (
    MAX_ID_LENGTH,
    check_batch_size,
    check_items,
    check_text,
    check_update_mask,
    quote,
)

log = logging.getLogger(__name__)

MAX_WARNINGS = 100  # an UpsertItems answer names at most this many problems (then how many more)


@dataclass(frozen=True)
class Upserted:
    """What an upsert wrote, and what it kept but may not work as meant (each naming its field)."""

    upserted: int
    warnings: tuple[str, ...] = ()


class Catalog:
    def __init__(self, storage: Storage, refresh_seconds: float = 1.0) -> None:
        self.storage = storage
        self.refresh_seconds = refresh_seconds
        self._snapshot: CatalogSnapshot | None = None
        self._stale = True  # an upsert of this process: the next snapshot() reads the catalogue itself
        self._checked_at = 0.0
        self._checking = False
        self._lock = threading.Lock()

    def upsert(self, items: Sequence[Item], update_mask: Sequence[str] = ()) -> Upserted:
        """Writes whole items, or with a mask only the named fields of items that exist (the rest is
        read and kept in the same transaction, so two partial updates never undo each other).

        An `accessory_for` link to an item the catalogue does not hold is kept (the main item may come
        in a later batch) and reported in the warnings."""
        if not update_mask:
            check_items(items)  # 1 to 10,000 valid items, each item_id once
            with self.storage.transaction():
                n = self.storage.upsert_items(items, time.time())
                warnings = self._dangling_links(items)
        else:
            paths = check_update_mask(update_mask)
            check_batch_size(len(items), "items", "item")
            with self.storage.transaction():
                merged = []
                for i, partial in enumerate(items):
                    check_text(partial.item_id, f"items[{i}].item_id", MAX_ID_LENGTH)
                    stored = self.storage.item(partial.item_id)
                    if stored is None:
                        raise NotFound(
                            f"items[{i}].item_id: no item {quote(partial.item_id)} to update; "
                            "send it without update_mask to create it"
                        )
                    merged.append(dataclasses.replace(stored, **{p: getattr(partial, p) for p in paths}))
                check_items(merged)
                n = self.storage.upsert_items(merged, time.time())
                warnings = self._dangling_links(items) if "accessory_for" in paths else ()
        self._stale = True  # let the next snapshot() see it at once
        return Upserted(n, warnings)

    def _dangling_links(self, items: Sequence[Item]) -> tuple[str, ...]:
        """`items[i].accessory_for[j]` of the batch that point at no item of the catalogue (read after
        the batch is written, in its transaction: a link to an item of the same batch is fine)."""
        targets = [main for it in items for main in it.accessory_for]
        if not targets:
            return ()
        known = self.storage.known_item_ids(targets)
        found = [
            f"items[{i}].accessory_for[{j}]: no item {quote(main)} in the catalogue; the link is kept"
            " and counts once that item is upserted"
            for i, it in enumerate(items)
            for j, main in enumerate(it.accessory_for)
            if main not in known
        ]
        if len(found) > MAX_WARNINGS:
            more = len(found) - MAX_WARNINGS + 1
            found = [*found[: MAX_WARNINGS - 1], f"and {more:,} more accessory_for links to unknown items"]
        return tuple(found)

    def get(self, item_id: str) -> Item:
        item = self.storage.item(item_id)
        if item is None:
            raise NotFound(f"item_id: no item {item_id!r} in the catalogue")
        return item

    def all_items(self) -> list[Item]:
        return self.storage.all_items()

    def version(self) -> int:
        return self.storage.catalog_version()

    def snapshot(self) -> CatalogSnapshot:
        """The in-memory view serving uses. Requests do not read the database for it (but the first
        one after an upsert of this process): a background check follows other processes' upserts,
        at most once per refresh period."""
        snap = self._snapshot
        if snap is None or self._stale:
            return self._reload()
        if time.monotonic() - self._checked_at >= self.refresh_seconds:
            self._check_later()
        return snap

    def _reload(self) -> CatalogSnapshot:
        """Reads the version, and the catalogue when the version moved (or nothing was read yet)."""
        with self._lock:
            self._stale = False
            checked = time.monotonic()
            version = self.version()
            if self._snapshot is None or self._snapshot.version != version:
                self._snapshot = CatalogSnapshot.build(self.all_items(), version, self.storage.first_seen())
            self._checked_at = checked
            return self._snapshot

    def _check_later(self) -> None:
        with self._lock:
            if self._checking:
                return
            self._checking = True
            self._checked_at = time.monotonic()  # one check per period, however many requests ask

        def run() -> None:
            try:
                self._reload()
            except Exception:  # serving keeps the snapshot it has; the next period tries again
                log.exception("could not check the catalogue version")
            finally:
                self._checking = False

        threading.Thread(target=run, name="catalog-check", daemon=True).start()


@dataclass(frozen=True)
class CatalogSnapshot:
    version: int
    items: dict[str, Item]
    # item_id -> the items that are accessories of it
    accessories_of: dict[str, tuple[str, ...]]
    # item_id -> when it was first upserted (what makes it new: models/serving/exploration.py)
    first_seen: Mapping[str, float] = field(default_factory=dict)
    keeps_stock: bool = False  # most items have stock rows: an item without any has no stock
    keeps_prices: bool = False  # most items have a price: an item without one is not offered

    @classmethod
    def build(
        cls, items: list[Item], version: int, first_seen: Mapping[str, float] | None = None
    ) -> CatalogSnapshot:
        acc: dict[str, list[str]] = {}
        for it in items:
            for main in it.accessory_for:
                acc.setdefault(main, []).append(it.item_id)
        return cls(
            version,
            {it.item_id: it for it in items},
            {k: tuple(v) for k, v in acc.items()},
            dict(first_seen or {}),
            keeps_stock=2 * sum(1 for it in items if it.stock) > len(items),
            keeps_prices=2 * sum(1 for it in items if priced(it)) > len(items),
        )

    def in_stock(self, item_id: str, store_id: str) -> bool:
        """Whether the item has units at `store_id` ("" = online). An item with stock rows has none where
        it has no row. An item without any row has none either in a catalogue that keeps stock (most
        items have rows); only where stock data is missing or rare does unknown stock count as
        available (a catalogue without stock data filters nothing)."""
        item = self.items.get(item_id)
        if item is None or (not item.stock and not self.keeps_stock):
            return True
        return item.stock.get(store_id, 0) > 0


def priced(item: Item) -> bool:
    """The item has a price, its own or its offer's (whether the offer is in force or not)."""
    offer = item.offer
    return item.price > 0 or (offer is not None and (offer.price > 0 or offer.promo_price > 0))
