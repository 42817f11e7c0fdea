"""Storage interface: the event log — idempotent inserts, a customer's history, the training log."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple


class EventRow(NamedTuple):
    """One event as the log keeps it, its identifiers already resolved to `customer_id`, its fields in
    the order of the table's columns (models/storage/rows.py EVENT_COLUMNS). A named tuple, not a
    dataclass: a batch builds one per event, and a frozen dataclass of 13 fields took ~3 us to make
    (issue 11), while a backend can send the tuple as it is."""

    event_id: str
    customer_id: str
    channel: str
    type: str
    item_id: str
    quantity: int
    price: float
    store_id: str
    order_id: str
    recommendation_id: str
    occurred_at: float
    received_at: float
    # The event's attributes, or their JSON text already made by `models.storage.rows.attributes_json`
    # (TrackBatch encodes them before it takes the writers' lock, so the lock is not held for it).
    attributes: Mapping[str, str] | str | None


class PurchaseCount(NamedTuple):
    """A customer's PURCHASE or RETURN events of one item: the newest time and how many."""

    item_id: str
    type: str
    last_at: float
    times: int


class RecentItem(NamedTuple):
    item_id: str
    type: str
    occurred_at: float


@dataclass(frozen=True, slots=True)
class InteractionColumns:
    """The item events of the log as parallel columns (the dataset builder turns them into arrays)."""

    customer_id: Sequence[str]
    item_id: Sequence[str]
    type: Sequence[str]
    channel: Sequence[str]
    occurred_at: Sequence[float]
    order_id: Sequence[str]


class EventStorage(ABC):
    """The event log: idempotent inserts by event_id, a customer's history, the log for training."""

    @abstractmethod
    def stored_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """The ids of the list that the log already holds (a retried batch's duplicates)."""

    @abstractmethod
    def insert_new_events(self, rows: Sequence[EventRow]) -> int:
        """Appends rows whose event_ids `stored_event_ids` found unstored in this same write transaction
        (so no writer can have stored them since), no two alike: the bulk path of a batch (PostgreSQL:
        COPY). Returns how many were added. A stored id must not be passed: PostgreSQL fails the write
        (and the transaction) on it, SQLite skips it."""

    @abstractmethod
    def event_customer(self, event_id: str) -> str | None:
        """The customer an event was stored for; None if no such event."""

    @abstractmethod
    def event_count(self) -> int:
        """Every event stored."""

    @abstractmethod
    def newest_event_time(self) -> float | None:
        """The latest `occurred_at` of the log; None when it is empty."""

    @abstractmethod
    def interaction_columns(self, until: float | None = None) -> InteractionColumns:
        """Every event that carries an item (optionally only those before `until`); no order is promised."""

    @abstractmethod
    def purchase_counts(self, customer_id: str) -> list[PurchaseCount]:
        """The customer's PURCHASE and RETURN events grouped by item and type."""
