"""SQLite: the privacy part of the storage interface (models/storage/privacy.py)."""

from __future__ import annotations

from models.storage.sqlite.base import SqliteBase


class SqlitePrivacy(SqliteBase):
    pass
