"""PostgreSQL: the catalog part of the storage interface (models/storage/catalog.py)."""

from __future__ import annotations

from collections.abc import Sequence

from models.domain import Item
from models.storage.catalog import Novelty
from models.storage.postgres.base import PostgresBase
from models.storage.rows import ITEM_COLUMNS, item_from_row, item_row

# An upsert replaces every column but the first upsert's time (what makes an item new).
_UPSERT_ITEM = (
    f"INSERT INTO items ({ITEM_COLUMNS}, updated_at, first_seen_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (item_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in [*ITEM_COLUMNS.split(", ")[1:], "updated_at"])
)


class PostgresCatalog(PostgresBase):
    def upsert_items(self, items: Sequence[Item], now: float) -> int:
        ids = list(dict.fromkeys(it.item_id for it in items))
        with self._write() as conn:
            self._run(conn, "DELETE FROM stock WHERE item_id = ANY(%s)", (ids,))
            self._run(conn, "DELETE FROM accessories WHERE accessory_id = ANY(%s)", (ids,))
            self._many(conn, _UPSERT_ITEM, [(*item_row(it), now, now) for it in items])
            self._many(
                conn,
                "INSERT INTO stock (item_id, store_id, quantity) VALUES (%s, %s, %s)",
                [(it.item_id, s, q) for it in items for s, q in it.stock.items()],
            )
            self._many(
                conn,
                "INSERT INTO accessories (accessory_id, item_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [(it.item_id, main) for it in items for main in it.accessory_for],
            )
            self._run(
                conn,
                "UPDATE meta SET value = (CAST(value AS BIGINT) + 1)::text WHERE key = 'catalog_version'",
            )
        return len(items)

    def first_seen(self) -> dict[str, float]:
        rows = self._rows("SELECT item_id, COALESCE(first_seen_at, updated_at, 0) FROM items")
        return {item_id: float(at) for item_id, at in rows}

    def known_item_ids(self, item_ids: Sequence[str]) -> set[str]:
        if not item_ids:
            return set()
        rows = self._rows(
            "SELECT item_id FROM items WHERE item_id = ANY(%s)", (list(dict.fromkeys(item_ids)),)
        )
        return {str(r[0]) for r in rows}

    def item_novelty(self, since: float, types: Sequence[str], until: float) -> list[Novelty]:
        # As SQLite's: per recently upserted item, its oldest event through the (item_id, occurred_at)
        # index, and its customers only when that event is recent too.
        sql = (
            "SELECT item_id, first_seen_at, first_event,"
            " CASE WHEN first_event IS NULL OR first_event < %s THEN 0 ELSE"
            "  (SELECT COUNT(DISTINCT customer_id) FROM events e"
            "  WHERE e.item_id = fresh.item_id AND e.occurred_at <= %s AND e.type = ANY(%s)) END"
            " FROM (SELECT item_id, first_seen_at,"
            "  (SELECT MIN(occurred_at) FROM events e WHERE e.item_id = i.item_id) AS first_event"
            "  FROM items i WHERE first_seen_at >= %s) AS fresh ORDER BY item_id"
        )
        rows = self._rows(sql, (since, until, list(types), since))
        return [
            Novelty(i, float(seen), None if first is None else float(first), int(n))
            for i, seen, first, n in rows
        ]

    def item(self, item_id: str) -> Item | None:
        with self._reading() as conn:
            row = self._run(
                conn, f"SELECT {ITEM_COLUMNS} FROM items WHERE item_id = %s", (item_id,)
            ).fetchone()
            if row is None:
                return None
            stock = self._run(conn, "SELECT store_id, quantity FROM stock WHERE item_id = %s", (item_id,))
            return item_from_row(row, {str(s): int(q) for s, q in stock.fetchall()})

    def all_items(self) -> list[Item]:
        with self._reading() as conn:
            stock: dict[str, dict[str, int]] = {}
            for item_id, store_id, qty in self._run(conn, "SELECT item_id, store_id, quantity FROM stock"):
                stock.setdefault(item_id, {})[store_id] = int(qty)
            rows = self._run(conn, f"SELECT {ITEM_COLUMNS} FROM items ORDER BY item_id").fetchall()
        return [item_from_row(r, stock.get(r[0], {})) for r in rows]

    def catalog_version(self) -> int:
        row = self._one("SELECT value FROM meta WHERE key = 'catalog_version'")
        return int(row[0]) if row is not None else 0
