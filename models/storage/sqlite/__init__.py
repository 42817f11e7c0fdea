"""The embedded default backend: one SQLite file in the data folder (WAL, sqlite-utils for the schema)."""

from __future__ import annotations

from models.storage.base import Storage
from models.storage.sqlite.catalog import SqliteCatalog
from models.storage.sqlite.changes import SqliteChanges
from models.storage.sqlite.events import SqliteEvents
from models.storage.sqlite.identity import SqliteIdentity
from models.storage.sqlite.insights import SqliteInsights
from models.storage.sqlite.merchandising import SqliteMerchandising
from models.storage.sqlite.privacy import SqlitePrivacy
from models.storage.sqlite.serving import SqliteServing


class SqliteStorage(
    SqliteEvents,
    SqliteIdentity,
    SqliteCatalog,
    SqlitePrivacy,
    SqliteInsights,
    SqliteServing,
    SqliteChanges,
    SqliteMerchandising,
    Storage,
):
    """Every storage concern over one SQLite file; the mixins share `SqliteBase`'s connections."""
