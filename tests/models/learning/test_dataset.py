"""Dataset builder: weights by event type and recency, feature matrices."""

from __future__ import annotations

import numpy as np
import pytest

from models.domain import Item
from models.events import InteractionLog
from models.learning import dataset
from models.learning.item_features import price_band

DAY = 86400.0


def log_of(rows: list[tuple[str, str, str, str, float]]) -> InteractionLog:
    cols = list(zip(*rows, strict=False))
    return InteractionLog(
        customer_id=np.array(cols[0], dtype=object),
        item_id=np.array(cols[1], dtype=object),
        type=np.array(cols[2], dtype=object),
        channel=np.array(cols[3], dtype=object),
        occurred_at=np.array(cols[4], dtype=float),
        order_id=np.array([""] * len(rows), dtype=object),
    )


def weight(data: dataset.TrainingData, user: str, item: str) -> float:
    u = list(data.user_ids).index(user)
    i = list(data.item_ids).index(item)
    return float(data.weights.tocsr()[u, i])


def test_purchase_outweighs_cart_click_and_view() -> None:
    t = 100 * DAY
    data = dataset.build(
        log_of(
            [
                ("u", "p", "PURCHASE", "WEB", t),
                ("u", "a", "ADD_TO_CART", "WEB", t),
                ("u", "c", "CLICK", "WEB", t),
                ("u", "v", "VIEW", "WEB", t),
                ("u", "x", "IMPRESSION", "WEB", t),
            ]
        ),
        [],
        half_life_days=30,
    )
    w = [weight(data, "u", i) for i in "pacv"]
    assert w == sorted(w, reverse=True) and w[-1] > 0
    assert "x" in data.item_ids and data.interactions.tocsr()[0, list(data.item_ids).index("x")] == 0


def test_recency_halves_weight_every_half_life() -> None:
    t = 100 * DAY
    data = dataset.build(
        log_of([("u", "new", "VIEW", "WEB", t), ("u", "old", "VIEW", "WEB", t - 30 * DAY)]),
        [],
        half_life_days=30,
    )
    assert weight(data, "u", "new") == pytest.approx(np.log1p(1.0))
    assert weight(data, "u", "old") == pytest.approx(np.log1p(0.5))


def test_feature_rows_sum_to_one_and_catalogue_items_are_included() -> None:
    items = [
        Item("p", category="phone", brand="nova", price=700, attributes={"colour": "black"}),
        Item("unseen"),
    ]
    data = dataset.build(
        log_of([("u1", "p", "VIEW", "WEB", 1.0), ("u2", "p", "VIEW", "POS", 1.0)]), items, 30
    )
    assert set(data.item_ids) == {"p", "unseen"}
    np.testing.assert_allclose(np.asarray(data.item_features.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(data.user_features.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    names = set(data.item_feature_names)
    assert {"category:phone", "brand:nova", "price:512-1024", "attr:colour=black"} <= names
    assert {"channel:WEB", "channel:POS"} <= set(data.user_feature_names)


def test_price_bands_double() -> None:
    assert [price_band(p) for p in (0, 0.5, 1, 3, 700)] == [
        "price:none",
        "price:0-1",
        "price:1-2",
        "price:2-4",
        "price:512-1024",
    ]


def test_empty_log_is_refused() -> None:
    with pytest.raises(ValueError, match="no item events"):
        dataset.build(
            InteractionLog(
                *(np.array([], dtype=object) for _ in range(4)),
                np.array([], dtype=float),
                np.array([], dtype=object),
            ),
            [],
            30,
        )
