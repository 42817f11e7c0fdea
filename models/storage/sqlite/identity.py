"""SQLite: the identity part of the storage interface (models/storage/identity.py)."""

from __future__ import annotations

from models.storage.sqlite.base import SqliteBase


class SqliteIdentity(SqliteBase):
    pass
