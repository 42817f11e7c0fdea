"""SQLite: the catalog part of the storage interface (models/storage/catalog.py)."""

from __future__ import annotations

from collections.abc import Sequence

from models.domain import Item
from models.storage.base import chunks
from models.storage.catalog import Novelty
from models.storage.rows import ITEM_COLUMNS as _ITEM_COLUMNS
from models.storage.rows import item_from_row, item_row
from models.storage.sqlite.base import SqliteBase

# An upsert replaces every column but the first upsert's time (what makes an item new).
_UPSERT_ITEM = (
    f"INSERT INTO items ({_ITEM_COLUMNS}, updated_at, first_seen_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (item_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in [*_ITEM_COLUMNS.split(", ")[1:], "updated_at"])
)


class SqliteCatalog(SqliteBase):
    def upsert_items(self, items: Sequence[Item], now: float) -> int:
        ids = [(it.item_id,) for it in items]
        with self._write() as conn:
            conn.executemany("DELETE FROM stock WHERE item_id=?", ids)
            conn.executemany("DELETE FROM accessories WHERE accessory_id=?", ids)
            conn.executemany(_UPSERT_ITEM, [(*item_row(it), now, now) for it in items])
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

    def first_seen(self) -> dict[str, float]:
        rows = self._read().execute("SELECT item_id, COALESCE(first_seen_at, updated_at, 0) FROM items")
        return {item_id: float(at) for item_id, at in rows}

    def known_item_ids(self, item_ids: Sequence[str]) -> set[str]:
        conn = self._read()
        known: set[str] = set()
        for chunk in chunks(list(dict.fromkeys(item_ids))):
            sql = f"SELECT item_id FROM items WHERE item_id IN ({','.join('?' * len(chunk))})"
            known.update(r[0] for r in conn.execute(sql, chunk))
        return known

    def item_novelty(self, since: float, types: Sequence[str], until: float) -> list[Novelty]:
        # Per recently upserted item, one walk of the (item_id, occurred_at) index for its oldest event,
        # and its customers only when that event is recent too: an imported history is never counted
        # through, and a day-one import of a whole catalogue costs one index probe per item.
        kinds = ",".join("?" * len(types)) or "''"
        sql = (
            "SELECT item_id, first_seen_at, first_event,"
            " CASE WHEN first_event IS NULL OR first_event < ? THEN 0 ELSE"
            "  (SELECT COUNT(DISTINCT customer_id) FROM events e"
            f"  WHERE e.item_id = fresh.item_id AND e.occurred_at <= ? AND e.type IN ({kinds})) END"
            " FROM (SELECT item_id, first_seen_at,"
            "  (SELECT MIN(occurred_at) FROM events e WHERE e.item_id = i.item_id) AS first_event"
            "  FROM items i WHERE first_seen_at >= ?) AS fresh ORDER BY item_id"
        )
        rows = self._read().execute(sql, [since, until, *types, since])
        return [
            Novelty(i, float(seen), None if first is None else float(first), int(n))
            for i, seen, first, n in rows
        ]

    def item(self, item_id: str) -> Item | None:
        conn = self._read()
        row = conn.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE item_id=?", (item_id,)).fetchone()
        if row is None:
            return None
        stock = dict(
            conn.execute("SELECT store_id, quantity FROM stock WHERE item_id=?", (item_id,)).fetchall()
        )
        return item_from_row(row, stock)

    def all_items(self) -> list[Item]:
        conn = self._read()
        stock: dict[str, dict[str, int]] = {}
        for item_id, store_id, qty in conn.execute("SELECT item_id, store_id, quantity FROM stock"):
            stock.setdefault(item_id, {})[store_id] = qty
        return [
            item_from_row(r, stock.get(r[0], {}))
            for r in conn.execute(f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY item_id")
        ]

    def catalog_version(self) -> int:
        row = self._read().execute("SELECT value FROM meta WHERE key='catalog_version'").fetchone()
        return int(row[0]) if row is not None else 0
