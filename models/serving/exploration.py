"""New items: a bounded share of a list to try what the model cannot judge yet (issue 9 point 7).

An item is **new** when it arrived lately and the model serving now has not learned it, as the data
says (no flag):

* it was first known at most `SEENEXT_NEW_ITEM_DAYS` (30) ago — the earlier of its first upsert
  (`items.first_seen_at`, kept by every later whole or partial upsert) and its oldest event, so that an
  old item whose history is imported today is not new;
* fewer than `SEENEXT_NEW_ITEM_CUSTOMERS` (1) customers have an event on it that the serving model was
  trained on (an event type that weighs in training, dated up to the newest event the model learned
  from): by default, until a training has seen anyone view, cart, wish or buy it.

Why the model and not a count of every interaction: items the model has learned, however thinly, are
ranked by what it learned; trying them as well costs what the offline evaluations measure. Counting
"fewer than 10 customers so far" instead made every long-tail film of MovieLens 100k new (first rated
in the history's last month): the 10-item list's last place went to one of them, and precision@10 fell
from 0.2246 to 0.2072 through the front door. A retailer who wants thinly learned items tried too
raises the setting.

New items get their own candidate source, `exploration`, with the reason `new_in`: ranked by the
customer's affinity where the model can place them (from their catalogue features), newest first where
it cannot. They take the **last** places of a list, at most `slots(k)` of them
(`SEENEXT_EXPLORATION_SHARE` of k rounded up, at most one place in four, none in a list shorter than
4). Outside those places a new item ranks only by the model — and an item the model has never seen,
scored from its catalogue features alone, is ranked after every item it has learned
(models/serving/ranking.py), so a feature-only score never takes a top place.

The table of new items is read once per model version and refreshed in the background every
`ttl_seconds` (an imported history may arrive after a read); an item upserted after the last read is
new by its first upsert alone. Nothing here is read per request.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.catalog import CatalogSnapshot
from models.domain import DAY
from models.serving.embeddings import RankingModel
from models.serving.foldin import reference_time
from models.storage import Storage
from models.storage.catalog import Novelty

log = logging.getLogger(__name__)

# A list shorter than this has no place for a new item; a longer one gives at most one in this many.
PLACES_PER_NEW_ITEM = 4


@dataclass(frozen=True)
class ExplorationPolicy:
    """The numbers behind exploration (from Settings)."""

    share: float = 0.1  # of a list's places, rounded up; at most one in four
    days: float = 30.0  # an item first known this recently may be new ...
    customers: int = 1  # ... while the serving model learned it from fewer customers than this


@dataclass(frozen=True)
class NewItem:
    item_id: str
    first_known: float  # the earlier of its first upsert and its oldest event


def slots(k: int, share: float) -> int:
    """How many of a list's k places new items may take: share x k rounded up, at most one in four
    (so a 4-item mail carries at most one, a 10-item page one at the default 0.1, a 20-item one two)."""
    if share <= 0 or k < PLACES_PER_NEW_ITEM:
        return 0
    return min(math.ceil(share * k - 1e-9), k // PLACES_PER_NEW_ITEM)


def new_items(
    first_seen: Mapping[str, float],
    novelty: Mapping[str, Novelty],
    policy: ExplorationPolicy,
    now: float,
) -> tuple[NewItem, ...]:
    """The new items of a catalogue, newest first (ties by id). `novelty` is what the store said about
    the items first upserted in the window when it was last read (a read covers every item that can
    still be new); an item upserted after that read has no entry and is judged by its first upsert
    alone (its events are counted at the next read)."""
    since = now - policy.days * DAY
    out: list[NewItem] = []
    for item_id, seen in first_seen.items():
        if seen < since:
            continue
        row = novelty.get(item_id)
        first = seen if row is None or row.first_event_at is None else min(seen, row.first_event_at)
        if first < since or (row is not None and row.customers >= policy.customers):
            continue
        out.append(NewItem(item_id, first))
    out.sort(key=lambda n: (-n.first_known, n.item_id))
    return tuple(out)


_serials = itertools.count(1)


@dataclass(frozen=True)
class _Table:
    key: str  # the version of the model it was read for
    serial: int  # which read this is (the derived list is rebuilt when it changes)
    read_at: float  # monotonic
    novelty: Mapping[str, Novelty]


class Exploration:
    """What is new now, for every request of this process (a storage read per model version, and in
    the background every `ttl_seconds`)."""

    def __init__(
        self,
        storage: Storage,
        policy: ExplorationPolicy,
        event_weights: Mapping[str, float],
        ttl_seconds: float = 60.0,
    ) -> None:
        self.storage = storage
        self.policy = policy
        self.types: Sequence[str] = sorted(t for t, w in event_weights.items() if w > 0)
        self.ttl = ttl_seconds
        self._table: _Table | None = None
        self._built: tuple[int, int, int] | None = None  # (catalogue version, table serial, minute)
        self._items: tuple[NewItem, ...] = ()
        self._lock = threading.Lock()
        self._refreshing = False

    def slots(self, k: int) -> int:
        return slots(k, self.policy.share)

    def new_items(
        self, snapshot: CatalogSnapshot, model: RankingModel | None, now: float | None = None
    ) -> tuple[NewItem, ...]:
        """The new items now, newest first; () when exploration is off or no model serves."""
        if self.policy.share <= 0 or model is None:
            return ()
        now = time.time() if now is None else now
        table = self._current(model, now)
        # recomputed when the catalogue or the table moved, and once a minute as items age out
        key = (snapshot.version, table.serial, int(now // 60))
        if self._built != key:
            items = new_items(snapshot.first_seen, table.novelty, self.policy, now)
            self._items, self._built = items, key
            return items
        return self._items

    def _current(self, model: RankingModel, now: float) -> _Table:
        table = self._table
        if table is None or table.key != model.version:
            with self._lock:
                table = self._table
                if table is None or table.key != model.version:
                    table = self._read(model, now)
                    self._table = table
            return table
        if time.monotonic() - table.read_at > self.ttl:
            self._refresh_later(model)
        return table

    def _read(self, model: RankingModel, now: float) -> _Table:
        since = now - self.policy.days * DAY
        rows = self.storage.item_novelty(since, self.types, reference_time(model))
        return _Table(model.version, next(_serials), time.monotonic(), {r.item_id: r for r in rows})

    def _refresh_later(self, model: RankingModel) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def run() -> None:
            try:
                table = self._read(model, time.time())
                with self._lock:
                    if self._table is None or self._table.key == model.version:
                        self._table = table
            except Exception:  # serving keeps the table it has; the next period tries again
                log.exception("could not read the new items")
            finally:
                with self._lock:
                    self._refreshing = False

        threading.Thread(target=run, name="exploration-refresh", daemon=True).start()
