"""SQLite: the events part of the storage interface (models/storage/events.py)."""

from __future__ import annotations

from models.storage.sqlite.base import SqliteBase


class SqliteEvents(SqliteBase):
    pass
