"""SQLite: the catalog part of the storage interface (models/storage/catalog.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from models.domain import Item, Offer
from models.storage.sqlite.base import SqliteBase

_ITEM_COLUMNS = "item_id, title, category, brand, price, repeatable, active, attributes, accessory_for, offer"


class SqliteCatalog(SqliteBase):
    def upsert_items(self, items: Sequence[Item], now: float) -> int:
        ids = [(it.item_id,) for it in items]
        with self._write() as conn:
            conn.executemany("DELETE FROM stock WHERE item_id=?", ids)
            conn.executemany("DELETE FROM accessories WHERE accessory_id=?", ids)
            conn.executemany(
                f"INSERT OR REPLACE INTO items ({_ITEM_COLUMNS}, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(*_item_row(it), now) for it in items],
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
        return len(items)

    def item(self, item_id: str) -> Item | None:
        conn = self._read()
        row = conn.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE item_id=?", (item_id,)).fetchone()
        if row is None:
            return None
        stock = dict(
            conn.execute("SELECT store_id, quantity FROM stock WHERE item_id=?", (item_id,)).fetchall()
        )
        return _item_from_row(row, stock)

    def all_items(self) -> list[Item]:
        conn = self._read()
        stock: dict[str, dict[str, int]] = {}
        for item_id, store_id, qty in conn.execute("SELECT item_id, store_id, quantity FROM stock"):
            stock.setdefault(item_id, {})[store_id] = qty
        return [
            _item_from_row(r, stock.get(r[0], {}))
            for r in conn.execute(f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY item_id")
        ]

    def catalog_version(self) -> int:
        row = self._read().execute("SELECT value FROM meta WHERE key='catalog_version'").fetchone()
        return int(row[0]) if row is not None else 0


def _item_row(it: Item) -> tuple[Any, ...]:
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
        None if it.repeatable is None else int(it.repeatable),
        int(it.active),
        json.dumps(it.attributes, sort_keys=True),
        json.dumps(it.accessory_for),
        offer,
    )


def _item_from_row(row: tuple[Any, ...], stock: dict[str, int]) -> Item:
    item_id, title, category, brand, price, repeatable, active, attributes, accessory_for, offer = row
    return Item(
        item_id=item_id,
        title=title or "",
        category=category or "",
        brand=brand or "",
        price=price or 0.0,
        accessory_for=json.loads(accessory_for or "[]"),
        repeatable=None if repeatable is None else bool(repeatable),
        active=bool(active),
        attributes=json.loads(attributes or "{}"),
        stock=stock,
        offer=Offer(**json.loads(offer)) if offer else None,
    )
