"""PostgreSQL: the insights part of the storage interface (models/storage/insights.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from models.storage.insights import CustomerActivity, EventRow, PurchaseRow, ServedRow, TimelineRow
from models.storage.postgres.base import Conn, PostgresBase
from models.storage.rows import READABLE_EVENT_COLUMNS

_EMAIL_TYPES = ["EMAIL_SENT", "EMAIL_OPEN", "EMAIL_CLICK"]


class PostgresInsights(PostgresBase):
    def served_between(self, start: float, end: float) -> list[ServedRow]:
        rows = self._rows(
            "SELECT recommendation_id, customer_id, channel, placement, items, arm, served_at"
            " FROM recommendations WHERE served_at >= %s AND served_at < %s",
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
        rows = self._rows(
            "SELECT customer_id, type, channel, item_id, price, quantity, recommendation_id, occurred_at"
            " FROM events WHERE type = ANY(%s) AND occurred_at >= %s AND occurred_at < %s"
            " ORDER BY occurred_at, seq",
            (list(types), start, end),
        )
        return [
            EventRow(c, t, ch, i or "", float(p or 0.0), int(q or 1), r or "", float(at))
            for c, t, ch, i, p, q, r, at in rows
        ]

    @contextmanager
    def _snapshot(self) -> Iterator[Conn]:
        """One read snapshot: the thread's transaction, or a repeatable-read one of its own."""
        if getattr(self._local, "tx", None) is not None:
            with self._reading() as conn:
                yield conn
            return
        with self._reading_outside() as conn:
            self._run(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield conn
            finally:
                if not conn.closed:
                    conn.execute("COMMIT")

    def customer_activity(
        self, customer_id: str, purchases: int, timeline: int, after: tuple[float, int] | None
    ) -> CustomerActivity:
        out = CustomerActivity()
        with self._snapshot() as conn:  # counts, purchases and timeline agree with each other
            out.channels = [
                (c, int(n), float(t))
                for c, n, t in self._run(
                    conn,
                    "SELECT channel, COUNT(*), MAX(occurred_at) FROM events WHERE customer_id = %s"
                    " GROUP BY channel ORDER BY COUNT(*) DESC, channel",
                    (customer_id,),
                )
            ]
            out.purchases = [
                PurchaseRow(i, c, s or "", o or "", int(q or 1), float(p or 0.0), float(t))
                for i, c, s, o, q, p, t in self._run(
                    conn,
                    "SELECT item_id, channel, store_id, order_id, quantity, price, occurred_at FROM events"
                    " WHERE customer_id = %s AND type = 'PURCHASE'"
                    " ORDER BY occurred_at DESC, seq DESC LIMIT %s",
                    (customer_id, purchases),
                )
            ]
            out.email = {
                t: (int(n), float(last))
                for t, n, last in self._run(
                    conn,
                    "SELECT type, COUNT(*), MAX(occurred_at) FROM events WHERE customer_id = %s"
                    " AND type = ANY(%s) GROUP BY type",
                    (customer_id, _EMAIL_TYPES),
                )
            }
            bounds = self._run(
                conn,
                "SELECT MIN(occurred_at), MAX(occurred_at) FROM events WHERE customer_id = %s",
                (customer_id,),
            ).fetchone()
            out.first_seen, out.last_seen = bounds if bounds is not None else (None, None)
            sql = (
                "SELECT seq, event_id, channel, type, item_id, store_id, occurred_at FROM events"
                " WHERE customer_id = %s"
            )
            args: list[object] = [customer_id]
            if after is not None:
                sql += " AND (occurred_at < %s OR (occurred_at = %s AND seq < %s))"
                args += [after[0], after[0], after[1]]
            out.timeline = [
                TimelineRow(int(q), e, c, t, i or "", s or "", float(at))
                for q, e, c, t, i, s, at in self._run(
                    conn, sql + " ORDER BY occurred_at DESC, seq DESC LIMIT %s", (*args, timeline)
                )
            ]
        return out

    def first_purchase_since(self, since: float) -> float | None:
        row = self._one(
            "SELECT MIN(occurred_at) FROM events WHERE type = 'PURCHASE' AND occurred_at >= %s", (since,)
        )
        return None if row is None or row[0] is None else float(row[0])

    def category_seasonality(
        self, seasons: Sequence[tuple[float, float]], start: float, until: float
    ) -> list[tuple[str, int, int]]:
        in_season = " OR ".join("e.occurred_at BETWEEN %s AND %s" for _ in seasons) or "FALSE"
        rows = self._rows(
            f"SELECT i.category, SUM(CASE WHEN {in_season} THEN 1 ELSE 0 END), COUNT(*) FROM events e"
            " JOIN items i ON i.item_id = e.item_id WHERE e.type = 'PURCHASE'"
            " AND e.occurred_at BETWEEN %s AND %s GROUP BY i.category",
            [t for r in seasons for t in r] + [start, until],
        )
        return [(c or "", int(s), int(n)) for c, s, n in rows]

    def purchases_in(self, seasons: Sequence[tuple[float, float]]) -> list[tuple[str, str, float]]:
        where = " OR ".join("occurred_at BETWEEN %s AND %s" for _ in seasons) or "FALSE"
        rows = self._rows(
            f"SELECT customer_id, item_id, occurred_at FROM events WHERE type = 'PURCHASE' AND ({where})"
            " ORDER BY customer_id, occurred_at DESC",
            [t for r in seasons for t in r],
        )
        return [(c, i, float(t)) for c, i, t in rows]

    def customer_purchases_between(
        self, customer_id: str, start: float, end: float
    ) -> list[tuple[str, float]]:
        rows = self._rows(
            "SELECT item_id, occurred_at FROM events WHERE customer_id = %s AND type = 'PURCHASE'"
            " AND occurred_at BETWEEN %s AND %s",
            (customer_id, start, end),
        )
        return [(i, float(t)) for i, t in rows]

    def category_purchases(self, until: float) -> list[tuple[str, str, float]]:
        rows = self._rows(
            "SELECT e.customer_id, i.category, e.occurred_at FROM events e"
            " JOIN items i ON i.item_id = e.item_id"
            " WHERE e.type = 'PURCHASE' AND e.occurred_at <= %s AND i.category != ''"
            " ORDER BY e.customer_id, i.category, e.occurred_at",
            (until,),
        )
        return [(c, cat, float(t)) for c, cat, t in rows]

    def item_purchases(self, until: float) -> list[tuple[str, str, float]]:
        rows = self._rows(
            "SELECT customer_id, item_id, occurred_at FROM events"
            " WHERE type = 'PURCHASE' AND occurred_at <= %s AND item_id != ''"
            " ORDER BY customer_id, item_id, occurred_at",
            (until,),
        )
        return [(c, i, float(t)) for c, i, t in rows]

    def item_purchase_gaps(self, until: float) -> list[tuple[str, float]]:
        rows = self._rows(
            "SELECT item_id, occurred_at - LAG(occurred_at) OVER (PARTITION BY customer_id, item_id"
            " ORDER BY occurred_at) FROM events"
            " WHERE type = 'PURCHASE' AND occurred_at <= %s AND item_id != ''",
            (until,),
        )
        return [(i, float(g)) for i, g in rows if g is not None]

    def item_events(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        unknown = [c for c in columns if c not in READABLE_EVENT_COLUMNS]
        if unknown:
            raise ValueError(f"no event column {unknown[0]!r}")
        return self._rows(
            f"SELECT {', '.join(columns)} FROM events WHERE item_id != '' ORDER BY occurred_at, seq"
        )

    def account_ids(self, limit: int) -> list[str]:
        rows = self._rows(
            "SELECT DISTINCT value_key FROM identifiers WHERE kind = 'CUSTOMER_ID'"
            " ORDER BY value_key LIMIT %s",
            (limit,),
        )
        return [r[0] for r in rows]
