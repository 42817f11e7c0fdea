"""SQLite: the serving part of the storage interface (models/storage/serving.py)."""

from __future__ import annotations

from models.storage.sqlite.base import SqliteBase


class SqliteServing(SqliteBase):
    pass
