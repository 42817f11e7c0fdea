"""A customer's scores over every item, kept for their next request while their vector is the same.

A Recommend of a known customer multiplies the whole item matrix by their vector (20k items x 49
float32: 3.9 MB read per request). That read is not only its own ~0.1-0.3 ms: it leaves nothing else
in the core's 2 MB L2, so every step after it (the ranking, the rules, the decoration) runs from
slower caches. Measured in one process on the 20k-item bench world (docs/performance.md): arranging a
ruled list took 17 us with warm caches and 64 us right after the product; a Recommend whose product
was kept from before took 554 us of CPU instead of 728, and the five rules' cost fell from 125 to 25 us.

The callers that ask again with the same vector are real: a web page shows several placements, each
one Recommend of the same customer; a till asks again at every item scanned into the basket; a shop
pages through a list. Their vector changes when their events after the model's data change (fold-in),
when they merge, or when the model or the catalogue changes — all part of the key, so a kept product
is never a stale one: the key is the vector's own bytes, with the model and the catalogue versions.

A kept product is shared, read-only: the one step that changes scores (the repurchase blend, for a
customer with a purchase due again) changes a copy of its own; for everyone else a request copies
nothing (a copy per request cost ~24 us of CPU per Recommend when every request was a first one).
Bounded in bytes (SEENEXT_SCORE_CACHE_MB), least recently used out first; a Forget empties it (what
was derived from a forgotten customer's vector leaves memory with the vector). Off at 0.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

Key = tuple[str, int, bytes]  # (model version, catalogue version, the user vector's bytes)


class ScoreCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self._entries: OrderedDict[Key, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def product(
        self, scoring: np.ndarray, user: np.ndarray, model_version: str, catalog_version: int
    ) -> np.ndarray:
        """`scoring @ user`. A kept array is shared by every request of that vector, so it is read-only:
        a caller that changes scores (the repurchase blend) changes a copy of its own; a writeable
        array (off, or too large to keep) is the caller's own temporary."""
        if not self.max_bytes:
            fresh: np.ndarray = scoring @ user
            return fresh
        key = (model_version, catalog_version, user.tobytes())
        with self._lock:
            kept = self._entries.get(key)
            if kept is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return kept
        scores: np.ndarray = scoring @ user
        size = scores.nbytes + len(key[2])
        if size > self.max_bytes:
            with self._lock:
                self.misses += 1
            return scores
        scores.flags.writeable = False
        with self._lock:
            self.misses += 1
            if key not in self._entries:
                self._entries[key] = scores
                self._bytes += size
                while self._bytes > self.max_bytes:
                    (_, _, old), dropped = self._entries.popitem(last=False)
                    self._bytes -= dropped.nbytes + len(old)
        return scores

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
