"""Rows <-> domain values, the same for every backend: what a stored item, event or customer-state
row holds (JSON text for the mappings and lists, integers for the flags)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from models.domain import Item, Offer
from models.storage.events import EventRow
from models.storage.merchandising import StoredConfig, StoredConfigChange, StoredRule, StoredRuleChange
from models.storage.serving import CustomerRecord, ItemEvent, Tally


def event_values(rows: Sequence[EventRow]) -> list[tuple[Any, ...]]:
    """The insert values of events, in the order of `EVENT_COLUMNS`: the rows themselves (an EventRow is
    a tuple in that order), with the attributes as JSON text (a row may hold that text already)."""
    return [
        r
        if r.attributes is None or isinstance(r.attributes, str)
        else (*r[:12], attributes_json(r.attributes))
        for r in rows
    ]


# json.dumps(..., sort_keys=True) builds an encoder per call (~1.5 us, half an event's attributes'
# cost in a TrackBatch); this one is built once and gives the same text.
_SORTED_JSON = json.JSONEncoder(sort_keys=True).encode


def attributes_json(attributes: Mapping[str, str]) -> str | None:
    """An event's attributes as the events table stores them: sorted JSON text, None for none (also for
    a caller that encodes them ahead of the insert, as TrackBatch does)."""
    if not attributes:
        return None
    return _SORTED_JSON(attributes if type(attributes) is dict else dict(attributes))


EVENT_COLUMNS = (
    "event_id, customer_id, channel, type, item_id, quantity, price, store_id, order_id,"
    " recommendation_id, occurred_at, received_at, attributes"
)
ITEM_COLUMNS = "item_id, title, category, brand, price, repeatable, active, attributes, accessory_for, offer"


def item_row(it: Item) -> tuple[Any, ...]:
    offer = None
    if it.offer is not None:
        o = it.offer
        offer = json.dumps(
            {
                "price": o.price,
                "promo_price": o.promo_price,
                "valid_from": o.valid_from,
                "valid_until": o.valid_until,
                "offer_id": o.offer_id,
                "currency": o.currency,
            }
        )
    return (
        it.item_id,
        it.title,
        it.category,
        it.brand,
        it.price,
        None if it.repeatable is None else int(it.repeatable),
        int(it.active),
        json.dumps(it.attributes, sort_keys=True),
        json.dumps(it.accessory_for),
        offer,
    )


def item_from_row(row: tuple[Any, ...], stock: dict[str, int]) -> Item:
    item_id, title, category, brand, price, repeatable, active, attributes, accessory_for, offer = row
    return Item(
        item_id=item_id,
        title=title or "",
        category=category or "",
        brand=brand or "",
        price=price or 0.0,
        accessory_for=json.loads(accessory_for or "[]"),
        repeatable=None if repeatable is None else bool(repeatable),
        active=bool(active),
        attributes=json.loads(attributes or "{}"),
        stock=stock,
        offer=Offer(**json.loads(offer)) if offer else None,
    )


def customer_record(rows: Sequence[tuple[Any, ...]]) -> CustomerRecord:
    """The tagged rows of one customer-state statement as a record."""
    customer_id: str | None = None
    aliases: list[tuple[float, str]] = []
    purchases: dict[str, Tally] = {}
    returns: dict[str, Tally] = {}
    recent: list[tuple[float, int, ItemEvent]] = []
    consents: dict[tuple[str, str], bool] = {}
    mailed: set[str] = set()
    for tag, a, b, t, n in rows:
        if tag == "customer":
            customer_id = a
        elif tag == "alias":
            aliases.append((t or 0.0, a))
        elif tag == "history":
            (purchases if b == "PURCHASE" else returns)[a] = Tally(float(t), int(n))
        elif tag == "recent":
            recent.append((t, n, ItemEvent(a, b, float(t))))
        elif tag == "consent":
            consents[(a, b)] = bool(n)
        elif tag == "mailed":
            mailed.add(a)
        elif tag == "mailed_rec":
            mailed.update(json.loads(a or "[]"))
    if customer_id is None:
        return CustomerRecord(None)
    recent.sort(key=lambda r: (r[0], r[1]), reverse=True)  # a union keeps no order: newest first again
    return CustomerRecord(
        customer_id,
        tuple(a for _, a in sorted(aliases)),
        purchases,
        returns,
        tuple(e for _, _, e in recent),
        consents,
        frozenset(mailed),
    )


# The columns an insights read may ask of the events table by name (both backends check against it).
READABLE_EVENT_COLUMNS = frozenset({"seq", *(c.strip() for c in EVENT_COLUMNS.split(","))})

# Merchandising rows, in the column order both backends select them.
RULE_COLUMNS = "rule_id, spec, version, created_at, updated_by, updated_at, deleted"
RULE_CHANGE_COLUMNS = "rule_id, version, change, spec, changed_by, changed_at"
CONFIG_COLUMNS = "kind, key, spec, version, updated_by, updated_at"
CONFIG_CHANGE_COLUMNS = "kind, key, version, change, spec, changed_by, changed_at"


def stored_rule(r: Sequence[Any]) -> StoredRule:
    return StoredRule(str(r[0]), str(r[1]), int(r[2]), float(r[3]), str(r[4]), float(r[5]), bool(r[6]))


def stored_rule_change(r: Sequence[Any]) -> StoredRuleChange:
    return StoredRuleChange(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), float(r[5]))


def stored_config(r: Sequence[Any]) -> StoredConfig:
    return StoredConfig(str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), float(r[5]))


def stored_config_change(r: Sequence[Any]) -> StoredConfigChange:
    return StoredConfigChange(str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]), float(r[6]))
