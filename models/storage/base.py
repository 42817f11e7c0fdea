"""The storage interface: every read and write of the database, as typed methods.

One `Storage` is what the domain gets; it is composed of one interface per concern (events,
identity, catalogue, privacy, insights, serving, the change feed, merchandising), each in its own module
beside this one. A backend (SQLite in `sqlite/`, PostgreSQL later) implements all of them;
callers never see SQL, a connection or a cursor.

Transactions: `with storage.transaction():` makes every storage call of this thread inside the
block one transaction (committed at the end, rolled back on an exception). A write outside such
a block is a transaction of its own. Reads inside a block see the block's writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from models.storage.catalog import CatalogStorage
from models.storage.changes import ChangeStorage
from models.storage.events import EventStorage
from models.storage.identity import IdentityStorage
from models.storage.insights import InsightsStorage
from models.storage.merchandising import MerchandisingStorage
from models.storage.privacy import PrivacyStorage
from models.storage.serving import ServingStorage


class Storage(
    EventStorage,
    IdentityStorage,
    CatalogStorage,
    PrivacyStorage,
    InsightsStorage,
    ServingStorage,
    ChangeStorage,
    MerchandisingStorage,
    ABC,
):
    """Everything the service keeps, behind one interface (see the module docstring)."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Every storage call of this thread inside the block is one transaction."""

    @abstractmethod
    def meta(self, key: str) -> str | None:
        """A value of the store's own key-value table (schema version, catalogue version, key check)."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abstractmethod
    def schema_version(self) -> int:
        """The newest migration applied to this database."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def count_statements(self) -> AbstractContextManager[list[str]]:
        """The statements this thread sends to the database inside the block (tests count reads)."""

    def pool_figures(self) -> dict[str, float]:
        """The connection pool's use, for the metrics endpoint: `db_pool_size` (connections it may
        hold), `db_pool_in_use` (lent out now), `db_pool_waiting` (requests waiting for one); empty for
        a backend without a pool (SQLite: one writer and a reader per thread)."""
        return {}


def chunks(values: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """Slices of a long id list, for `IN (...)` lists under every backend's parameter limit."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
