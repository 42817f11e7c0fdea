"""SQLite: the customer state part of the storage interface (models/storage/customer_state.py)."""

from __future__ import annotations

from models.storage.sqlite.base import SqliteBase


class SqliteCustomerState(SqliteBase):
    pass
