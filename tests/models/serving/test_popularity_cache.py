"""The popularity cache is keyed by the request's store id: a caller must not be able to grow it."""

from __future__ import annotations

from pathlib import Path

from models.serving.popularity import MAX_CACHED, Popularity
from models.storage import open_storage


def test_made_up_store_ids_do_not_grow_the_cache(tmp_path: Path) -> None:
    """Found by the fuzz campaign (issue 10, memory): every fuzzed Recommend with a new store_id added
    a cached list that was never dropped."""
    storage = open_storage(tmp_path / "p.db", sync_full=False)
    try:
        popularity = Popularity(storage, window_days=30)
        for n in range(MAX_CACHED + 50):
            assert popularity.top(store_id=f"made-up-{n}") == []
        assert len(popularity._cache) == MAX_CACHED
        assert popularity.top("WEB") == [] and len(popularity._cache) == MAX_CACHED
    finally:
        storage.close()
