"""Proto messages <-> the plain data of `models.domain`. Nothing else lives here."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, cast

from google.protobuf.timestamp_pb2 import Timestamp

from models.domain import Event, Identifier, Item, Offer
from models.errors import InvalidArgument
from models.serving.recommender import Recommendation, Recommended, RecommendQuery
from models.validation import END_TIME, MAX_STOCK_STORES, MIN_TIME
from protos.seenext.v1 import catalog_pb2, common_pb2, events_pb2, recommendation_pb2

# A google.protobuf.Timestamp holds 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999999Z.
_FIRST_SECOND, _LAST_SECOND = int(MIN_TIME), int(END_TIME) - 1
_FIRST_NS, _LAST_NS = _FIRST_SECOND * 10**9, (_LAST_SECOND + 1) * 10**9 - 1
# The last float before END_TIME: 9999-12-31T23:59:59.999999999 rounds up to END_TIME as a float.
_LAST_TIME = math.nextafter(END_TIME, 0.0)


@lru_cache(maxsize=4096)  # a batch of 1,000 events names ~3,000 enum values; each costs 2 us uncached
def enum_name(enum: Any, value: int, prefix: str) -> str:
    """CHANNEL_WEB -> "WEB"; unset -> "", an unknown number -> "<unknown N>" (both rejected by validation)."""
    try:
        name = enum.Name(value)
    except ValueError:
        return f"<unknown {value}>"
    return "" if name.endswith("_UNSPECIFIED") else name.removeprefix(prefix)


def channel(value: int) -> str:
    return _CHANNEL_NAMES.get(value) or enum_name(common_pb2.Channel, value, "CHANNEL_")


def channel_value(name: str) -> common_pb2.Channel:
    # The stubs type enum numbers as their enum class; at run time they are plain ints.
    return cast(common_pb2.Channel, common_pb2.Channel.Value(f"CHANNEL_{name}") if name else 0)


def event_type_value(name: str) -> common_pb2.EventType:
    return cast(common_pb2.EventType, common_pb2.EventType.Value(f"EVENT_TYPE_{name}") if name else 0)


def time_or_none(ts: Timestamp, present: bool) -> float | None:
    """A request's Timestamp as seconds. One the Timestamp type does not allow is passed on so that the
    domain's check, which knows the field's name (models/validation.check_time), refuses it: nanos outside
    0..999,999,999 become NaN, seconds outside the range stay as they are (outside it)."""
    if not present:
        return None
    if not 0 <= ts.nanos <= 999_999_999:
        return math.nan
    if not _FIRST_SECOND <= ts.seconds <= _LAST_SECOND:
        return float(ts.seconds)
    return min(ts.seconds + ts.nanos / 1e9, _LAST_TIME)


def timestamp(seconds: float | None) -> Timestamp | None:
    nanos = _nanos(seconds)
    if nanos is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(nanos)
    return ts


def _nanos(seconds: float | None) -> int | None:
    """A stored time as Timestamp nanoseconds, never raising. Validation keeps new times inside the range a
    Timestamp holds, but a row an older release stored may hold one outside it (or NaN): one such offer
    made GetItem, and every anonymous Recommend that showed the item, fail INTERNAL. So a time outside is
    clamped to the nearest end (an offer window stays open-ended, which is what such a bound meant), and
    NaN is dropped (unset)."""
    if seconds is None or math.isnan(seconds):
        return None
    if seconds < MIN_TIME:
        return _FIRST_NS
    if seconds >= END_TIME:
        return _LAST_NS
    return max(_FIRST_NS, min(_LAST_NS, int(seconds * 1e9)))


def _set_time(ts: Timestamp, seconds: float | None) -> None:
    """Fills a reply's Timestamp in place (unset when there is no valid time); see _nanos.

    The two fields are set directly: `FromNanoseconds` is Python code of the protobuf package that
    checks the range again (_nanos already clamped into it), and a 10-item reply sets up to 30 of these
    (an offer's window, a reason's date): it was a third of building the reply."""
    nanos = _nanos(seconds)
    if nanos is not None:
        ts.seconds, ts.nanos = divmod(nanos, 1_000_000_000)


def identifier(msg: common_pb2.Identifier) -> Identifier:
    kind = msg.kind
    return Identifier(
        _KIND_NAMES.get(kind) or enum_name(common_pb2.IdentifierKind, kind, "IDENTIFIER_KIND_"), msg.value
    )


def identifier_msg(ident: Identifier) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=f"IDENTIFIER_KIND_{ident.kind}", value=ident.value)


def _names(enum: Any, prefix: str) -> dict[int, str]:
    """Every number of an enum -> its name as `enum_name` gives it (looked up per event: a dict is ~10x
    cheaper than the cached call)."""
    return {v.number: enum_name(enum, v.number, prefix) for v in enum.DESCRIPTOR.values}


_KIND_NAMES = _names(common_pb2.IdentifierKind, "IDENTIFIER_KIND_")
_CHANNEL_NAMES = _names(common_pb2.Channel, "CHANNEL_")
_TYPE_NAMES = _names(common_pb2.EventType, "EVENT_TYPE_")


def event(msg: events_pb2.Event) -> Event:
    """One event (Track); a batch goes through `events`."""
    return events([msg])[0]


def event_msg(e: Event) -> events_pb2.Event:
    """The message a caller sends for an event (the inverse of `event`): clients, benchmarks and tests
    that hold domain events."""
    msg = events_pb2.Event(
        event_id=e.event_id,
        identifiers=[identifier_msg(i) for i in e.identifiers],
        channel=channel_value(e.channel),
        type=event_type_value(e.type),
        item_id=e.item_id,
        quantity=e.quantity,
        price=e.price,
        store_id=e.store_id,
        order_id=e.order_id,
        recommendation_id=e.recommendation_id,
        attributes=e.attributes,
    )
    _set_time(msg.occurred_at, e.occurred_at)
    return msg


# An identifier as sent (kind number, value) -> its domain value, shared by every event that carries it:
# a customer's events repeat their identifiers, and a frozen dataclass costs ~0.7 us to make (issue 11).
# Cleared when full (bounds memory); a race between threads at worst makes one twice.
_IDENTIFIERS: dict[tuple[int, str], Identifier] = {}
_IDENTIFIER_CACHE = 50_000


def _identifier(key: tuple[int, str]) -> Identifier:
    kind, value = key
    ident = Identifier(
        _KIND_NAMES.get(kind) or enum_name(common_pb2.IdentifierKind, kind, "IDENTIFIER_KIND_"), value
    )
    if len(_IDENTIFIERS) >= _IDENTIFIER_CACHE:
        _IDENTIFIERS.clear()
    _IDENTIFIERS[key] = ident
    return ident


def events(msgs: Iterable[events_pb2.Event]) -> list[Event]:
    """A TrackBatch's events, ~4 us each (issue 11): positional arguments, enum names from dicts (a
    number the contract does not know goes through `enum_name`, and validation refuses it), identifiers
    shared across events, the time read in place, no copy of an empty attributes map, names bound once
    per batch."""
    known = _IDENTIFIERS
    make_identifier = _identifier
    channels, types = _CHANNEL_NAMES, _TYPE_NAMES
    first, last, last_time = _FIRST_SECOND, _LAST_SECOND, _LAST_TIME
    out: list[Event] = []
    append = out.append
    for msg in msgs:
        idents = []
        for i in msg.identifiers:
            key = (i.kind, i.value)
            idents.append(known.get(key) or make_identifier(key))
        attributes = msg.attributes
        channel_number, type_number = msg.channel, msg.type
        # The time read once (each read of a sub-message field makes a wrapper); HasField only for a
        # zero one, which may be unset or 1970-01-01 exactly.
        ts = msg.occurred_at
        seconds, nanos = ts.seconds, ts.nanos
        if not (seconds or nanos or msg.HasField("occurred_at")):
            at = None
        elif 0 <= nanos <= 999_999_999 and first <= seconds <= last:
            at = min(seconds + nanos / 1e9, last_time)
        else:
            at = time_or_none(ts, True)  # out of the Timestamp type's range: as validation expects it
        append(
            Event(
                msg.event_id,
                tuple(idents),
                channels.get(channel_number) or channel(channel_number),
                types.get(type_number) or enum_name(common_pb2.EventType, type_number, "EVENT_TYPE_"),
                msg.item_id,
                msg.quantity,
                msg.price,
                msg.store_id,
                msg.order_id,
                msg.recommendation_id,
                at,
                dict(attributes.items()) if attributes else {},  # items(): ~0.5 us less than the map
            )
        )
    return out


def offer(msg: common_pb2.Offer) -> Offer:
    return Offer(
        price=msg.price,
        promo_price=msg.promo_price,
        valid_from=time_or_none(msg.valid_from, msg.HasField("valid_from")),
        valid_until=time_or_none(msg.valid_until, msg.HasField("valid_until")),
        offer_id=msg.offer_id,
        currency=msg.currency,
    )


def offer_msg(o: Offer) -> common_pb2.Offer:
    return common_pb2.Offer(
        price=o.price,
        promo_price=o.promo_price,
        valid_from=timestamp(o.valid_from),
        valid_until=timestamp(o.valid_until),
        offer_id=o.offer_id,
        currency=o.currency,
    )


def item(msg: catalog_pb2.Item, field: str = "item") -> Item:
    """Rows of one store are added up (the domain holds one quantity per store), so each row is checked
    here, where rows still exist: a negative row must not hide in a positive sum. The sum is bounded by
    the domain (models/validation.check_stock)."""
    if len(msg.stock) > MAX_STOCK_STORES:
        raise InvalidArgument(
            f"{field}.stock", f"at most {MAX_STOCK_STORES:,} rows allowed, got {len(msg.stock):,}"
        )
    stock: dict[str, int] = {}
    for j, s in enumerate(msg.stock):
        if s.quantity < 0:
            raise InvalidArgument(f"{field}.stock[{j}].quantity", f"must not be negative, got {s.quantity}")
        stock[s.store_id] = stock.get(s.store_id, 0) + s.quantity
    return Item(
        item_id=msg.item_id,
        title=msg.title,
        category=msg.category,
        brand=msg.brand,
        price=msg.price,
        accessory_for=list(msg.accessory_for),
        repeatable=msg.repeatable if msg.HasField("repeatable") else None,
        attributes=dict(msg.attributes),
        stock=stock,
        offer=offer(msg.offer) if msg.HasField("offer") else None,
        active=msg.active if msg.HasField("active") else True,
    )


def item_msg(it: Item) -> catalog_pb2.Item:
    return catalog_pb2.Item(
        item_id=it.item_id,
        title=it.title,
        category=it.category,
        brand=it.brand,
        price=it.price,
        accessory_for=it.accessory_for,
        repeatable=it.repeatable,
        attributes=it.attributes,
        stock=[catalog_pb2.Stock(store_id=s, quantity=q) for s, q in sorted(it.stock.items())],
        offer=offer_msg(it.offer) if it.offer is not None else None,
        active=it.active,
    )


def recommend_query(msg: recommendation_pb2.RecommendRequest) -> RecommendQuery:
    context, wanted = msg.context, msg.filter  # each attribute read of a sub-message is a lookup
    return RecommendQuery(
        channel=channel(msg.channel),
        who=identifier(msg.who) if msg.HasField("who") else None,
        placement=msg.placement or "home",
        item_ids=list(context.item_ids),
        basket_item_ids=list(context.basket_item_ids),
        store_id=context.store_id,
        k=msg.k,
        categories=list(wanted.categories),
        exclude_item_ids=list(wanted.exclude_item_ids),
        max_price=wanted.max_price,
        in_stock_only=wanted.in_stock_only,
        explain=msg.explain,
    )


def recommended_msg(r: Recommended) -> common_pb2.RecommendedItem:
    msg = common_pb2.RecommendedItem()
    _fill_recommended(msg, r)
    return msg


def recommendation_msg(rec: Recommendation) -> recommendation_pb2.RecommendResponse:
    msg = recommendation_pb2.RecommendResponse(
        recommendation_id=rec.recommendation_id,
        customer_id=rec.customer_id,
        recognised=rec.recognised,
        model_version=rec.model_version,
        strategy=rec.strategy,
    )
    add = msg.items.add
    for r in rec.items:
        _fill_recommended(add(), r)
    return msg


def _fill_recommended(msg: common_pb2.RecommendedItem, r: Recommended) -> None:
    """Fills a reply's item in place: building sub-messages and copying them in took 3x as long, and
    setting only the fields that differ from their default ~30 % less again (each set is a call into
    the protobuf runtime: 52 -> 37 us for a 10-item reply)."""
    msg.item_id, msg.score = r.item_id, r.score
    if r.title:
        msg.title = r.title
    if r.category:
        msg.category = r.category
    if r.offer is not None:
        _fill_offer(msg.offer, r.offer)
    for x in r.reasons:
        reason = msg.reasons.add(code=x.code)
        if x.text:
            reason.text = x.text
        if x.related_item_id:
            reason.related_item_id = x.related_item_id
        if x.related_at is not None:
            _set_time(reason.related_at, x.related_at)


def _fill_offer(msg: common_pb2.Offer, o: Offer) -> None:
    msg.price = o.price  # set even when 0: the offer is present in the reply
    if o.promo_price:
        msg.promo_price = o.promo_price
    if o.offer_id:
        msg.offer_id = o.offer_id
    if o.currency:
        msg.currency = o.currency
    if o.valid_from is not None:
        _set_time(msg.valid_from, o.valid_from)
    if o.valid_until is not None:
        _set_time(msg.valid_until, o.valid_until)
