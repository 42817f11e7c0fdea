"""Storage interface: the catalogue: items, stock per store, accessory links, the catalogue version."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from models.domain import Item


@dataclass(frozen=True)
class Novelty:
    """What makes an item new (models/serving/exploration.py): when it arrived and how many customers
    have interacted with it since."""

    item_id: str
    first_seen_at: float  # its first upsert (kept across whole and partial upserts)
    first_event_at: float | None  # its oldest event of any type (an imported history predates the upsert)
    customers: int  # distinct customers with a counted event up to a time (0 when first_event_at is old)


class CatalogStorage(ABC):
    """The catalogue: items, stock per store, accessory links, the catalogue version."""

    @abstractmethod
    def upsert_items(self, items: Sequence[Item], now: float) -> int:
        """Writes the items whole (stock and accessory links replaced) and moves the version, atomically."""

    @abstractmethod
    def first_seen(self) -> dict[str, float]:
        """item_id -> when it was first upserted, for every item (later upserts keep it)."""

    @abstractmethod
    def known_item_ids(self, item_ids: Sequence[str]) -> set[str]:
        """The ids of `item_ids` the catalogue holds."""

    @abstractmethod
    def item_novelty(self, since: float, types: Sequence[str], until: float) -> list[Novelty]:
        """Every item first upserted at `since` or later, by item_id: when it arrived, its oldest event,
        and how many customers have an event of one of `types` on it dated `until` or earlier (what a
        model trained up to `until` learned it from) — counted only when that oldest event is at
        `since` or later too (0 otherwise: an old item's imported history is not new)."""

    @abstractmethod
    def item(self, item_id: str) -> Item | None:
        """One item with its stock, or None when the catalogue has no such item."""

    @abstractmethod
    def all_items(self) -> list[Item]:
        """Every item with its stock, by item_id."""

    @abstractmethod
    def catalog_version(self) -> int:
        """A number every upsert moves on: serving rebuilds its snapshot when it changes."""
