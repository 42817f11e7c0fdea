"""Ranking model: placement of new items from their features."""

from __future__ import annotations

import numpy as np

from models.catalog import CatalogSnapshot
from models.domain import Item
from models.service import Seenext


def test_new_catalogue_item_is_placed_from_its_features(trained: Seenext) -> None:
    model = trained.serving_model
    assert model is not None
    trained.upsert_items([Item("flowers-new", category="flowers", brand="bloom", price=33)])
    space = model.items(trained.catalog_snapshot())
    assert "flowers-new" in space.from_features
    sims = model.similarity(space, [space.index["flowers-new"]])
    nearest = [space.ids[j] for j in np.argsort(-sims)[1:6]]
    assert sum(i.startswith("flowers-") for i in nearest) >= 4, nearest


def test_item_without_known_features_waits_for_training(trained: Seenext) -> None:
    model = trained.serving_model
    assert model is not None
    snap = CatalogSnapshot.build([Item("mystery", category="never seen")], version=999)
    assert "mystery" not in model.items(snap).index
