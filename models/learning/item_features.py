"""The names of an item's features (category, brand, price band, attributes).

Training gives each name a column of the item feature matrix; serving builds a new item's vector
from the same names (models/serving/embeddings.py), so both read them here, without the training
matrices' pandas and scipy (models/learning/dataset.py).
"""

from __future__ import annotations

import math

from models.domain import Item


def price_band(price: float) -> str:
    """Bands that double: 0-1, 1-2, 2-4, 4-8, … — stable across catalogues of any price level."""
    if price <= 0:
        return "price:none"
    low = 2 ** math.floor(math.log2(price)) if price >= 1 else 0
    return f"price:{low:g}-{max(low * 2, 1):g}"


def item_feature_tokens(item: Item) -> list[str]:
    tokens = []
    if item.category:
        tokens.append(f"category:{item.category}")
    if item.brand:
        tokens.append(f"brand:{item.brand}")
    if item.price > 0:  # an unknown price is no feature (it would tie every unpriced item together)
        tokens.append(price_band(item.price))
    tokens.extend(f"attr:{k}={v}" for k, v in sorted(item.attributes.items()) if v)
    return tokens
