"""SQLite: the insights part of the storage interface (models/storage/insights.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from models.storage.insights import CustomerActivity, EventRow, PurchaseRow, ServedRow, TimelineRow
from models.storage.rows import READABLE_EVENT_COLUMNS
from models.storage.sqlite.base import SqliteBase

_EMAIL_TYPES = ("EMAIL_SENT", "EMAIL_OPEN", "EMAIL_CLICK")


class SqliteInsights(SqliteBase):
    def served_between(self, start: float, end: float) -> list[ServedRow]:
        rows = self._read().execute(
            "SELECT recommendation_id, customer_id, channel, placement, items, arm, served_at"
            " FROM recommendations WHERE served_at >= ? AND served_at < ?",
            (start, end),
        )
        return [
            ServedRow(
                rid,
                cid or "",
                ch,
                pl or "",
                tuple(json.loads(items or "[]")),
                arm or "personalised",
                float(at),
            )
            for rid, cid, ch, pl, items, arm, at in rows
        ]

    def events_between(self, types: Sequence[str], start: float, end: float) -> list[EventRow]:
        marks = ",".join("?" * len(types))
        rows = self._read().execute(
            "SELECT customer_id, type, channel, item_id, price, quantity, recommendation_id, occurred_at"
            f" FROM events WHERE type IN ({marks}) AND occurred_at >= ? AND occurred_at < ?"
            " ORDER BY occurred_at, seq",
            (*types, start, end),
        )
        return [
            EventRow(c, t, ch, i or "", float(p or 0.0), int(q or 1), r or "", float(at))
            for c, t, ch, i, p, q, r, at in rows
        ]

    def customer_activity(
        self, customer_id: str, purchases: int, timeline: int, after: tuple[float, int] | None
    ) -> CustomerActivity:
        conn = self.connections.reader()
        out = CustomerActivity()
        conn.execute("BEGIN")  # one read snapshot: counts, purchases and timeline agree with each other
        try:
            out.channels = [
                (c, int(n), float(t))
                for c, n, t in conn.execute(
                    "SELECT channel, COUNT(*), MAX(occurred_at) FROM events WHERE customer_id=?"
                    " GROUP BY channel ORDER BY COUNT(*) DESC, channel",
                    (customer_id,),
                )
            ]
            out.purchases = [
                PurchaseRow(i, c, s or "", o or "", int(q or 1), float(p or 0.0), float(t))
                for i, c, s, o, q, p, t in conn.execute(
                    "SELECT item_id, channel, store_id, order_id, quantity, price, occurred_at FROM events"
                    " WHERE customer_id=? AND type='PURCHASE' ORDER BY occurred_at DESC, seq DESC LIMIT ?",
                    (customer_id, purchases),
                )
            ]
            out.email = {
                t: (int(n), float(last))
                for t, n, last in conn.execute(
                    "SELECT type, COUNT(*), MAX(occurred_at) FROM events WHERE customer_id=?"
                    f" AND type IN ({','.join('?' * len(_EMAIL_TYPES))}) GROUP BY type",
                    (customer_id, *_EMAIL_TYPES),
                )
            }
            out.first_seen, out.last_seen = conn.execute(
                "SELECT MIN(occurred_at), MAX(occurred_at) FROM events WHERE customer_id=?", (customer_id,)
            ).fetchone()
            sql = (
                "SELECT seq, event_id, channel, type, item_id, store_id, occurred_at FROM events"
                " WHERE customer_id=?"
            )
            args: list[object] = [customer_id]
            if after is not None:
                sql += " AND (occurred_at < ? OR (occurred_at = ? AND seq < ?))"
                args += [after[0], after[0], after[1]]
            out.timeline = [
                TimelineRow(int(q), e, c, t, i or "", s or "", float(at))
                for q, e, c, t, i, s, at in conn.execute(
                    sql + " ORDER BY occurred_at DESC, seq DESC LIMIT ?", (*args, timeline)
                )
            ]
        finally:
            conn.execute("COMMIT")
        return out

    def first_purchase_since(self, since: float) -> float | None:
        row = (
            self._read()
            .execute(
                "SELECT MIN(occurred_at) FROM events WHERE type='PURCHASE' AND occurred_at >= ?", (since,)
            )
            .fetchone()
        )
        return None if row[0] is None else float(row[0])

    def category_seasonality(
        self, seasons: Sequence[tuple[float, float]], start: float, until: float
    ) -> list[tuple[str, int, int]]:
        in_season = " OR ".join("e.occurred_at BETWEEN ? AND ?" for _ in seasons)
        rows = self._read().execute(
            f"SELECT i.category, SUM(CASE WHEN {in_season} THEN 1 ELSE 0 END), COUNT(*) FROM events e"
            " JOIN items i ON i.item_id = e.item_id WHERE e.type = 'PURCHASE'"
            " AND e.occurred_at BETWEEN ? AND ? GROUP BY i.category",
            [t for r in seasons for t in r] + [start, until],
        )
        return [(c or "", int(s), int(n)) for c, s, n in rows]

    def purchases_in(self, seasons: Sequence[tuple[float, float]]) -> list[tuple[str, str, float]]:
        where = " OR ".join("occurred_at BETWEEN ? AND ?" for _ in seasons)
        rows = self._read().execute(
            f"SELECT customer_id, item_id, occurred_at FROM events WHERE type='PURCHASE' AND ({where})"
            " ORDER BY customer_id, occurred_at DESC",
            [t for r in seasons for t in r],
        )
        return [(c, i, float(t)) for c, i, t in rows]

    def customer_purchases_between(
        self, customer_id: str, start: float, end: float
    ) -> list[tuple[str, float]]:
        rows = self._read().execute(
            "SELECT item_id, occurred_at FROM events WHERE customer_id=? AND type='PURCHASE'"
            " AND occurred_at BETWEEN ? AND ?",
            (customer_id, start, end),
        )
        return [(i, float(t)) for i, t in rows]

    def category_purchases(self, until: float) -> list[tuple[str, str, float]]:
        rows = self._read().execute(
            "SELECT e.customer_id, i.category, e.occurred_at FROM events e"
            " JOIN items i ON i.item_id = e.item_id"
            " WHERE e.type = 'PURCHASE' AND e.occurred_at <= ? AND i.category != ''"
            " ORDER BY e.customer_id, i.category, e.occurred_at",
            (until,),
        )
        return [(c, cat, float(t)) for c, cat, t in rows]

    def item_purchases(self, until: float) -> list[tuple[str, str, float]]:
        rows = self._read().execute(
            "SELECT customer_id, item_id, occurred_at FROM events"
            " WHERE type = 'PURCHASE' AND occurred_at <= ? AND item_id != ''"
            " ORDER BY customer_id, item_id, occurred_at",
            (until,),
        )
        return [(c, i, float(t)) for c, i, t in rows]

    def item_purchase_gaps(self, until: float) -> list[tuple[str, float]]:
        rows = self._read().execute(
            "SELECT item_id, occurred_at - LAG(occurred_at) OVER (PARTITION BY customer_id, item_id"
            " ORDER BY occurred_at) FROM events WHERE type='PURCHASE' AND occurred_at <= ? AND item_id != ''",
            (until,),
        )
        return [(i, float(g)) for i, g in rows if g is not None]

    def item_events(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        unknown = [c for c in columns if c not in READABLE_EVENT_COLUMNS]
        if unknown:
            raise ValueError(f"no event column {unknown[0]!r}")
        return (
            self._read()
            .execute(f"SELECT {', '.join(columns)} FROM events WHERE item_id != '' ORDER BY occurred_at, seq")
            .fetchall()
        )

    def account_ids(self, limit: int) -> list[str]:
        rows = self._read().execute(
            "SELECT DISTINCT value_key FROM identifiers WHERE kind='CUSTOMER_ID' ORDER BY value_key LIMIT ?",
            (limit,),
        )
        return [r[0] for r in rows]
