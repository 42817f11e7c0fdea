"""Diversity of one list: a cap per category (or any attribute) and near-duplicate suppression.

Applied after the rules, to the list in its final order: an item over a cap moves behind the items
that fit, and comes back only when nothing else fills the list (a list is never shorter for it).
The defaults keep four cases of the same phone out of one list: near duplicates — items of one
category that are accessories of the same item — at most `near_duplicates` (2) of them. A cap per
category (`category_share` of the list, never fewer than two items) is off by default: the ranking's
order is kept unless a retailer asks for it (SEENEXT_DIVERSITY_CATEGORY_SHARE).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from models.catalog import CatalogSnapshot


@dataclass(frozen=True)
class DiversityPolicy:
    """The caps (from Settings); 0 turns a cap off."""

    category_share: float = 0.0  # at most this share of a list (at least 2 items) in one category
    attribute: str = ""  # cap this item attribute instead of the category ("" = the category)
    near_duplicates: int = 2  # at most this many accessories of one item in one category

    @property
    def active(self) -> bool:
        return self.category_share > 0 or self.near_duplicates > 0

    def cap(self, k: int) -> int:
        return max(2, math.floor(self.category_share * k)) if self.category_share > 0 else 0


def diversify(
    order: Sequence[str],
    k: int,
    snapshot: CatalogSnapshot,
    policy: DiversityPolicy,
    held: frozenset[str] = frozenset(),
) -> list[str]:
    """`order` rearranged: the first k items that keep every cap, then the ones held back, in order.
    Items in `held` (pinned) always keep their place in the count but are never held back."""
    if not policy.active or len(order) <= 1:
        return list(order)
    cap = policy.cap(k)
    per_group: Counter[str] = Counter()
    per_target: Counter[tuple[str, str]] = Counter()
    kept: list[str] = []
    later: list[str] = []
    for item_id in order:
        item = snapshot.items.get(item_id)
        if item is None:
            kept.append(item_id)
            continue
        group = item.attributes.get(policy.attribute, "") if policy.attribute else item.category
        targets = [(item.category, t) for t in item.accessory_for]
        over = (
            len(kept) < k
            and item_id not in held
            and (
                (cap and group and per_group[group] >= cap)
                or (policy.near_duplicates and any(per_target[t] >= policy.near_duplicates for t in targets))
            )
        )
        if over:
            later.append(item_id)
            continue
        kept.append(item_id)
        per_group[group] += 1
        for t in targets:
            per_target[t] += 1
    return kept + later
