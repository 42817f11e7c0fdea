"""Storage interface: what serving reads and writes — the customer state of one request (read at
once), popularity counts, co-purchase baskets, and the log of recommendations served."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class ItemEvent(NamedTuple):
    """One of a customer's item events, as fold-in reads it."""

    item_id: str
    type: str
    at: float


class Tally(NamedTuple):
    """How often a customer did something with an item, and when last."""

    last: float
    times: int


@dataclass(frozen=True)
class StateWindow:
    """Which parts of a customer's state to read (None: that part is not read)."""

    # the customer's own item events (impressions and mails sent left out), newest first:
    recent_since: float | None = None  # at or after this time ...
    recent_limit: int = 50  # ... at most this many
    mailed_since: float | None = None  # EMAIL_SENT events and EMAIL recommendations since this time ...
    served_before: float = math.inf  # ... the recommendations served before this time only


@dataclass(frozen=True)
class CustomerRecord:
    """Everything a request needs about one customer, as stored (see models/serving/customer_state.py)."""

    customer_id: str | None  # None: unknown identifier, or a device marked shared
    aliases: tuple[str, ...] = ()  # ids merged into this customer, oldest merge first
    purchases: Mapping[str, Tally] = field(default_factory=dict)  # item -> PURCHASE events
    returns: Mapping[str, Tally] = field(default_factory=dict)  # item -> RETURN events
    recent: tuple[ItemEvent, ...] = ()  # newest first
    consents: Mapping[tuple[str, str], bool] = field(default_factory=dict)  # (channel, purpose) -> granted
    mailed: frozenset[str] = frozenset()


@dataclass(slots=True)
class ServedRecommendation:
    """One recommendation answered, as logged for attribution and hold-out reports."""

    recommendation_id: str
    customer_id: str
    channel: str
    placement: str
    item_ids: list[str]
    strategy: str
    model_version: str
    arm: str
    served_at: float


class ServingStorage(ABC):
    """The customer state of a request, popularity, baskets for complements, the served log."""

    @abstractmethod
    def customer_record(
        self, window: StateWindow, *, node: tuple[str, str] | None = None, customer_id: str | None = None
    ) -> CustomerRecord:
        """The customer of an identifier node (kind, key) or of a customer id, read in one statement."""

    @abstractmethod
    def popularity(
        self,
        weights: Mapping[str, float],
        window: float,
        channel: str = "",
        store_id: str = "",
        limit: int = 500,
    ) -> list[tuple[str, float]]:
        """(item, weighted event count) best first over `window` seconds up to the newest event."""

    @abstractmethod
    def purchase_rows(self) -> Iterator[tuple[str, str, str, float]]:
        """(customer_id, item_id, order_id, occurred_at) of every purchase, by customer then time."""

    @abstractmethod
    def record_served(self, served: Sequence[ServedRecommendation]) -> None:
        """Logs recommendations answered (one transaction; a repeated id replaces its row)."""
