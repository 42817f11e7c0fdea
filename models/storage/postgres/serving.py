"""PostgreSQL: the serving part of the storage interface (models/storage/serving.py).

The customer state is one statement, as on SQLite: a CTE resolves the customer, then UNION ALL of
tagged rows (aliases, purchases and returns, recent item events, consent, items mailed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from models.storage.postgres.base import PostgresBase
from models.storage.rows import customer_record
from models.storage.serving import CustomerRecord, ServedRecommendation, StateWindow

# The customer of an identifier node (a shared device recognises no one) or of a customer id.
_BY_NODE = "SELECT customer_id FROM identifiers WHERE kind = %s AND value_key = %s AND shared = 0"
_BY_ID = "SELECT customer_id FROM customers WHERE customer_id = %s"
_WHO = "(SELECT customer_id FROM who)"

# Every branch yields (tag, text a, text b, time, number).
_CUSTOMER = (
    "SELECT 'customer'::text AS tag, customer_id AS a, CAST(NULL AS TEXT) AS b,"
    " CAST(NULL AS DOUBLE PRECISION) AS t, CAST(NULL AS BIGINT) AS n FROM who"
)
_ALIASES = f"SELECT 'alias', merged_id, NULL, merged_at, NULL FROM customer_merges WHERE customer_id = {_WHO}"
_HISTORY = (
    "SELECT 'history', item_id, type, MAX(occurred_at), COUNT(*) FROM events"
    f" WHERE customer_id = {_WHO} AND type IN ('PURCHASE', 'RETURN') GROUP BY item_id, type"
)
# What the customer did, not what was shown to them (models/storage/sqlite/serving.py says why).
_RECENT = (
    "SELECT 'recent', item_id, type, occurred_at, seq FROM (SELECT item_id, type, occurred_at, seq"
    f" FROM events WHERE customer_id = {_WHO} AND occurred_at >= %s AND item_id != ''"
    " AND type NOT IN ('IMPRESSION', 'EMAIL_SENT')"
    " ORDER BY occurred_at DESC, seq DESC LIMIT %s) AS recent"
)
_CONSENT = f"SELECT 'consent', channel, purpose, NULL, granted FROM consent WHERE customer_id = {_WHO}"
_MAILED = (
    "SELECT 'mailed', item_id, NULL, NULL, NULL FROM events"
    " WHERE customer_id = {who} AND type = 'EMAIL_SENT' AND occurred_at >= %s AND item_id != ''"
    " UNION ALL SELECT 'mailed_rec', items, NULL, NULL, NULL FROM recommendations"
    " WHERE recommendation_id IN (SELECT recommendation_id FROM events WHERE customer_id = {who}"
    " AND type = 'EMAIL_SENT' AND occurred_at >= %s AND recommendation_id != '')"
    " UNION ALL SELECT 'mailed_rec', items, NULL, NULL, NULL FROM recommendations"
    " WHERE customer_id = {who} AND channel = 'EMAIL' AND served_at >= %s AND served_at < %s"
)


class PostgresServing(PostgresBase):
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
        return customer_record(self._rows(sql, args))

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
        case = "CASE type " + " ".join("WHEN %s THEN %s::float8" for _ in weighted) + " ELSE 0 END"
        args: list[Any] = [v for pair in weighted for v in pair]
        where = (
            "occurred_at >= (SELECT MAX(occurred_at) FROM events) - %s AND item_id != '' AND type = ANY(%s)"
        )
        args += [window, [t for t, _ in weighted]]
        if store_id:
            where += " AND store_id = %s"
            args.append(store_id)
        elif channel:
            where += " AND channel = %s"
            args.append(channel)
        sql = (
            f"SELECT item_id, s FROM (SELECT item_id, SUM({case}) AS s FROM events WHERE {where}"
            " GROUP BY item_id) AS scored WHERE s > 0 ORDER BY s DESC, item_id LIMIT %s"
        )
        args.append(limit)
        return [(i, float(s)) for i, s in self._rows(sql, args)]

    def purchase_rows(self) -> Iterator[tuple[str, str, str, float]]:
        rows = self._rows(
            "SELECT customer_id, item_id, COALESCE(order_id, ''), occurred_at FROM events"
            " WHERE type = 'PURCHASE' AND item_id != '' ORDER BY customer_id, occurred_at"
        )
        for c, i, o, t in rows:
            yield str(c), str(i), str(o), float(t)

    def record_served(self, served: Sequence[ServedRecommendation]) -> None:
        if not served:
            return
        with self._write() as conn:
            self._many(
                conn,
                "INSERT INTO recommendations (recommendation_id, customer_id, channel, placement, items,"
                " strategy, model_version, arm, served_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (recommendation_id) DO UPDATE SET customer_id = excluded.customer_id,"
                " channel = excluded.channel, placement = excluded.placement, items = excluded.items,"
                " strategy = excluded.strategy, model_version = excluded.model_version, arm = excluded.arm,"
                " served_at = excluded.served_at",
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
