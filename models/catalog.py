"""The catalogue: items with features, accessory links, stock per store and offers.

Serving reads a `CatalogSnapshot` held in memory; it is rebuilt when the catalogue version in
the database moves (an upsert here or in another serving process).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from models.domain import Item, Offer
from models.errors import NotFound
from models.storage import Storage
from models.validation import check_batch_size, check_item


class Catalog:
    def __init__(self, db: Storage, refresh_seconds: float = 1.0) -> None:
        self.db = db
        self._refresh_seconds = refresh_seconds
        self._snapshot: CatalogSnapshot | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()

    def upsert(self, items: Sequence[Item]) -> int:
        check_batch_size(len(items), "items", "item")
        for i, item in enumerate(items):
            check_item(item, f"items[{i}]")
        now = time.time()
        conn = self.db.writer
        with self.db.write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ids = [(it.item_id,) for it in items]
                conn.executemany("DELETE FROM stock WHERE item_id=?", ids)
                conn.executemany("DELETE FROM accessories WHERE accessory_id=?", ids)
                conn.executemany(
                    "INSERT OR REPLACE INTO items (item_id, title, category, brand, price, repeatable, active,"
                    " attributes, accessory_for, offer, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [_item_row(it, now) for it in items],
                )
                conn.executemany(
                    "INSERT INTO stock (item_id, store_id, quantity) VALUES (?,?,?)",
                    [(it.item_id, s, q) for it in items for s, q in it.stock.items()],
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO accessories (accessory_id, item_id) VALUES (?,?)",
                    [(it.item_id, main) for it in items for main in it.accessory_for],
                )
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='catalog_version'")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._checked_at = 0.0  # let the next snapshot() see it at once
        return len(items)

    def get(self, item_id: str) -> Item:
        conn = self.db.reader()
        row = conn.execute("SELECT * FROM items WHERE item_id=?", (item_id,)).fetchone()
        if row is None:
            raise NotFound(f"item_id: no item {item_id!r} in the catalogue")
        stock = dict(
            conn.execute("SELECT store_id, quantity FROM stock WHERE item_id=?", (item_id,)).fetchall()
        )
        return _item_from_row(row, stock)

    def all_items(self) -> list[Item]:
        conn = self.db.reader()
        stock: dict[str, dict[str, int]] = {}
        for item_id, store_id, qty in conn.execute("SELECT item_id, store_id, quantity FROM stock"):
            stock.setdefault(item_id, {})[store_id] = qty
        return [
            _item_from_row(r, stock.get(r[0], {}))
            for r in conn.execute("SELECT * FROM items ORDER BY item_id")
        ]

    def version(self) -> int:
        row = self.db.reader().execute("SELECT value FROM meta WHERE key='catalog_version'").fetchone()
        return int(row[0])

    def snapshot(self) -> CatalogSnapshot:
        """The in-memory view serving uses; checks the database at most once per refresh period."""
        now = time.monotonic()
        snap = self._snapshot
        if snap is not None and now - self._checked_at < self._refresh_seconds:
            return snap
        with self._lock:
            if self._snapshot is not None and now - self._checked_at < self._refresh_seconds:
                return self._snapshot
            version = self.version()
            if self._snapshot is None or self._snapshot.version != version:
                self._snapshot = CatalogSnapshot.build(self.all_items(), version)
            self._checked_at = now
            return self._snapshot


@dataclass(frozen=True)
class CatalogSnapshot:
    version: int
    items: dict[str, Item]
    # item_id -> the items that are accessories of it
    accessories_of: dict[str, tuple[str, ...]]

    @classmethod
    def build(cls, items: list[Item], version: int) -> CatalogSnapshot:
        acc: dict[str, list[str]] = {}
        for it in items:
            for main in it.accessory_for:
                acc.setdefault(main, []).append(it.item_id)
        return cls(version, {it.item_id: it for it in items}, {k: tuple(v) for k, v in acc.items()})

    def in_stock(self, item_id: str, store_id: str) -> bool:
        """Unknown stock counts as available: a catalogue without stock data filters nothing."""
        item = self.items.get(item_id)
        if item is None or not item.stock:
            return True
        return item.stock.get(store_id, 0) > 0


def _item_row(it: Item, now: float) -> tuple:
    offer = None
    if it.offer is not None:
        o = it.offer
        offer = json.dumps(
            {
                "price": o.price,
                "promo_price": o.promo_price,
                "valid_from": o.valid_from,
                "valid_until": o.valid_until,
                "offer_id": o.offer_id,
                "currency": o.currency,
            }
        )
    return (
        it.item_id,
        it.title,
        it.category,
        it.brand,
        it.price,
        int(it.repeatable),
        int(it.active),
        json.dumps(it.attributes, sort_keys=True),
        json.dumps(it.accessory_for),
        offer,
        now,
    )


def _item_from_row(row: tuple, stock: dict[str, int]) -> Item:
    item_id, title, category, brand, price, repeatable, active, attributes, accessory_for, offer, _ = row
    return Item(
        item_id=item_id,
        title=title or "",
        category=category or "",
        brand=brand or "",
        price=price or 0.0,
        accessory_for=json.loads(accessory_for or "[]"),
        repeatable=bool(repeatable),
        active=bool(active),
        attributes=json.loads(attributes or "{}"),
        stock=stock,
        offer=Offer(**json.loads(offer)) if offer else None,
    )
