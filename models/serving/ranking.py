"""The ranking of one request, before any channel filter: candidate sources in the placement's order.

`ranking()` yields candidates lazily, best first. Nothing it ranks by depends on the channel (only
on the customer, their history, the context and the placement), so every channel walks the same
sequence and only skips what its filter rejects — story 3 by construction (a capped source keeps
it too: see `ranking`). The one exception is
the popularity fallback of an *anonymous* visitor, which uses their store or channel (there is no
"same customer" to keep consistent).

New items (models/serving/exploration.py) are not ranked with the others: `take` fills the list but
its last `slots` places from the ranking, then those places with the first new items the channel lets
through that the list does not hold yet (`exploring`). So a new item the ranking already placed keeps
its place, and one that comes in by exploration is below every ranked item of the list, in every
channel (story 3 holds). Everywhere else an item the model has never seen (placed from its catalogue
features alone) ranks after every item it has learned: a feature-only score is no evidence that
customers want the item, and on the demo it put a brand-new item first for the customers of its
category (issue 9 point 7).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from models.catalog import CatalogSnapshot
from models.serving.channel_rules import Source
from models.serving.complements import ACCESSORY, Complements
from models.serving.embeddings import ItemSpace, RankingModel
from models.serving.exploration import NewItem
from models.serving.looked_at import LookedAt
from models.serving.reasons import Reason

MAX_OWNED_ANCHORS = 10  # most recent purchases whose complements are promoted
EXPLORATION = "exploration"  # the source of new items (models/serving/exploration.py)
WINDOW = 2  # a capped source fills its cap from its first WINDOW x cap allowed items, in every channel


@dataclass(frozen=True)
class Affinity:
    """The customer's LightFM scores over the item space, and what they are based on."""

    space: ItemSpace
    scores: np.ndarray
    basis: str  # "personalised" (their own vector) or "similar_items" (their session's items)
    anchor: str = ""  # similar_items: the session item the reason names

    def of(self, item_id: str) -> float | None:
        row = self.space.index.get(item_id)
        return None if row is None else float(self.scores[row])


@dataclass
class RankingState:
    """Everything a ranking depends on — and nothing about the channel."""

    snapshot: CatalogSnapshot
    customer_id: str | None = None
    purchases: dict[str, float] = field(default_factory=dict)  # item -> last purchase (kept ones)
    basket: Sequence[str] = ()
    context: Sequence[str] = ()
    model: RankingModel | None = None
    affinity: Affinity | None = None
    popular: Iterable[tuple[str, float, str]] = ()  # (item, score, reason code), best first, lazily
    owned_since: float = 0.0  # purchases after this time anchor complements
    complements_key: str = ""
    looked_at: Sequence[LookedAt] = ()  # looked at, carted, wish-listed and not bought; strongest first
    new_items: Sequence[NewItem] = ()  # what is new (exploration), newest first
    explore_slots: int = 0  # last places of this list new items may take (exploration.slots(k))
    met: frozenset[str] = frozenset()  # items of the customer's recent events: no longer new to them


@dataclass(slots=True)
class Candidate:
    item_id: str
    raw: float | None  # the source's own score (affinity, similarity, popularity); None = unscored
    source: str  # what filled it: complements, similar_to_item, personalised, similar_items, popular
    tier: int  # position of its source in the plan
    reason: Reason


def ranking(
    plan: Sequence[Source],
    state: RankingState,
    complements: Complements | None,
    allowed: Callable[[str], bool],
    passes: Callable[[str], bool] | None = None,
) -> Iterator[Candidate]:
    """Candidates best first: each source in turn, only those that pass `allowed` (and the channel's
    `passes`, when given).

    A capped source shows up to `limit` items the channel lets through, so an accessory out of stock
    or mailed last week leaves its place to the next one (the cap is counted after every filter). It
    takes them from a window, the source's first `WINDOW * limit` allowed items, that is the same in
    every channel; the window's other items are not offered later in the ranking. So an item shown
    by one channel's capped source is never shown below a later source's item by another channel:
    two channels never order two items differently (story 3)."""
    seen: set[str] = set()
    for tier, source in enumerate(plan):
        if source.name == EXPLORATION:  # not ranked: `take` gives it the last places (`exploring`)
            continue
        if source.name == "personalised" and not source.limit and state.affinity is not None:
            # `_personalised` walked inline, a Candidate made only for what passes: the source most
            # requests walk furthest (past k when rules or diversity widen the pool)
            aff = state.affinity
            basis, reason = aff.basis, _personal_reason(aff)
            for item_id, score in learned_first(aff.space, aff.scores):
                if item_id in seen or not allowed(item_id):
                    continue
                seen.add(item_id)
                if passes is None or passes(item_id):
                    yield Candidate(item_id, score, basis, tier, reason)
            continue
        shown = considered = 0
        for cand in _source(source.name, tier, state, complements):
            if cand.item_id in seen or not allowed(cand.item_id):
                continue
            seen.add(cand.item_id)
            considered += 1
            if (not source.limit or shown < source.limit) and (passes is None or passes(cand.item_id)):
                yield cand
                shown += 1
            if source.limit and considered >= WINDOW * source.limit:
                break


def exploring(
    plan: Sequence[Source], state: RankingState, allowed: Callable[[str], bool]
) -> tuple[Iterator[Candidate], int]:
    """The new items this plan tries, best first, and how many of the list's places they may take: the
    request's share (`state.explore_slots`) within the plan's cap. Nothing when the plan has no
    exploration source, or when there is no affinity to choose a new item by (a visitor without a
    session, a customer with nothing to rank from: they get the plain fallback, the same everywhere).
    An item the customer has met lately (looked at, carted, taken out of the basket, been shown) is no
    longer new to them: what follows them is the looked-at source's business, and a basket emptied of
    it stays so."""
    if state.affinity is None:
        return iter(()), 0
    for tier, source in enumerate(plan):
        if source.name == EXPLORATION:
            slots = min(source.limit, state.explore_slots) if source.limit else state.explore_slots
            cands = (c for c in _new_items(tier, state) if c.item_id not in state.met and allowed(c.item_id))
            return cands, max(slots, 0)
    return iter(()), 0


def take(
    cands: Iterable[Candidate],
    k: int,
    passes: Callable[[str], bool],
    new: Iterable[Candidate] = (),
    slots: int = 0,
    checked: bool = False,
) -> list[Candidate]:
    """The first k candidates the channel lets through; with `slots`, the last (at most) `slots` places
    go to the first `new` candidates it lets through that the list does not hold yet (when there are
    fewer, the ranking fills the rest). `checked`: `cands` already passed `passes` (a `ranking` given
    it), which is then not asked again."""
    ranked = iter(cands)
    out: list[Candidate] = []
    held: set[str] = set()

    def fill(n: int) -> None:
        for cand in ranked:
            if cand.item_id not in held and (checked or passes(cand.item_id)):
                out.append(cand)
                held.add(cand.item_id)
                if len(out) >= n:
                    return

    slots = max(0, min(slots, k))
    if k - slots > 0:
        fill(k - slots)
    tried: list[Candidate] = []
    if slots:
        for cand in new:
            if cand.item_id not in held and passes(cand.item_id):
                tried.append(cand)
                held.add(cand.item_id)
                if len(tried) == slots:
                    break
        if len(out) + len(tried) < k:
            fill(k - len(tried))
    return out + tried


def final_score(cand: Candidate, tiers: int) -> float:
    """Non-increasing down any response: earlier sources score higher (new items come last in a plan);
    within one, its own score."""
    squashed = (
        0.0 if cand.raw is None or math.isnan(cand.raw) else 0.5 + 0.5 * cand.raw / (1.0 + abs(cand.raw))
    )
    return (tiers - cand.tier) + min(squashed, 0.999999)


# -- sources ---------------------------------------------------------------------------------------


def _source(
    name: str, tier: int, state: RankingState, complements: Complements | None
) -> Iterator[Candidate]:
    if name == "basket_complements":
        return _complements_of(
            [(i, None) for i in dict.fromkeys(state.basket)], "accessory_for_basket", tier, state, complements
        )
    if name == "owned_complements":
        recent = sorted(((t, i) for i, t in state.purchases.items() if t >= state.owned_since), reverse=True)
        anchors: list[tuple[str, float | None]] = [(i, t) for t, i in recent[:MAX_OWNED_ANCHORS]]
        # Only the catalogue's accessories of what they own (story 1: the case for the phone). A learned
        # "bought together" pair says what goes into one basket; for a purchase made weeks ago the model's
        # own ranking already carries that affinity, and promoting the pair above it double-counts it.
        return _complements_of(
            anchors, "accessory_for_owned", tier, state, complements, accessories_only=True
        )
    if name == "similar_to_item":
        return _similar_to_context(tier, state)
    if name == "personalised":
        return _personalised(tier, state)
    if name == "looked_at":
        return (
            Candidate(
                x.item_id,
                x.score,
                "looked_at",
                tier,
                Reason(x.code, related_item_id=x.item_id, related_at=x.at),
            )
            for x in state.looked_at
        )
    if name == "popular":
        return (Candidate(i, s, "popular", tier, Reason(code)) for i, s, code in state.popular)
    if name == EXPLORATION:
        return _new_items(tier, state)
    raise ValueError(f"unknown candidate source {name!r} in a placement plan")


def _complements_of(
    anchors: list[tuple[str, float | None]],
    accessory_code: str,
    tier: int,
    state: RankingState,
    complements: Complements | None,
    accessories_only: bool = False,
) -> Iterator[Candidate]:
    """Complements of the anchors, ranked by the customer's affinity (catalogue links, then lift, when
    there is no affinity to rank by)."""
    if not anchors or complements is None:
        return iter(())
    when = dict(anchors)
    found: dict[str, Candidate] = {}
    order: dict[str, tuple[bool, float, bool, float, str]] = {}
    for anchor, link in complements.links([a for a, _ in anchors], state.snapshot, state.complements_key):
        if link.item_id in found or link.item_id in when or (accessories_only and link.kind != ACCESSORY):
            continue
        code = accessory_code if link.kind == ACCESSORY else "bought_together"
        reason = Reason(code, related_item_id=anchor, related_at=when.get(anchor))
        raw = state.affinity.of(link.item_id) if state.affinity is not None else None
        found[link.item_id] = Candidate(link.item_id, raw, "complements", tier, reason)
        order[link.item_id] = (
            raw is None,
            -(raw or 0.0),
            link.kind != ACCESSORY,
            -link.lift,
            link.item_id,
        )
    return iter(sorted(found.values(), key=lambda c: order[c.item_id]))


def _new_items(tier: int, state: RankingState) -> Iterator[Candidate]:
    """New items by the customer's affinity where the model can place them (for an item it has not
    seen, its features' score: it chooses which new item, never whether one comes first), then the
    others newest first."""
    if not state.new_items:
        return
    when = _first_known(state.new_items)
    ranked: Iterable[tuple[str, float | None]] = ((n.item_id, None) for n in state.new_items)
    aff = state.affinity
    if aff is not None:
        ids, rows, rest = _new_rows(aff.space, state.new_items)
        # `take` wants a new item for one or two places: a small first head (the order is the same)
        ranked = itertools.chain(descending(ids, aff.scores[rows], first=16), ((i, None) for i in rest))
    for item_id, s in ranked:
        reason = Reason("new_in", related_item_id=item_id, related_at=when[item_id])
        yield Candidate(item_id, s, EXPLORATION, tier, reason)


# (the list of new items, item -> when first known) of the last request: the list is the same object
# until it is rebuilt (at most once a minute), and the map of ~1,400 items cost 0.2 ms a request
_FIRST_KNOWN: list[tuple[Sequence[NewItem], dict[str, float]]] = []


def _first_known(new: Sequence[NewItem]) -> dict[str, float]:
    last = _FIRST_KNOWN[0] if _FIRST_KNOWN else None
    if last is not None and last[0] is new:
        return last[1]
    when = {n.item_id: n.first_known for n in new}
    _FIRST_KNOWN[:] = [(new, when)]
    return when


def _new_rows(space: ItemSpace, new: Sequence[NewItem]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(ids, rows) of the new items the space holds, newest first, and the ids of those it does not;
    kept with the space for as long as the list of new items is the same object (it is rebuilt at most
    once a minute), so a request only indexes its own scores."""
    cached = cast(
        "tuple[Sequence[NewItem], np.ndarray, np.ndarray, list[str]] | None", space.derived.get("new_rows")
    )
    if cached is not None and cached[0] is new:
        return cached[1], cached[2], cached[3]
    placed = [(n.item_id, space.index[n.item_id]) for n in new if n.item_id in space.index]
    ids = np.array([i for i, _ in placed], dtype=object)
    rows = np.array([r for _, r in placed], dtype=np.intp)
    rest = [n.item_id for n in new if n.item_id not in space.index]
    space.derived["new_rows"] = (new, ids, rows, rest)
    return ids, rows, rest


def _similar_to_context(tier: int, state: RankingState) -> Iterator[Candidate]:
    if state.model is None or not state.context:
        return
    space = state.model.items(state.snapshot)
    rows = [space.index[i] for i in state.context if i in space.index][:1]  # the item on the page
    if not rows:
        return
    anchor = str(space.ids[rows[0]])
    sims = state.model.similarity(space, rows)
    for item_id, s in learned_first(space, sims):
        yield Candidate(
            item_id, s, "similar_to_item", tier, Reason("similar_to_item", related_item_id=anchor)
        )


def _personalised(tier: int, state: RankingState) -> Iterator[Candidate]:
    aff = state.affinity
    if aff is None:
        return
    reason = _personal_reason(aff)
    for item_id, s in learned_first(aff.space, aff.scores):
        yield Candidate(item_id, s, aff.basis, tier, reason)


def _personal_reason(aff: Affinity) -> Reason:
    """The one Reason of every item of the personalised source (a Reason is never changed in place:
    `Recommender.decorate` copies it to add the sentence; one per candidate walked was a tenth of what
    rules and diversity cost a request)."""
    # "Similar to the X you looked at" only names an item they looked at (not one bought or in the
    # basket: the anchor is chosen by looked_at.anchor); without one, the plain personal reason.
    code = "similar_to_viewed" if aff.basis == "similar_items" and aff.anchor else "personalised"
    return Reason(code, related_item_id=aff.anchor)


def learned_first(space: ItemSpace, scores: np.ndarray) -> Iterator[tuple[str, float]]:
    """`descending`, but every item the model has learned before any item it only placed from its
    catalogue features: by construction, a feature-only score never outranks a learned one."""
    if not space.from_features:
        yield from descending(space.ids, scores)
        return
    for rows, ids in _rows_by_origin(space):
        yield from descending(ids, scores[rows])


def _rows_by_origin(space: ItemSpace) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """((rows, ids) of the items the model learned, (rows, ids) of those placed from features), once
    per space."""
    cached = space.derived.get("rows_by_origin")
    if cached is None:
        placed = np.fromiter((i in space.from_features for i in space.ids.tolist()), bool, len(space.ids))
        cached = tuple((rows, space.ids[rows]) for rows in (np.flatnonzero(~placed), np.flatnonzero(placed)))
        space.derived["rows_by_origin"] = cached
    return cast(tuple[tuple[np.ndarray, np.ndarray], ...], cached)


def descending(ids: np.ndarray, scores: np.ndarray, first: int = 64) -> Iterator[tuple[str, float]]:
    """Every (id, score), highest first, sorting lazily: a partial sort of the head, widened on demand.

    The head is every score at or above the want-th best (`_head`); ties at the cut all come in, in item
    order. A head holds every score at or above its cut and each wider head's new rows are below it,
    so the sequence is that of one stable sort whatever `first` (the first head's size) is: a caller
    that needs only a few items asks for a small first head.
    """
    n = len(scores)
    want = min(n, max(first, 1))
    done: set[int] = set()  # rows of the heads before this one (none for the first)
    while n:
        if want < n:
            part = _head(scores, want)
            order = part[np.argsort(-scores[part], kind="stable")]
        else:
            order = np.argsort(-scores, kind="stable")
        # ids and scores as Python objects a chunk at a time (not one numpy index per row); a caller
        # seldom walks far, so a whole-array order is not converted at once
        for start in range(0, len(order), _CHUNK):
            rows = order[start : start + _CHUNK]
            if not done:  # the first head: (id, score) pairs straight from zip, no Python step per row
                yield from zip(ids[rows].tolist(), scores[rows].tolist(), strict=True)
                continue
            pairs = zip(ids[rows].tolist(), scores[rows].tolist(), strict=True)
            for r, (item_id, score) in zip(rows.tolist(), pairs, strict=True):
                if r not in done:
                    yield item_id, score
        if want >= n:
            return
        done.update(order.tolist())
        want = min(n, want * 8)


_CHUNK = 128  # rows of a head turned into Python objects at a time (`descending`)
SAMPLED = 16  # _head narrows by a strided sample of about SAMPLED x want scores


def _head(scores: np.ndarray, want: int) -> np.ndarray:
    """The rows of every score at or above the want-th highest, ascending (0 < want < len(scores)).

    The want-th highest of an evenly strided sample is a lower bound of the whole array's (the
    sample's top `want` are in the array), so every score at or above it holds the array's top
    `want`; the exact cut is then taken among those (~SAMPLED times fewer values than the array).
    Partitioning 20k float32 scores took 50-75 us a request; this takes ~15-25 us for the same rows."""
    n = len(scores)
    step = n // (want * SAMPLED)
    if step >= 2:
        sample = scores[::step]
        bound = np.partition(sample, len(sample) - want)[len(sample) - want]
        if not np.isnan(bound):  # NaN sorts last in a partition: then the plain cut below decides
            wide = np.flatnonzero(scores >= bound)
            among = scores[wide]
            head: np.ndarray = wide[among >= np.partition(among, len(among) - want)[len(among) - want]]
            return head
    return np.flatnonzero(scores >= np.partition(scores, n - want)[n - want])


def similar_items(
    model: RankingModel,
    snapshot: CatalogSnapshot,
    item_id: str,
    allowed: Callable[[str], bool],
    k: int,
) -> list[Candidate]:
    """Items closest to one item in the embedding space (SimilarItems, product pages)."""
    space = model.items(snapshot)
    row = space.index.get(item_id)
    if row is None:
        return []
    sims = model.similarity(space, [row])
    out: list[Candidate] = []
    for other, s in learned_first(space, sims):
        if other != item_id and allowed(other):
            out.append(
                Candidate(other, s, "similar_to_item", 0, Reason("similar_to_item", related_item_id=item_id))
            )
            if len(out) == k:
                break
    return out
