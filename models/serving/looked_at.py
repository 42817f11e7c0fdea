"""Looked at, not bought: what a customer viewed, carted or wish-listed lately comes back (story 3).

The abandoned basket is the classic cross-channel flow: a customer clicks an ad, looks, puts the
item in the basket or on the wish list, and leaves. The ad, the newsletter, the home page and the
call-centre agent should offer it again, saying why ("Still in your basket since 3 December").

A pure function of the request's `CustomerState.recent` (read once per request; see
customer_state.py) and its purchases: an item counts while it was not bought, and not taken out of
the basket, after it was looked at, and no other item of its category was bought after it (the
customer compared and chose). Each item scores the strength of its strongest signal (cart >
wish list > a look) halved every `half_life_days` since that signal, and its reason names the
strongest kind it has, with its date. On the Taobao clickstream this beats "what they carted or
viewed last" at predicting the next days' purchases (docs/evaluation.md, bench/looked_at_eval.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Container, Mapping, Sequence
from dataclasses import dataclass

from models.domain import DAY
from models.serving.customer_state import CustomerState, ItemEvent

# How strongly each event says "I may want this" (a basket holds more intent than a wish, a wish
# more than a look). Event types not listed say nothing here (impressions, mails sent: the service
# showed the item, the customer did not look at it).
STRENGTH: Mapping[str, float] = {
    "ADD_TO_CART": 3.0,
    "WISHLIST": 2.0,
    "VIEW": 1.0,
    "CLICK": 1.0,
    "AD_CLICK": 1.0,
    "EMAIL_CLICK": 1.0,
}
# The reason code of each signal; any look (view, click, ad or mail click) is `viewed`.
CODE = {"ADD_TO_CART": "in_basket", "WISHLIST": "wishlisted"}
LOOK = "viewed"
# Events that end an item's interest: it was bought, or taken out of the basket. Later looks count
# again (a customer who comes back to a removed item is interested anew).
ENDS = frozenset({"PURCHASE", "REMOVE_FROM_CART"})


@dataclass(frozen=True, slots=True)
class LookedAt:
    """One item the customer looked at and did not buy, with what its reason says."""

    item_id: str
    score: float  # strength of the strongest signal, decayed by its age
    code: str  # in_basket, wishlisted or viewed: the strongest kind of signal the item has
    at: float  # the date the reason gives: in the basket / on the wish list since, last looked at


@dataclass
class _Signals:
    """The live signals of one item, oldest event first."""

    since: dict[str, float]  # code -> first event of that kind since the interest began
    last: dict[str, float]  # code -> newest event of that kind
    score: float = 0.0


def reference(state: CustomerState, model_reference: float | None, now: float) -> float:
    """The time ages are counted from: the earlier of now and the newest event this request knows of
    (the model's data or the customer's own), so a history imported from the past is not all stale."""
    known = [t for t in (model_reference, state.recent[0].at if state.recent else None) if t is not None]
    return min(now, max(known)) if known else now


def window_start(model_reference: float | None, now: float, days: float) -> float:
    """The oldest event the source may use: `days` before the earliest reference it may count from."""
    start = now if model_reference is None else min(now, model_reference)
    return start - days * DAY


def ranked(
    state: CustomerState,
    at: float,
    days: float,
    half_life_days: float,
    category_of: Callable[[str], str] = lambda _: "",
) -> list[LookedAt]:
    """The items of the last `days` before `at` the customer looked at and has not bought or taken out
    of the basket since — nor chosen another item of its category over (bought one after the look:
    two phones compared, one bought) — strongest first, then newest, then by id."""
    since = at - days * DAY
    items: dict[str, _Signals] = {}
    for event in reversed(state.recent):  # oldest first, so a purchase ends what came before it
        if event.at < since or not event.item_id:
            continue
        if event.type in ENDS:
            items.pop(event.item_id, None)
            continue
        strength = STRENGTH.get(event.type)
        if strength is None:
            continue
        sig = items.setdefault(event.item_id, _Signals({}, {}))
        code = CODE.get(event.type, LOOK)
        sig.since.setdefault(code, event.at)
        sig.last[code] = event.at
        age_days = max(at - event.at, 0.0) / DAY
        decay = 0.5 ** (age_days / half_life_days) if half_life_days > 0 else 1.0
        sig.score = max(sig.score, strength * decay)
    if not items:
        return []
    newest = {item_id: max(sig.last.values()) for item_id, sig in items.items()}
    categories = {item_id: category_of(item_id) for item_id in items}
    # category -> its newest purchase, for the candidates' categories; a purchase older than every
    # candidate's newest look cannot end one, so only the few newer ones are looked up (a long history
    # has hundreds of purchases, and a catalogue lookup each cost more than the rest of the source)
    wanted = set(categories.values()) - {""}
    oldest = min(newest.values())
    chosen: dict[str, float] = {}
    for item_id, tally in state.purchases.items():
        if tally.last < oldest:
            continue
        category = category_of(item_id)
        if category in wanted:
            chosen[category] = max(chosen.get(category, tally.last), tally.last)
    out = []
    for item_id, sig in items.items():
        bought = state.purchases.get(item_id)
        if bought is not None and bought.last >= newest[item_id]:  # bought since (the window may not show it)
            continue
        if chosen.get(categories[item_id], -math.inf) >= newest[item_id]:  # another of its kind chosen since
            continue
        out.append(LookedAt(item_id, sig.score, *_reason(sig)))
    out.sort(key=lambda x: (-x.score, -newest[x.item_id], x.item_id))
    return out


def _reason(sig: _Signals) -> tuple[str, float]:
    """The strongest kind of signal and its date: since when it is in the basket or on the wish
    list, or when it was last looked at."""
    if "in_basket" in sig.since:
        return "in_basket", sig.since["in_basket"]
    if "wishlisted" in sig.since:
        return "wishlisted", sig.since["wishlisted"]
    return LOOK, sig.last[LOOK]


def anchor(
    events: Sequence[ItemEvent], context: Sequence[str], excluded: Collection[str], known: Container[str]
) -> str:
    """The item a "Similar to the X you looked at" reason may name: the item on the page, else the
    newest item the customer looked at (events newest first) — never one they bought or that sits in
    their basket (`excluded`, and what they carted and did not take out); only items the model
    `known`s. "" when there is none (issue 9 point 10: it named items bought in store)."""
    for item_id in context:
        if item_id not in excluded and item_id in known:
            return item_id
    basket: dict[str, bool] = {}  # item -> whether its newest cart event put it in
    for e in events:
        if e.type == "ADD_TO_CART" or e.type in ENDS:
            basket.setdefault(e.item_id, e.type == "ADD_TO_CART")
    for e in events:
        if (
            e.type in STRENGTH
            and e.type != "ADD_TO_CART"
            and not basket.get(e.item_id, False)
            and e.item_id not in excluded
            and e.item_id in known
        ):
            return e.item_id
    return ""
