"""How much an event says about a customer's interest in an item.

Training weighs the interactions by these, and serving uses the same figures (fold-in of fresh events,
popularity), so they live apart from the training matrices: a serving process reads them without
importing pandas and scipy (models/learning/dataset.py), which cost ~100 MB of a serving process's
memory (docs/performance.md, "Serving memory").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

EVENT_WEIGHTS: Mapping[str, float] = {
    "PURCHASE": 5.0,
    "ADD_TO_CART": 3.0,
    "WISHLIST": 2.0,  # kept for later: less than a basket, more than a look
    "CLICK": 2.0,
    "VIEW": 1.0,
}


def parse_event_weights(text: str) -> dict[str, float]:
    """ "PURCHASE=5,VIEW=1" -> {"PURCHASE": 5.0, "VIEW": 1.0}; types left out weigh 0."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not math.isfinite(weight) or weight < 0 or not name.strip():
            raise ValueError(f"SEENEXT_EVENT_WEIGHTS: {part!r} is not TYPE=weight with a weight >= 0")
        out[name.strip().upper()] = weight
    return out
