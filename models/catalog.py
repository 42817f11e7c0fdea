"""The catalogue: items with features, accessory links, stock per store and offers.

Serving reads a `CatalogSnapshot` held in memory; it is rebuilt when the catalogue version in
the database moves (an upsert here at once; one in another serving process within about a second).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from models.domain import Item
from models.errors import NotFound
from models.storage import Storage
from models.validation import (
    MAX_ID_LENGTH,
    check_batch_size,
    check_items,
    check_text,
    check_update_mask,
    quote,
)

log = logging.getLogger(__name__)


class Catalog:
    def __init__(self, storage: Storage, refresh_seconds: float = 1.0) -> None:
        self.storage = storage
        self.refresh_seconds = refresh_seconds
        self._snapshot: CatalogSnapshot | None = None
        self._stale = True  # an upsert of this process: the next snapshot() reads the catalogue itself
        self._checked_at = 0.0
        self._checking = False
        self._lock = threading.Lock()

    def upsert(self, items: Sequence[Item], update_mask: Sequence[str] = ()) -> int:
        """Writes whole items, or with a mask only the named fields of items that exist (the rest is
        read and kept in the same transaction, so two partial updates never undo each other)."""
        if not update_mask:
            check_items(items)  # 1 to 10,000 valid items, each item_id once
            n = self.storage.upsert_items(items, time.time())
        else:
            paths = check_update_mask(update_mask)
            check_batch_size(len(items), "items", "item")
            with self.storage.transaction():
                merged = []
                for i, partial in enumerate(items):
                    check_text(partial.item_id, f"items[{i}].item_id", MAX_ID_LENGTH)
                    stored = self.storage.item(partial.item_id)
                    if stored is None:
                        raise NotFound(
                            f"items[{i}].item_id: no item {quote(partial.item_id)} to update; "
                            "send it without update_mask to create it"
                        )
                    merged.append(dataclasses.replace(stored, **{p: getattr(partial, p) for p in paths}))
                check_items(merged)
                n = self.storage.upsert_items(merged, time.time())
        self._stale = True  # let the next snapshot() see it at once
        return n

    def get(self, item_id: str) -> Item:
        item = self.storage.item(item_id)
        if item is None:
            raise NotFound(f"item_id: no item {item_id!r} in the catalogue")
        return item

    def all_items(self) -> list[Item]:
        return self.storage.all_items()

    def version(self) -> int:
        return self.storage.catalog_version()

    def snapshot(self) -> CatalogSnapshot:
        """The in-memory view serving uses. Requests do not read the database for it (but the first
        one after an upsert of this process): a background check follows other processes' upserts,
        at most once per refresh period."""
        snap = self._snapshot
        if snap is None or self._stale:
            return self._reload()
        if time.monotonic() - self._checked_at >= self.refresh_seconds:
            self._check_later()
        return snap

    def _reload(self) -> CatalogSnapshot:
        """Reads the version, and the catalogue when the version moved (or nothing was read yet)."""
        with self._lock:
            self._stale = False
            checked = time.monotonic()
            version = self.version()
            if self._snapshot is None or self._snapshot.version != version:
                self._snapshot = CatalogSnapshot.build(self.all_items(), version)
            self._checked_at = checked
            return self._snapshot

    def _check_later(self) -> None:
        with self._lock:
            if self._checking:
                return
            self._checking = True
            self._checked_at = time.monotonic()  # one check per period, however many requests ask

        def run() -> None:
            try:
                self._reload()
            except Exception:  # serving keeps the snapshot it has; the next period tries again
                log.exception("could not check the catalogue version")
            finally:
                self._checking = False

        threading.Thread(target=run, name="catalog-check", daemon=True).start()


@dataclass(frozen=True)
class CatalogSnapshot:
    version: int
    items: dict[str, Item]
    # item_id -> the items that are accessories of it
    accessories_of: dict[str, tuple[str, ...]]

    @classmethod
    def build(cls, items: list[Item], version: int) -> CatalogSnapshot:
        acc: dict[str, list[str]] = {}
        for it in items:
            for main in it.accessory_for:
                acc.setdefault(main, []).append(it.item_id)
        return cls(version, {it.item_id: it for it in items}, {k: tuple(v) for k, v in acc.items()})

    def in_stock(self, item_id: str, store_id: str) -> bool:
        """Unknown stock counts as available: a catalogue without stock data filters nothing."""
        item = self.items.get(item_id)
        if item is None or not item.stock:
            return True
        return item.stock.get(store_id, 0) > 0
