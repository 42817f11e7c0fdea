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
from collections.abc import Mapping, Sequence
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
    if not cap:  # the default: near duplicates only, and only accessories can be one
        return _near_duplicates(order, k, _keys(snapshot, policy.attribute)[1], policy.near_duplicates, held)
    return every_cap(order, k, snapshot, policy, held)


def _near_duplicates(
    order: Sequence[str], k: int, accessories: Mapping[str, Targets], near: int, held: frozenset[str]
) -> list[str]:
    """`every_cap` without a category cap, in one pass that looks up only the accessories: an item that
    is no accessory is never held back and counts towards no cap (the same list, a third of the work)."""
    places = [n for n, i in enumerate(order) if i in accessories]
    # an accessory is held back only after `near` others of its item were kept, within the first k
    start = places[near] if len(places) > near else k
    if start >= k:
        return list(order)
    # the items before the first accessory that could be held back are kept as they are: only the
    # accessories among them count
    per_target: dict[tuple[str, str], int] = {}
    for n in places[:near]:
        for t in accessories[order[n]]:
            per_target[t] = per_target.get(t, 0) + 1
    kept = list(order[:start])
    later: list[str] = []
    for n in range(start, len(order)):
        if len(kept) >= k:  # the list is full: the rest keep their order, nothing is held back any more
            kept.extend(order[n:])
            break
        item_id = order[n]
        targets = accessories.get(item_id)
        if targets is not None:
            if item_id not in held and (
                per_target.get(targets[0], 0) >= near  # most accessories are for one item
                if len(targets) == 1
                else any(per_target.get(t, 0) >= near for t in targets)
            ):
                later.append(item_id)
                continue
            for t in targets:
                per_target[t] = per_target.get(t, 0) + 1
        kept.append(item_id)
    return kept + later


def every_cap(
    order: Sequence[str],
    k: int,
    snapshot: CatalogSnapshot,
    policy: DiversityPolicy,
    held: frozenset[str] = frozenset(),
) -> list[str]:
    """`diversify` with every cap checked item by item (the category cap; `_near_duplicates` is the
    same when it is off)."""
    if not policy.active or len(order) <= 1:
        return list(order)
    cap = policy.cap(k)
    near = policy.near_duplicates
    keys, accessories = _keys(snapshot, policy.attribute)
    if not cap and accessories.keys().isdisjoint(order):
        return list(order)  # only near duplicates are capped, and no accessory is in the list
    per_group: dict[str, int] = {}
    per_target: dict[tuple[str, str], int] = {}
    kept: list[str] = []
    later: list[str] = []
    for item_id in order:
        group, targets = keys.get(item_id, _NONE)
        if len(kept) < k and item_id not in held:
            if cap and group and per_group.get(group, 0) >= cap:
                later.append(item_id)
                continue
            if near and targets and any(per_target.get(t, 0) >= near for t in targets):
                later.append(item_id)
                continue
        kept.append(item_id)
        per_group[group] = per_group.get(group, 0) + 1
        for t in targets:
            per_target[t] = per_target.get(t, 0) + 1
    return kept + later


Targets = tuple[tuple[str, str], ...]  # an item's (category, main item) pairs
_NONE: tuple[str, Targets] = ("", ())
# per catalogue snapshot and attribute: item -> (its group, its (category, main item) pairs); a request
# then reads one dict entry per item instead of the item's fields
Keys = dict[str, tuple[str, Targets]]
# by the snapshot object (held, so its id is not reused): two services in one process (tests, the
# benchmark) have catalogues of the same version number
_CACHE: dict[tuple[int, str], tuple[CatalogSnapshot, Keys, dict[str, Targets]]] = {}


def _keys(snapshot: CatalogSnapshot, attribute: str) -> tuple[Keys, dict[str, Targets]]:
    """(item -> (group, (category, main item) pairs), accessory -> its pairs), per catalogue version."""
    key = (id(snapshot), attribute)
    cached = _CACHE.get(key)
    if cached is None or cached[0] is not snapshot:
        found = {
            i: (
                it.attributes.get(attribute, "") if attribute else it.category,
                tuple((it.category, t) for t in it.accessory_for),
            )
            for i, it in snapshot.items.items()
        }
        if len(_CACHE) > 4:  # the catalogue versions of this process: the newest few
            _CACHE.clear()
        accessories = {i: targets for i, (_, targets) in found.items() if targets}
        cached = _CACHE[key] = (snapshot, found, accessories)
    return cached[1], cached[2]
