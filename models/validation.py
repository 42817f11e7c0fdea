"""Checks on incoming data. Each failure names the field and the value received.

Every string, map and list a caller can send has a bound (docs/limits.md, and the comment of each field
in protos/seenext/v1/). The bounds sit far above what a retailer sends and far below what would hurt: a
60 MB attribute or 100,000 identifiers on one event would be stored, then break that customer's Export
(a default client reads at most 4 MB) and every read of the row. Checking here, in the domain, gives
every transport (gRPC, the command line, the importers) the same bounds.

A message quotes at most `QUOTE_LENGTH` characters of a value: gRPC carries the message in a trailer
of at most 16 KiB, and a 1 MB value echoed back came out as "metadata size exceeds hard limit".
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from models.domain import (
    CHANNELS,
    EVENT_TYPES,
    IDENTIFIER_KINDS,
    ITEM_EVENT_TYPES,
    Event,
    Identifier,
    Item,
    Offer,
)
from models.errors import InvalidArgument

MAX_ID_LENGTH = 128  # event_id, item_id and every item id in a list
MAX_REF_LENGTH = 256  # store_id, order_id, recommendation_id, offer_id, category, brand, filter categories
MAX_IDENTIFIER_LENGTH = 320  # an identifier's value (check_identifier; an e-mail address has at most 254)
MAX_TITLE_LENGTH = 1_000  # an item's title
MAX_NAME_LENGTH = 64  # placement, currency: names, not text
MAX_PAGE_TOKEN_LENGTH = 1_024  # GetProfile's page_token (the service's own are ~40 characters)
MAX_VERSION_LENGTH = 100  # a model version name (the registry's pattern allows 100 characters)
MAX_ATTRIBUTES = 64  # entries of an event's or an item's attributes
MAX_ATTRIBUTE_KEY_LENGTH = 128
MAX_ATTRIBUTE_VALUE_LENGTH = 4_096
MAX_IDENTIFIERS_PER_EVENT = 16  # a till sends a card and a token, a login an account, e-mail and device
MAX_BATCH = 10_000  # events per TrackBatch, items per UpsertItems
MAX_ACCESSORY_FOR = 1_000  # items one item is an accessory of (a charger fits many phones)
MAX_STOCK_STORES = 50_000  # stock rows of one item (the largest chains have about 10,000 stores)
MAX_QUANTITY = 2**31 - 1  # units per store, after rows of one store are added up (int32 in the contract)
MAX_SESSION_ITEMS = 1_000  # context.item_ids, context.basket_item_ids, filter.exclude_item_ids
MAX_FILTER_CATEGORIES = 1_000
QUOTE_LENGTH = 64

# The instants a google.protobuf.Timestamp holds: 0001-01-01T00:00:00Z up to, not including,
# 10000-01-01T00:00:00Z. A time outside cannot be sent back (the library raises), so none is stored.
MIN_TIME = -62_135_596_800.0
END_TIME = 253_402_300_800.0
OCCURRED_END = 4_102_444_800.0  # 2100-01-01: an event "in 2345" is a wrong clock, not a plan


def quote(value: str, limit: int = QUOTE_LENGTH) -> str:
    """`value` as repr() shows it, cut to `limit` characters with its length when longer."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({len(value):,} characters)"


def check_identifier(ident: Identifier, field: str) -> None:
    if ident.kind not in IDENTIFIER_KINDS:
        raise InvalidArgument(
            f"{field}.kind", f"must be one of {', '.join(IDENTIFIER_KINDS)}, got {ident.kind!r}"
        )
    if not ident.value.strip():
        raise InvalidArgument(f"{field}.value", "is required")
    if len(ident.value) > 320:
        raise InvalidArgument(f"{field}.value", f"is {len(ident.value)} characters long, at most 320 allowed")


_IDENTIFIER_KIND_SET = frozenset(IDENTIFIER_KINDS)
_CHANNEL_SET = frozenset(CHANNELS)
_EVENT_TYPE_SET = frozenset(EVENT_TYPES)


def event_passes(event: Event) -> bool:
    """Whether `check_event` would find nothing wrong, decided without building a field name: True only
    when every check holds. A batch calls `check_event` (which names the field at fault) only for an
    event this refuses, so a valid event costs no f-string (issue 11: check_event built ~20 field
    names per event, ~15% of TrackBatch). tests/models/test_validation_fast.py holds the two together."""
    event_id, idents, attributes = event.event_id, event.identifiers, event.attributes
    if not event_id or len(event_id) > MAX_ID_LENGTH or not idents or len(idents) > MAX_IDENTIFIERS_PER_EVENT:
        return False
    for ident in idents:
        value = ident.value
        if ident.kind not in _IDENTIFIER_KIND_SET or len(value) > MAX_IDENTIFIER_LENGTH or not value.strip():
            return False
    if event.channel not in _CHANNEL_SET or event.type not in _EVENT_TYPE_SET:
        return False
    item_id = event.item_id
    if len(item_id) > MAX_ID_LENGTH or (not item_id and event.type in ITEM_EVENT_TYPES):
        return False
    if event.quantity < 0 or not 0.0 <= event.price < math.inf:  # NaN fails every comparison
        return False
    if (
        len(event.store_id) > MAX_REF_LENGTH
        or len(event.order_id) > MAX_REF_LENGTH
        or len(event.recommendation_id) > MAX_REF_LENGTH
    ):
        return False
    at = event.occurred_at
    if at is not None and not 0.0 <= at < OCCURRED_END:
        return False
    return not attributes or _attributes_pass(attributes)


def _attributes_pass(attributes: Mapping[str, str]) -> bool:
    if len(attributes) > MAX_ATTRIBUTES:
        return False
    return all(
        len(key) <= MAX_ATTRIBUTE_KEY_LENGTH and len(value) <= MAX_ATTRIBUTE_VALUE_LENGTH
        for key, value in attributes.items()
    )


def check_event(event: Event, field: str = "event") -> None:
    _check_id(event.event_id, f"{field}.event_id")
    if not event.identifiers:
        raise InvalidArgument(f"{field}.identifiers", "at least one identifier is required")
    check_count(len(event.identifiers), f"{field}.identifiers", MAX_IDENTIFIERS_PER_EVENT, "identifiers")
    for i, ident in enumerate(event.identifiers):
        check_identifier(ident, f"{field}.identifiers[{i}]")
    if event.channel not in CHANNELS:
        raise InvalidArgument(
            f"{field}.channel", f"must be set to one of {', '.join(CHANNELS)}, got {event.channel!r}"
        )
    if event.type not in EVENT_TYPES:
        raise InvalidArgument(
            f"{field}.type", f"must be set to one of {', '.join(EVENT_TYPES)}, got {event.type!r}"
        )
    if event.type in ITEM_EVENT_TYPES:
        _check_id(event.item_id, f"{field}.item_id", what=f"for a {event.type} event")
    else:
        check_text(event.item_id, f"{field}.item_id", MAX_ID_LENGTH)
    if event.quantity < 0:
        raise InvalidArgument(f"{field}.quantity", f"must not be negative, got {event.quantity}")
    if not math.isfinite(event.price) or event.price < 0:
        raise InvalidArgument(f"{field}.price", f"must be a finite amount >= 0, got {event.price}")
    check_text(event.store_id, f"{field}.store_id", MAX_REF_LENGTH)
    check_text(event.order_id, f"{field}.order_id", MAX_REF_LENGTH)
    check_text(event.recommendation_id, f"{field}.recommendation_id", MAX_REF_LENGTH)
    if event.occurred_at is not None:
        check_time(event.occurred_at, f"{field}.occurred_at", 0.0, OCCURRED_END)
    check_attributes(event.attributes, f"{field}.attributes")


def check_item(item: Item, field: str = "item") -> None:
    _check_id(item.item_id, f"{field}.item_id")
    check_text(item.title, f"{field}.title", MAX_TITLE_LENGTH)
    check_text(item.category, f"{field}.category", MAX_REF_LENGTH)
    check_text(item.brand, f"{field}.brand", MAX_REF_LENGTH)
    _check_amount(item.price, f"{field}.price")
    check_count(len(item.accessory_for), f"{field}.accessory_for", MAX_ACCESSORY_FOR, "item ids")
    for i, other in enumerate(item.accessory_for):
        _check_id(other, f"{field}.accessory_for[{i}]")
        if other == item.item_id:
            raise InvalidArgument(
                f"{field}.accessory_for[{i}]", f"an item cannot be an accessory of itself ({quote(other)})"
            )
    check_attributes(item.attributes, f"{field}.attributes")
    check_stock(item.stock, f"{field}.stock")
    if item.offer is not None:
        check_offer(item.offer, f"{field}.offer")


def check_stock(stock: Mapping[str, int], field: str) -> None:
    """Units per store: 0 to MAX_QUANTITY each. The contract's rows of one store are added up first
    (server/convert.py), so a sum past an int32 is refused here: GetItem could not send it back."""
    check_count(len(stock), field, MAX_STOCK_STORES, "stores")
    for store, qty in stock.items():
        check_text(store, field, MAX_REF_LENGTH, what="a store_id")
        if qty < 0:
            raise InvalidArgument(field, f"quantity for store {quote(store)} must not be negative, got {qty}")
        if qty > MAX_QUANTITY:
            raise InvalidArgument(
                field, f"quantity for store {quote(store)} adds up to {qty:,}, at most {MAX_QUANTITY:,}"
            )


# The Item fields a partial UpsertItems may name (item_id is the key, never updated).
UPDATABLE_ITEM_FIELDS = (
    "title", "category", "brand", "price", "accessory_for", "repeatable",
    "attributes", "stock", "offer", "active",
)  # fmt: skip


def check_update_mask(paths: Sequence[str], field: str = "update_mask.paths") -> tuple[str, ...]:
    """The mask's paths, each a top-level updatable Item field, each once."""
    check_count(len(paths), field, len(UPDATABLE_ITEM_FIELDS), "paths")
    for i, path in enumerate(paths):
        if path not in UPDATABLE_ITEM_FIELDS:
            raise InvalidArgument(
                f"{field}[{i}]",
                f"{quote(path)} is not an updatable Item field; use {', '.join(UPDATABLE_ITEM_FIELDS)}",
            )
    return tuple(dict.fromkeys(paths))


def check_items(items: Sequence[Item], field: str = "items") -> None:
    """An UpsertItems batch: 1 to MAX_BATCH valid items, each item_id once (the second one is named:
    which of two versions of an item should win is the caller's call, not ours)."""
    check_batch_size(len(items), field, "item")
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        check_item(item, f"{field}[{i}]")
        j = first.setdefault(item.item_id, i)
        if j != i:
            raise InvalidArgument(
                f"{field}[{i}].item_id", f"{quote(item.item_id)} is also {field}[{j}]; send each item once"
            )


def check_offer(offer: Offer, field: str = "offer") -> None:
    _check_amount(offer.price, f"{field}.price")
    _check_amount(offer.promo_price, f"{field}.promo_price")
    if offer.valid_from is not None:
        check_time(offer.valid_from, f"{field}.valid_from")
    if offer.valid_until is not None:
        check_time(offer.valid_until, f"{field}.valid_until")
    check_text(offer.offer_id, f"{field}.offer_id", MAX_REF_LENGTH)
    check_text(offer.currency, f"{field}.currency", MAX_NAME_LENGTH)


def check_attributes(attributes: Mapping[str, str], field: str) -> None:
    """At most MAX_ATTRIBUTES entries; keys and values bounded. The field is the map itself (a key may
    be anything, so it is quoted in the message instead)."""
    check_count(len(attributes), field, MAX_ATTRIBUTES, "entries")
    for key, value in attributes.items():
        if len(key) > MAX_ATTRIBUTE_KEY_LENGTH:
            raise InvalidArgument(
                field,
                f"the key {quote(key)} is longer than {MAX_ATTRIBUTE_KEY_LENGTH} characters",
            )
        if len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
            raise InvalidArgument(
                field,
                f"the value of {quote(key)} is {len(value):,} characters long, "
                f"at most {MAX_ATTRIBUTE_VALUE_LENGTH:,} allowed",
            )


class QueryShape(Protocol):
    """What a Recommend query carries that has a size (models.serving.recommender.RecommendQuery)."""

    @property
    def placement(self) -> str: ...
    @property
    def store_id(self) -> str: ...
    @property
    def item_ids(self) -> Sequence[str]: ...
    @property
    def basket_item_ids(self) -> Sequence[str]: ...
    @property
    def categories(self) -> Sequence[str]: ...
    @property
    def exclude_item_ids(self) -> Sequence[str]: ...


def check_query_sizes(q: QueryShape) -> None:
    """The bounds of a Recommend request's strings and lists (field names as in RecommendRequest)."""
    check_text(q.placement, "placement", MAX_NAME_LENGTH)
    check_text(q.store_id, "context.store_id", MAX_REF_LENGTH)
    check_ids(q.item_ids, "context.item_ids", MAX_SESSION_ITEMS)
    check_ids(q.basket_item_ids, "context.basket_item_ids", MAX_SESSION_ITEMS)
    check_ids(q.categories, "filter.categories", MAX_FILTER_CATEGORIES, MAX_REF_LENGTH)
    check_ids(q.exclude_item_ids, "filter.exclude_item_ids", MAX_SESSION_ITEMS)


def check_ids(values: Sequence[str], field: str, limit: int, length: int = MAX_ID_LENGTH) -> None:
    """A list of at most `limit` strings of at most `length` characters each (an empty list is fine)."""
    check_count(len(values), field, limit, "entries")
    for i, value in enumerate(values):
        check_text(value, f"{field}[{i}]", length)


def check_text(value: str, field: str, limit: int, what: str = "") -> None:
    """An optional string of at most `limit` characters."""
    if len(value) > limit:
        subject = f"{what} " if what else ""
        raise InvalidArgument(
            field, f"{subject}is {len(value):,} characters long, at most {limit:,} allowed: {quote(value)}"
        )


def check_count(n: int, field: str, limit: int, what: str) -> None:
    if n > limit:
        raise InvalidArgument(field, f"at most {limit:,} {what} allowed, got {n:,}")


def check_time(value: float, field: str, lo: float = MIN_TIME, hi: float = END_TIME) -> None:
    """A time in [lo, hi). NaN is how server/convert.py passes on a Timestamp whose nanos are outside
    0..999,999,999, so that this check, which knows the field, refuses it."""
    if math.isnan(value):
        raise InvalidArgument(field, "is not a valid timestamp: nanos must be between 0 and 999,999,999")
    if not lo <= value < hi:
        raise InvalidArgument(
            field, f"must be at or after {_iso(lo)} and before {_iso(hi)}, got {value:.0f} s since 1970"
        )


def check_batch_size(n: int, field: str, what: str, limit: int = MAX_BATCH) -> None:
    """A list in a request holds 1 to `limit` entries."""
    if n == 0:
        raise InvalidArgument(field, f"at least one {what} is required")
    if n > limit:
        raise InvalidArgument(field, f"at most {limit} {what}s per call, got {n}")


def check_k(k: int, max_k: int, field: str = "k", default: int = 10) -> int:
    """0 means the default; otherwise 1..max_k."""
    if k == 0:
        return default
    if not 1 <= k <= max_k:
        raise InvalidArgument(field, f"must be between 1 and {max_k} (0 means {default}), got {k}")
    return k


def _check_id(value: str, field: str, what: str = "") -> None:
    if not value:
        raise InvalidArgument(field, f"is required{' ' + what if what else ''}")
    check_text(value, field, MAX_ID_LENGTH)


def _check_amount(value: float, field: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(field, f"must be a finite amount >= 0, got {value}")


def _iso(seconds: float) -> str:
    if seconds >= END_TIME:
        return "10000-01-01T00:00:00Z"
    if seconds <= MIN_TIME:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
