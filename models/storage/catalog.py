"""Storage interface: the catalogue: items, stock per store, accessory links, the catalogue version."""

from __future__ import annotations

from abc import ABC


class CatalogStorage(ABC):  # noqa: B024 (methods are added per concern)
    """The catalogue: items, stock per store, accessory links, the catalogue version."""
