"""Storage interface: the catalogue: items, stock per store, accessory links, the catalogue version."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from models.domain import Item


class CatalogStorage(ABC):
    """The catalogue: items, stock per store, accessory links, the catalogue version."""

    @abstractmethod
    def upsert_items(self, items: Sequence[Item], now: float) -> int:
        """Writes the items whole (stock and accessory links replaced) and moves the version, atomically."""

    @abstractmethod
    def item(self, item_id: str) -> Item | None:
        """One item with its stock, or None when the catalogue has no such item."""

    @abstractmethod
    def all_items(self) -> list[Item]:
        """Every item with its stock, by item_id."""

    @abstractmethod
    def catalog_version(self) -> int:
        """A number every upsert moves on: serving rebuilds its snapshot when it changes."""
