"""Consent as stored: one decision per customer, channel and purpose; "ALL" stands for every channel.

The one place that reads a decision, so that the channel rules (models/serving/channel_rules.py) and the privacy
service (models/privacy/rights.py) can never disagree on what a customer allowed.
"""

from __future__ import annotations

import sqlite3

PURPOSES = ("marketing", "profiling")
ALL_CHANNELS = "ALL"  # stored channel of a decision that covers every channel


def decision(conn: sqlite3.Connection, customer_id: str, channel: str, purpose: str) -> bool | None:
    """The customer's decision for `purpose` in `channel`: their decision for that channel, else their
    decision for every channel, else None (nothing recorded: the caller's default applies)."""
    rows = dict(
        conn.execute(
            "SELECT channel, granted FROM consent WHERE customer_id=? AND purpose=? AND channel IN (?, ?)",
            (customer_id, purpose, channel or ALL_CHANNELS, ALL_CHANNELS),
        ).fetchall()
    )
    decided = rows.get(channel, rows.get(ALL_CHANNELS))
    return None if decided is None else bool(decided)
