"""Channel rules: what each channel may show, and which candidate sources each placement tries first.

Two tables, read top to bottom:

* `CHANNEL_RULES` (per channel) only *filters*: the stock that counts, the consent needed, whether
  items mailed recently are held back. A channel never reorders.
* `PLACEMENT_PLANS` (per placement) only *orders*: the candidate sources, in the order they fill the
  ranking, each with the most candidates it may contribute.

Keeping the two apart is what makes story 3 hold by construction: for the same customer and state,
every channel sees the same ranking and keeps a different subset of it, so items allowed in two
channels appear in the same relative order in both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from models.catalog import CatalogSnapshot
from models.domain import DAY, Item, Offer
from models.privacy import consent
from models.privacy.consent import ConsentDefaults
from models.serving.customer_state import CustomerState
from models.serving.rebuying import RebuyTable

# Where the stock that counts for a channel lives.
STORE_STOCK = "store"  # the stock of context.store_id (no store given: stock is not checked)
ONLINE_STOCK = "online"  # the online stock (store_id "")
NO_STOCK = "none"  # stock is not checked


@dataclass(frozen=True)
class ChannelRule:
    """The filters of one channel."""

    stock: str  # STORE_STOCK, ONLINE_STOCK or NO_STOCK
    consent: str = ""  # consent purpose the customer must have granted on this channel ("" = none)
    hold_back_mailed: bool = False  # drop items mailed to the customer in the last `email_repeat_days`


# fmt: off
CHANNEL_RULES: Mapping[str, ChannelRule] = {
    #  channel          stock that counts      consent needed         hold back mailed items
    "WEB":         ChannelRule(ONLINE_STOCK),
    "APP":         ChannelRule(ONLINE_STOCK),
    "EMAIL":       ChannelRule(ONLINE_STOCK,   consent="marketing",   hold_back_mailed=True),
    "POS":         ChannelRule(STORE_STOCK),
    "CALL_CENTER": ChannelRule(ONLINE_STOCK),
    "ADS":         ChannelRule(ONLINE_STOCK),
}
# fmt: on


@dataclass(frozen=True)
class Source:
    """One candidate source of a placement plan; `limit` caps its candidates (0 = no cap)."""

    name: str
    limit: int = 0


# The sources, in the order they fill a ranking:
#   basket_complements  accessories and bought-together items of context.basket_item_ids
#   owned_complements   the catalogue's accessories of what the customer bought lately
#   looked_at           what the customer looked at, carted or wish-listed lately and did not buy
#                       (models/serving/looked_at.py): the abandoned basket follows them (story 3)
#   similar_to_item     items closest to the item on the page (context.item_ids[0]) in the model's
#                       embedding space
#   personalised        the customer's LightFM ranking (or, for a visitor or a customer newer than
#                       the model, the ranking built from their session's items)
#   popular             what is popular: everywhere for a known customer, in the store / channel
#                       for an anonymous visitor
#   exploration         new items (models/serving/exploration.py): not ranked with the others, they
#                       take the last places of the list that the ranking's items leave them, at most
#                       SEENEXT_EXPLORATION_SHARE of k (one in four at most) and the cap here
# Complements are ranked by the customer's affinity (the same LightFM scores as `personalised`).
# Looked-at items follow the accessories of a recent purchase (story 1 keeps its first places) on the
# pages a customer comes back to (home, the newsletter, an ad, the call-centre agent's offers); never
# at the till or on the basket page, where the basket itself is the context. At most 8, so a 10-item
# page keeps two of the model's picks: on the Taobao clickstream they predict the next days' purchases
# far better than the model (hit rate@10 0.142 / 0.154 / 0.162 / 0.170 with a cap of 4 / 6 / 8 / 10,
# against 0.146 for "what they carted or viewed last"; bench/looked_at_eval.py).
# New items are tried in the last places of the pages a customer browses (home, newsletter, ads, the
# call-centre page): exploration.slots(k) of them (one in a 4- to 10-item list at the default share),
# at most 2; never on a product page or at the basket, whose context decides what fits.
_HOME = (
    Source("owned_complements", 3),
    Source("looked_at", 8),
    Source("personalised"),
    Source("popular"),
    Source("exploration", 2),
)
_BASKET = (
    Source("basket_complements", 20),
    Source("owned_complements", 3),
    Source("personalised"),
    Source("popular"),
)

# fmt: off
PLACEMENT_PLANS: Mapping[str, tuple[Source, ...]] = {
    #  placement     sources, first to last
    "home":        _HOME,
    "newsletter":  _HOME,
    "ads":         _HOME,
    "profile":     _HOME,  # the call-centre page's next best offers (story 5)
    "product":     (Source("similar_to_item", 12), Source("personalised"), Source("popular")),
    "cart":        _BASKET,
    "checkout":    _BASKET,
}
# fmt: on
DEFAULT_PLACEMENT = "home"  # an unknown placement is ranked like the home page


def rule_for(channel: str) -> ChannelRule:
    return CHANNEL_RULES.get(channel, ChannelRule(ONLINE_STOCK))


def plan_for(placement: str) -> tuple[Source, ...]:
    return PLACEMENT_PLANS.get(placement or DEFAULT_PLACEMENT, PLACEMENT_PLANS[DEFAULT_PLACEMENT])


@dataclass(frozen=True)
class Policy:
    """The numbers behind the rules (from Settings)."""

    email_repeat_days: float = 7.0  # an item mailed to a customer is not mailed again for this long
    email_retry_minutes: float = 60.0  # a served e-mail offer counts as mailed once this old (retries)
    owned_days: float = 180.0  # accessories are promoted for purchases this recent
    looked_at_days: float = 30.0  # what was looked at this recently and not bought comes back ...
    looked_at_half_life_days: float = 7.0  # ... its pull halving every this many days

    def mailed_since(self, now: float) -> float:
        """Items mailed after this time are held back."""
        return now - self.email_repeat_days * DAY

    def served_before(self, now: float) -> float:
        """E-mail recommendations served before this time count as mailed (a retry gets the same offers)."""
        return now - self.email_retry_minutes * 60.0


# -- the customer's side: consent and what was mailed ------------------------------------------------


def consents(rule: ChannelRule, state: CustomerState, channel: str, defaults: ConsentDefaults) -> bool:
    """Whether the channel may offer this customer anything: a channel that needs consent needs a
    customer who gave it (or a default that gives it); an anonymous visitor has none to give."""
    if not rule.consent:
        return True
    return state.known and consent.allows(state.consents, channel, rule.consent, defaults)


def profiling_allowed(state: CustomerState, channel: str, defaults: ConsentDefaults) -> bool:
    """Whether the customer's history may steer their ranking in this channel."""
    return state.known and consent.allows(state.consents, channel, "profiling", defaults)


def held_back(rule: ChannelRule, state: CustomerState) -> frozenset[str]:
    """Items this channel must not offer again yet: those mailed recently, for e-mail."""
    return state.mailed if rule.hold_back_mailed else frozenset()


# -- filters ------------------------------------------------------------------------------------------


def owned_durables(purchases: Iterable[tuple[str, float]], snapshot: CatalogSnapshot) -> set[str]:
    """Bought (in any channel), kept, and not flagged a consumable: never offered again. The catalogue's
    flags only; a request uses `owned`, which learns what customers buy again."""
    owned = set()
    for item_id, _ in purchases:
        item = snapshot.items.get(item_id)
        if item is None or not item.repeatable:
            owned.add(item_id)
    return owned


@dataclass(frozen=True)
class Owned:
    """What a customer's purchases keep out of their ranking, and what they bring back."""

    excluded: frozenset[str]  # kept purchases not offered again now: one-offs, consumables not yet due
    resting: Mapping[str, float]  # category -> until when: the substitutes of a one-off just bought
    due: Mapping[str, bool]  # every item bought -> whether it may be offered again now (repurchase blend)


def owned(state: CustomerState, snapshot: CatalogSnapshot, rebuy: RebuyTable, at: float) -> Owned:
    """The purchase exclusions of one request, from what customers buy again (models/serving/rebuying.py):
    an item comes back once customers usually buy it again (never, for a one-off), and after a one-off
    the other items of its category rest for as long as its buyers do not buy in it again. `at` is the
    time ages are measured at (`RebuyTable.anchor`)."""
    due: dict[str, bool] = {}
    for item_id, last, _ in state.bought():
        after = rebuy.again_after(snapshot.items.get(item_id))
        due[item_id] = after is not None and at - last >= after
    resting: dict[str, float] = {}
    for item_id, last in state.kept().items():
        item = snapshot.items.get(item_id)
        rest = rebuy.rest_after(item)
        if item is not None and rest > 0 and at - last < rest:
            resting[item.category] = max(resting.get(item.category, 0.0), last + rest)
    excluded = frozenset(i for i in state.kept() if not due.get(i, False))
    return Owned(excluded, resting, due)


def base_filter(
    snapshot: CatalogSnapshot,
    excluded: AbstractSet[str],
    resting: AbstractSet[str] = frozenset(),
    buying: Iterable[str] = (),
) -> Callable[[str], bool]:
    """The channel-independent exclusions: owned durables and the substitutes resting after them (every
    item of a `resting` category but those the catalogue flags repeatable, and the accessories of what
    is `buying` now — the basket and the page: a second laptop in the basket needs its own mouse, which
    is no substitute of the first one's), basket and context items, inactive items, items missing from
    a filled catalogue, and items without a price in force in a catalogue whose items mostly have one
    (a shop cannot sell them; a catalogue without prices, like MovieLens, filters nothing on that
    account)."""
    items = snapshot.items  # locals: the ranking asks this for every candidate it walks
    has_catalog = bool(items)
    keeps_prices = snapshot.keeps_prices
    now = time.time()
    completing = {a for i in buying for a in snapshot.accessories_of.get(i, ())} if resting else set()

    def allowed(item_id: str) -> bool:
        if item_id in excluded:
            return False
        item = items.get(item_id)
        if item is None:
            return not has_catalog
        if resting and item.category in resting and not item.repeatable and item_id not in completing:
            return False
        if keeps_prices and (item.price if item.offer is None else effective_price(item, now)) <= 0:
            return False
        return item.active

    return allowed


@dataclass(frozen=True)
class CallerFilter:
    """The restrictions a caller puts on one request (RecommendRequest.filter)."""

    categories: frozenset[str] = frozenset()
    exclude_item_ids: frozenset[str] = frozenset()
    max_price: float = 0.0
    in_stock_only: bool = False


def channel_filter(
    rule: ChannelRule,
    store_id: str,
    snapshot: CatalogSnapshot,
    caller: CallerFilter,
    mailed: AbstractSet[str] = frozenset(),
    ruled_out: AbstractSet[str] = frozenset(),
) -> Callable[[str], bool]:
    """What this channel (and the caller) lets through; a predicate on item ids, never a reordering.
    `ruled_out`: items merchandising rules exclude here."""
    stock_place = stock_location(rule, store_id)
    # locals: the ranking asks this for every candidate it walks
    items, keeps_stock = snapshot.items, snapshot.keeps_stock
    excluded, in_stock_only = caller.exclude_item_ids, caller.in_stock_only
    categories, max_price = caller.categories, caller.max_price

    def allowed(item_id: str) -> bool:
        if item_id in mailed or item_id in excluded or item_id in ruled_out:
            return False
        item = items.get(item_id)
        if item is None:
            return not items  # only an empty catalogue lets unknown items through
        stock = item.stock  # CatalogSnapshot.in_stock, on the item already at hand
        if stock_place is not None and (stock or keeps_stock) and stock.get(stock_place, 0) <= 0:
            return False
        if in_stock_only and (stock or keeps_stock) and stock.get(store_id, 0) <= 0:
            return False
        if categories and item.category not in categories:
            return False
        return not (max_price and effective_price(item) > max_price)

    return allowed


def stock_location(rule: ChannelRule, store_id: str) -> str | None:
    """The store whose stock counts for this channel, or None when stock is not checked."""
    if rule.stock == ONLINE_STOCK:
        return ""
    if rule.stock == STORE_STOCK:
        return store_id or None
    return None


def live_offer(item: Item, now: float | None = None) -> Offer:
    """The offer in force now: a promotion outside its window is not offered (same in every channel)."""
    o = item.offer
    if o is None:
        return Offer(price=item.price)
    now = time.time() if now is None else now
    live = (o.valid_from is None or o.valid_from <= now) and (o.valid_until is None or now < o.valid_until)
    if live or not o.promo_price:
        return o
    return Offer(
        price=o.price or item.price,
        valid_from=o.valid_from,
        valid_until=o.valid_until,
        offer_id=o.offer_id,
        currency=o.currency,
    )


def effective_price(item: Item, now: float | None = None) -> float:
    if item.offer is None:  # most items: their own price, without building an Offer (every candidate asks)
        return item.price
    offer = live_offer(item, now)
    return offer.promo_price if offer.promo_price > 0 else (offer.price or item.price)
