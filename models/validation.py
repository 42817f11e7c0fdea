"""Checks on incoming data. Each failure names the field and the value received."""

from __future__ import annotations

import math

from models.domain import CHANNELS, EVENT_TYPES, IDENTIFIER_KINDS, ITEM_EVENT_TYPES, Event, Identifier, Item
from models.errors import InvalidArgument

MAX_ID_LENGTH = 128
MAX_BATCH = 10_000


def check_identifier(ident: Identifier, field: str) -> None:
    if ident.kind not in IDENTIFIER_KINDS:
        raise InvalidArgument(
            f"{field}.kind", f"must be one of {', '.join(IDENTIFIER_KINDS)}, got {ident.kind!r}"
        )
    if not ident.value.strip():
        raise InvalidArgument(f"{field}.value", "is required")
    if len(ident.value) > 320:
        raise InvalidArgument(f"{field}.value", f"is {len(ident.value)} characters long, at most 320 allowed")


def check_event(event: Event, field: str = "event") -> None:
    _check_id(event.event_id, f"{field}.event_id")
    if not event.identifiers:
        raise InvalidArgument(f"{field}.identifiers", "at least one identifier is required")
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
    elif len(event.item_id) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{field}.item_id", f"is longer than {MAX_ID_LENGTH} characters")
    if event.quantity < 0:
        raise InvalidArgument(f"{field}.quantity", f"must not be negative, got {event.quantity}")
    if not math.isfinite(event.price) or event.price < 0:
        raise InvalidArgument(f"{field}.price", f"must be a finite amount >= 0, got {event.price}")
    if event.occurred_at is not None and not (0 < event.occurred_at < 4102444800):  # before 2100
        raise InvalidArgument(f"{field}.occurred_at", f"is out of range: {event.occurred_at}")


def check_item(item: Item, field: str = "item") -> None:
    _check_id(item.item_id, f"{field}.item_id")
    if not math.isfinite(item.price) or item.price < 0:
        raise InvalidArgument(f"{field}.price", f"must be a finite amount >= 0, got {item.price}")
    for i, other in enumerate(item.accessory_for):
        _check_id(other, f"{field}.accessory_for[{i}]")
        if other == item.item_id:
            raise InvalidArgument(
                f"{field}.accessory_for[{i}]", f"an item cannot be an accessory of itself ({other!r})"
            )
    for store, qty in item.stock.items():
        if qty < 0:
            raise InvalidArgument(
                f"{field}.stock", f"quantity for store {store!r} must not be negative, got {qty}"
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
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(field, f"is {len(value)} characters long, at most {MAX_ID_LENGTH} allowed")
