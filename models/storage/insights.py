"""Storage interface: the reads of reports, attribution, the call-centre profile and reminders."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ServedRow:
    """One recommendation served (the log attribution and the reports read)."""

    recommendation_id: str
    customer_id: str
    channel: str
    placement: str
    items: tuple[str, ...]
    arm: str
    served_at: float


@dataclass(frozen=True, slots=True)
class EventRow:
    """The columns of an event the reports need."""

    customer_id: str
    type: str
    channel: str
    item_id: str
    price: float
    quantity: int
    recommendation_id: str
    occurred_at: float


@dataclass(frozen=True, slots=True)
class TimelineRow:
    seq: int
    event_id: str
    channel: str
    type: str
    item_id: str
    store_id: str
    occurred_at: float


@dataclass(frozen=True, slots=True)
class PurchaseRow:
    item_id: str
    channel: str
    store_id: str
    order_id: str
    quantity: int
    price: float
    occurred_at: float


@dataclass(slots=True)
class CustomerActivity:
    """What the call-centre page shows of a customer's history, read in one snapshot."""

    channels: list[tuple[str, int, float]] = field(default_factory=list)  # (channel, events, last time)
    purchases: list[PurchaseRow] = field(default_factory=list)  # newest first
    email: dict[str, tuple[int, float]] = field(default_factory=dict)  # type -> (count, last time)
    first_seen: float | None = None
    last_seen: float | None = None
    timeline: list[TimelineRow] = field(default_factory=list)  # newest first


class InsightsStorage(ABC):
    """The reads of reports, attribution, the call-centre profile and reminders."""

    @abstractmethod
    def served_between(self, start: float, end: float) -> list[ServedRow]:
        """Recommendations served in [start, end)."""

    @abstractmethod
    def events_between(self, types: Sequence[str], start: float, end: float) -> list[EventRow]:
        """Events of these types in [start, end), in the order they happened."""

    @abstractmethod
    def customer_activity(
        self, customer_id: str, purchases: int, timeline: int, after: tuple[float, int] | None
    ) -> CustomerActivity:
        """Channel use, the newest `purchases`, e-mail counts and `timeline` events older than `after`
        (occurred_at, seq), all from one consistent snapshot."""

    # -- reminders (story 4) ----------------------------------------------------------------------

    @abstractmethod
    def first_purchase_since(self, since: float) -> float | None:
        """The time of the first purchase at or after `since`."""

    @abstractmethod
    def category_seasonality(
        self, seasons: Sequence[tuple[float, float]], start: float, until: float
    ) -> list[tuple[str, int, int]]:
        """(category, purchases inside the seasons, all purchases) over purchases in [start, until]."""

    @abstractmethod
    def purchases_in(self, seasons: Sequence[tuple[float, float]]) -> list[tuple[str, str, float]]:
        """(customer, item, time) of purchases inside any season, by customer then newest first."""

    @abstractmethod
    def customer_purchases_between(
        self, customer_id: str, start: float, end: float
    ) -> list[tuple[str, float]]:
        """(item, time) of one customer's purchases in [start, end]."""

    @abstractmethod
    def category_purchases(self, until: float) -> list[tuple[str, str, float]]:
        """(customer, category, time) of every purchase of a catalogued item up to a time, by customer,
        category, time (what personal occasions are learned from)."""

    @abstractmethod
    def item_purchases(self, until: float) -> list[tuple[str, str, float]]:
        """(customer, item, time) of every purchase up to a time, by customer, item, time."""

    @abstractmethod
    def item_purchase_gaps(self, until: float) -> list[tuple[str, float]]:
        """(item, gap) between consecutive purchases of an item by the same customer, up to a time."""

    # -- offline evaluation and the traffic simulator ----------------------------------------------

    @abstractmethod
    def item_events(self, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """Every event that names an item, oldest first, as rows of the named event columns."""

    @abstractmethod
    def account_ids(self, limit: int) -> list[str]:
        """Customer-account ids (CUSTOMER_ID identifiers) in order, at most `limit`."""
