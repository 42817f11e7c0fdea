"""SQLite: the serving part of the storage interface (models/storage/serving.py).

The customer state is one statement: a CTE resolves the customer, then UNION ALL of tagged rows
(aliases, purchases and returns, recent item events, consent, items mailed). Plain SQL that
PostgreSQL runs as well (typed NULLs, a subquery for the bounded recent events).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from models.storage.rows import customer_record
from models.storage.serving import CustomerRecord, ServedRecommendation, StateWindow
from models.storage.sqlite.base import SqliteBase

# The customer of an identifier node (a shared device recognises no one) or of a customer id.
_BY_NODE = "SELECT customer_id FROM identifiers WHERE kind = ? AND value_key = ? AND shared = 0"
_BY_ID = "SELECT customer_id FROM customers WHERE customer_id = ?"
_WHO = "(SELECT customer_id FROM who)"

# Every branch yields (tag, text a, text b, time, number).
_CUSTOMER = (
    "SELECT 'customer' AS tag, customer_id AS a, CAST(NULL AS TEXT) AS b, CAST(NULL AS REAL) AS t,"
    " CAST(NULL AS INTEGER) AS n FROM who"
)
_ALIASES = f"SELECT 'alias', merged_id, NULL, merged_at, NULL FROM customer_merges WHERE customer_id = {_WHO}"
_HISTORY = (
    "SELECT 'history', item_id, type, MAX(occurred_at), COUNT(*) FROM events"
    f" WHERE customer_id = {_WHO} AND type IN ('PURCHASE', 'RETURN') GROUP BY item_id, type"
)
# What the customer did, not what was shown to them: impressions and mails sent (one per item on a
# page or in a mail) would push their views and carts out of the bounded window.
_RECENT = (
    "SELECT 'recent', item_id, type, occurred_at, seq FROM (SELECT item_id, type, occurred_at, seq"
    f" FROM events WHERE customer_id = {_WHO} AND occurred_at >= ? AND item_id != ''"
    " AND type NOT IN ('IMPRESSION', 'EMAIL_SENT')"
    " ORDER BY occurred_at DESC, seq DESC LIMIT ?) AS recent"
)
_CONSENT = f"SELECT 'consent', channel, purpose, NULL, granted FROM consent WHERE customer_id = {_WHO}"
# Mailed: the item of an EMAIL_SENT event, the items of the recommendation it quotes, and the
# EMAIL recommendations served in [since, served_before).
_MAILED = (
    "SELECT 'mailed', item_id, NULL, NULL, NULL FROM events"
    " WHERE customer_id = {who} AND type = 'EMAIL_SENT' AND occurred_at >= ? AND item_id != ''"
    " UNION ALL SELECT 'mailed_rec', items, NULL, NULL, NULL FROM recommendations"
    " WHERE recommendation_id IN (SELECT recommendation_id FROM events WHERE customer_id = {who}"
    " AND type = 'EMAIL_SENT' AND occurred_at >= ? AND recommendation_id != '')"
    " UNION ALL SELECT 'mailed_rec', items, NULL, NULL, NULL FROM recommendations"
    " WHERE customer_id = {who} AND channel = 'EMAIL' AND served_at >= ? AND served_at < ?"
)


class SqliteServing(SqliteBase):
    def customer_record(
        self, window: StateWindow, *, node: tuple[str, str] | None = None, customer_id: str | None = None
    ) -> CustomerRecord:
        if (node is None) == (customer_id is None):
            raise ValueError("customer_record: give exactly one of node and customer_id")
        args: list[Any] = list(node) if node is not None else [customer_id]
        parts = [_CUSTOMER, _ALIASES, _HISTORY, _CONSENT]
        if window.recent_since is not None:
            parts.append(_RECENT)
            args += [window.recent_since, window.recent_limit]
        if window.mailed_since is not None:
            parts.append(_MAILED.format(who=_WHO))
            args += [window.mailed_since, window.mailed_since, window.mailed_since, window.served_before]
        sql = f"WITH who AS ({_BY_NODE if node is not None else _BY_ID}) " + " UNION ALL ".join(parts)
        return customer_record(self._read().execute(sql, args).fetchall())

    def popularity(
        self,
        weights: Mapping[str, float],
        window: float,
        channel: str = "",
        store_id: str = "",
        limit: int = 500,
    ) -> list[tuple[str, float]]:
        weighted = [(t, float(w)) for t, w in sorted(weights.items()) if w > 0]
        if not weighted:
            return []
        case = "CASE type " + " ".join("WHEN ? THEN ?" for _ in weighted) + " ELSE 0 END"
        args: list[Any] = [v for pair in weighted for v in pair]
        where = "occurred_at >= (SELECT MAX(occurred_at) FROM events) - ? AND item_id != ''"
        where += f" AND type IN ({','.join('?' * len(weighted))})"
        args += [window, *(t for t, _ in weighted)]
        if store_id:
            where += " AND store_id = ?"
            args.append(store_id)
        elif channel:
            where += " AND channel = ?"
            args.append(channel)
        sql = (
            f"SELECT item_id, s FROM (SELECT item_id, SUM({case}) AS s FROM events WHERE {where}"
            " GROUP BY item_id) AS scored WHERE s > 0 ORDER BY s DESC, item_id LIMIT ?"
        )
        args.append(limit)
        return [(i, float(s)) for i, s in self._read().execute(sql, args)]

    def purchase_rows(self) -> Iterator[tuple[str, str, str, float]]:
        yield from self._read().execute(
            "SELECT customer_id, item_id, COALESCE(order_id, ''), occurred_at FROM events"
            " WHERE type = 'PURCHASE' AND item_id != '' ORDER BY customer_id, occurred_at"
        )

    def record_served(self, served: Sequence[ServedRecommendation]) -> None:
        if not served:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO recommendations (recommendation_id, customer_id, channel, placement,"
                " items, strategy, model_version, arm, served_at) VALUES (?,?,?,?,?,?,?,?,?)",
                [
                    (
                        s.recommendation_id,
                        s.customer_id,
                        s.channel,
                        s.placement,
                        json.dumps(s.item_ids),
                        s.strategy,
                        s.model_version,
                        s.arm,
                        s.served_at,
                    )
                    for s in served
                ],
            )
