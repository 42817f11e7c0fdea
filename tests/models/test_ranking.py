"""Ranking: partial sort with filters, placement of new items from their features."""

from __future__ import annotations

import numpy as np

from models.catalog import CatalogSnapshot
from models.domain import Item
from models.ranking import top_items
from models.service import Seenext


def test_top_items_orders_filters_and_excludes() -> None:
    ids = np.array([f"i{n}" for n in range(100)], dtype=object)
    scores = np.arange(100, dtype=np.float32)
    got = list(top_items(ids, scores, 3, allowed=lambda i: i != "i98", exclude_rows=[99]))
    assert [i for i, _ in got] == ["i97", "i96", "i95"]


def test_top_items_widens_when_filters_reject_most() -> None:
    ids = np.array([f"i{n}" for n in range(1000)], dtype=object)
    scores = np.random.default_rng(1).random(1000).astype(np.float32)
    keep = {f"i{n}" for n in range(0, 1000, 97)}
    got = list(top_items(ids, scores, 5, allowed=lambda i: i in keep))
    expected = sorted(keep, key=lambda i: -scores[int(i[1:])])[:5]
    assert [i for i, _ in got] == expected


def test_top_items_returns_fewer_when_not_enough_are_allowed() -> None:
    ids = np.array(["a", "b", "c"], dtype=object)
    assert [i for i, _ in top_items(ids, np.ones(3, dtype=np.float32), 10, allowed=lambda i: i != "b")] == ["a", "c"]


def test_new_catalogue_item_is_placed_from_its_features(trained: Seenext) -> None:
    model = trained.registry.current
    assert model is not None
    trained.upsert_items([Item("flowers-new", category="flowers", brand="bloom", price=33)])
    space = model.items(trained.catalog.snapshot())
    assert "flowers-new" in space.from_features
    sims = model.similarity(space, [space.index["flowers-new"]])
    nearest = [space.ids[j] for j in np.argsort(-sims)[1:6]]
    assert sum(i.startswith("flowers-") for i in nearest) >= 4, nearest


def test_item_without_known_features_waits_for_training(trained: Seenext) -> None:
    model = trained.registry.current
    assert model is not None
    snap = CatalogSnapshot.build([Item("mystery", category="never seen")], version=999)
    assert "mystery" not in model.items(snap).index
