"""Bounds on what is stored (issue 10, points 2, 7 and 8): every string, map and list, every time.

Each refusal names the field and stays short, however large the value was (docs/limits.md).
"""

from __future__ import annotations

import math

import pytest

from models.domain import Event, Identifier, Item, Offer
from models.errors import InvalidArgument
from models.insights.reports import period
from models.service import Seenext
from models.validation import (
    END_TIME,
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_IDENTIFIERS_PER_EVENT,
    MAX_QUANTITY,
    MIN_TIME,
    check_event,
    check_item,
    check_items,
    check_time,
    quote,
)

WHO = (Identifier("CUSTOMER_ID", "c1"),)
SHORT = 300  # characters an error message may take, whatever the value was


def visit(**kw: object) -> Event:
    base: dict[str, object] = {"event_id": "e1", "identifiers": WHO, "channel": "WEB", "type": "VISIT"}
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


def refused(check: object, *args: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        check(*args)  # type: ignore[operator]
    assert len(info.value.message) < SHORT, info.value.message
    return info.value


def test_quote_cuts_long_values_and_says_how_long() -> None:
    assert quote("abc") == "'abc'"
    text = quote("x" * 1_000_000)
    assert len(text) < 100 and "1,000,000 characters" in text


@pytest.mark.parametrize(
    "event, field",
    [
        (visit(store_id="s" * 1_000_000), "event.store_id"),
        (visit(order_id="o" * 257), "event.order_id"),
        (visit(recommendation_id="r" * 257), "event.recommendation_id"),
        (visit(item_id="i" * 129), "event.item_id"),
        (visit(attributes={"q": "x" * 60_000_000}), "event.attributes"),
        (visit(attributes={"k" * 129: "v"}), "event.attributes"),
        (visit(attributes={str(n): "v" for n in range(MAX_ATTRIBUTES + 1)}), "event.attributes"),
        (
            visit(identifiers=tuple(Identifier("DEVICE_ID", f"d{n}") for n in range(100_000))),
            "event.identifiers",
        ),
        (visit(occurred_at=math.nan), "event.occurred_at"),
        (visit(occurred_at=-1.0), "event.occurred_at"),
        (visit(occurred_at=4_102_444_800.0), "event.occurred_at"),
    ],
)
def test_oversized_or_out_of_range_events_are_refused_shortly(event: Event, field: str) -> None:
    assert refused(check_event, event).field == field


def test_events_at_the_bounds_pass() -> None:
    check_event(
        visit(
            identifiers=tuple(Identifier("DEVICE_ID", f"d{n}") for n in range(MAX_IDENTIFIERS_PER_EVENT)),
            attributes={f"k{n}": "v" * MAX_ATTRIBUTE_VALUE_LENGTH for n in range(MAX_ATTRIBUTES)},
            store_id="s" * 256,
            occurred_at=0.0,
        )
    )


@pytest.mark.parametrize(
    "item, field",
    [
        (Item("a", title="t" * 1_001), "item.title"),
        (Item("a", category="c" * 257), "item.category"),
        (Item("a", brand="b" * 257), "item.brand"),
        (Item("a", accessory_for=[f"m{n}" for n in range(1_001)]), "item.accessory_for"),
        (Item("a", accessory_for=["m" * 129]), "item.accessory_for[0]"),
        (Item("a", attributes={"colour": "x" * 5_000}), "item.attributes"),
        (Item("a", stock={"s" * 1_000_000: 1}), "item.stock"),
        (Item("a", stock={"s": MAX_QUANTITY + 1}), "item.stock"),
        (Item("a", offer=Offer(valid_from=-62_135_596_810.0)), "item.offer.valid_from"),
        (Item("a", offer=Offer(valid_until=253_402_300_799.0 + 10**6)), "item.offer.valid_until"),
        (Item("a", offer=Offer(valid_until=math.nan)), "item.offer.valid_until"),
        (Item("a", offer=Offer(valid_from=math.inf)), "item.offer.valid_from"),
        (Item("a", offer=Offer(promo_price=math.nan)), "item.offer.promo_price"),
        (Item("a", offer=Offer(price=-1.0)), "item.offer.price"),
        (Item("a", offer=Offer(offer_id="o" * 257)), "item.offer.offer_id"),
        (Item("a", offer=Offer(currency="EUR" * 30)), "item.offer.currency"),
    ],
)
def test_oversized_or_out_of_range_items_are_refused_shortly(item: Item, field: str) -> None:
    assert refused(check_item, item).field == field


def test_an_offer_window_may_span_the_whole_timestamp_range() -> None:
    check_item(Item("a", offer=Offer(valid_from=MIN_TIME, valid_until=math.nextafter(END_TIME, 0.0))))


def test_the_second_copy_of_an_item_is_named() -> None:
    err = refused(check_items, [Item("a"), Item("b"), Item("a")])
    assert err.field == "items[2].item_id" and "items[0]" in err.message


def test_a_nan_time_is_refused_as_an_invalid_timestamp() -> None:
    assert "nanos" in refused(check_time, math.nan, "t").message


def test_report_periods_are_bounded_and_the_default_start_stays_in_range() -> None:
    assert refused(period, None, float(2**62)).field == "period_end"
    assert refused(period, MIN_TIME - 10, None).field == "period_start"
    start, end = period(None, MIN_TIME + 86_400.0)
    assert start == MIN_TIME and end == MIN_TIME + 86_400.0


def test_upsert_refuses_a_duplicate_and_a_stock_overflow(service: Seenext) -> None:
    with pytest.raises(InvalidArgument) as info:
        service.upsert_items([Item("a", stock={"s": 1}), Item("a", stock={"s": 2})])
    assert info.value.field == "items[1].item_id"
    with pytest.raises(InvalidArgument) as info:
        service.upsert_items([Item("b", stock={"s": 3 * (2**31 - 1)})])
    assert info.value.field == "items[0].stock"
    assert service.all_items() == []


@pytest.mark.parametrize(
    "start, end, field",
    [
        (-62_135_596_800.0 - 400 * 86_400.0, -62_135_596_800.0 - 380 * 86_400.0, "window_start"),
        (-62_135_596_800.0, -62_135_596_800.0 + 20 * 86_400.0, "window_start"),  # year 1: no events
        (END_TIME - 86_400.0, END_TIME + 86_400.0, "window_end"),
        (math.nan, 1e9, "window_start"),
    ],
)
def test_reminder_windows_outside_the_range_are_refused(
    service: Seenext, start: float, end: float, field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        list(service.due_reminders(start, end))
    assert info.value.field == field


def test_a_reminder_window_at_the_end_of_time_is_answered(service: Seenext) -> None:
    assert list(service.due_reminders(END_TIME - 20 * 86_400.0, math.nextafter(END_TIME, 0.0))) == []
