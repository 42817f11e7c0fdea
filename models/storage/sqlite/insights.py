"""SQLite: the insights part of the storage interface (models/storage/insights.py)."""

from __future__ import annotations

from models.storage.sqlite.base import SqliteBase


class SqliteInsights(SqliteBase):
    pass
