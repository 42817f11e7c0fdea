"""The ranking of one request, before any channel filter: candidate sources in the placement's order.

`ranking()` yields candidates lazily, best first. Nothing it ranks by depends on the channel (only
on the customer, their history, the context and the placement), so every channel walks the same
sequence and only skips what its filter rejects — story 3 by construction (a capped source keeps
it too: see `ranking`). The one exception is
the popularity fallback of an *anonymous* visitor, which uses their store or channel (there is no
"same customer" to keep consistent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.catalog import CatalogSnapshot
from models.serving.channel_rules import Source
from models.serving.complements import ACCESSORY, Complements
from models.serving.embeddings import ItemSpace, RankingModel
from models.serving.looked_at import LookedAt
from models.serving.reasons import Reason

MAX_OWNED_ANCHORS = 10  # most recent purchases whose complements are promoted
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


def take(cands: Iterable[Candidate], k: int, passes: Callable[[str], bool]) -> list[Candidate]:
    """The first k candidates the channel lets through."""
    out: list[Candidate] = []
    for cand in cands:
        if passes(cand.item_id):
            out.append(cand)
            if len(out) == k:
                break
    return out


def final_score(cand: Candidate, tiers: int) -> float:
    """Non-increasing down any response: earlier sources score higher; within one, its own score."""
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
        return _complements_of(anchors, "accessory_for_owned", tier, state, complements)
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
    raise ValueError(f"unknown candidate source {name!r} in a placement plan")


def _complements_of(
    anchors: list[tuple[str, float | None]],
    accessory_code: str,
    tier: int,
    state: RankingState,
    complements: Complements | None,
) -> Iterator[Candidate]:
    """Complements of the anchors, ranked by the customer's affinity (catalogue links, then lift, when
    there is no affinity to rank by)."""
    if not anchors or complements is None:
        return iter(())
    when = dict(anchors)
    found: dict[str, Candidate] = {}
    order: dict[str, tuple[bool, float, bool, float, str]] = {}
    for anchor, link in complements.links([a for a, _ in anchors], state.snapshot, state.complements_key):
        if link.item_id in found or link.item_id in when:
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


def _similar_to_context(tier: int, state: RankingState) -> Iterator[Candidate]:
    if state.model is None or not state.context:
        return
    space = state.model.items(state.snapshot)
    rows = [space.index[i] for i in state.context if i in space.index][:1]  # the item on the page
    if not rows:
        return
    anchor = str(space.ids[rows[0]])
    sims = state.model.similarity(space, rows)
    for item_id, s in descending(space.ids, sims):
        yield Candidate(
            item_id, s, "similar_to_item", tier, Reason("similar_to_item", related_item_id=anchor)
        )


def _personalised(tier: int, state: RankingState) -> Iterator[Candidate]:
    aff = state.affinity
    if aff is None:
        return
    # "Similar to the X you looked at" only names an item they looked at (not one bought or in the
    # basket: the anchor is chosen by looked_at.anchor); without one, the plain personal reason.
    code = "similar_to_viewed" if aff.basis == "similar_items" and aff.anchor else "personalised"
    for item_id, s in descending(aff.space.ids, aff.scores):
        yield Candidate(item_id, s, aff.basis, tier, Reason(code, related_item_id=aff.anchor))


def descending(ids: np.ndarray, scores: np.ndarray) -> Iterator[tuple[str, float]]:
    """Every (id, score), highest first, sorting lazily: a partial sort of the head, widened on demand.

    The head is every score at or above the want-th best (a value partition and one scan: about half
    the time of an argpartition over 20k items); ties at the cut all come in, in item order.
    """
    n = len(scores)
    want = min(n, 64)
    done: set[int] = set()
    while n:
        if want < n:
            part = np.flatnonzero(scores >= np.partition(scores, n - want)[n - want])
            order = part[np.argsort(-scores[part], kind="stable")]
        else:
            order = np.argsort(-scores, kind="stable")
        for r in order.tolist():
            if r not in done:
                done.add(r)
                yield str(ids[r]), float(scores[r])
        if want >= n:
            return
        want = min(n, want * 8)


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
    for other, s in descending(space.ids, sims):
        if other != item_id and allowed(other):
            out.append(
                Candidate(other, s, "similar_to_item", 0, Reason("similar_to_item", related_item_id=item_id))
            )
            if len(out) == k:
                break
    return out
