"""The shared backend of a fleet: one PostgreSQL database (psycopg 3, a connection pool per process).

Chosen by SEENEXT_DATABASE_URL=postgresql://…; the same numbered migrations as SQLite's create and
upgrade its schema (migrations.py); one writer at a time across every process and host through an
advisory lock taken by each write transaction (base.py says why).
"""

from __future__ import annotations

from models.storage.base import Storage
from models.storage.postgres.catalog import PostgresCatalog
from models.storage.postgres.changes import PostgresChanges
from models.storage.postgres.events import PostgresEvents
from models.storage.postgres.identity import PostgresIdentity
from models.storage.postgres.insights import PostgresInsights
from models.storage.postgres.merchandising import PostgresMerchandising
from models.storage.postgres.privacy import PostgresPrivacy
from models.storage.postgres.serving import PostgresServing


class PostgresStorage(
    PostgresEvents,
    PostgresIdentity,
    PostgresCatalog,
    PostgresPrivacy,
    PostgresInsights,
    PostgresServing,
    PostgresChanges,
    PostgresMerchandising,
    Storage,
):
    """Every storage concern over one PostgreSQL database; the mixins share `PostgresBase`'s pool."""
