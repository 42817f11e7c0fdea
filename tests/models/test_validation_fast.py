"""The batch's fast check (`event_passes`) agrees with `check_event` on every event: it lets through
only what `check_event` accepts, and refuses what it refuses (so the named error still comes)."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from models.domain import CHANNELS, EVENT_TYPES, IDENTIFIER_KINDS, Event, Identifier
from models.errors import InvalidArgument
from models.validation import (
    MAX_ATTRIBUTE_KEY_LENGTH,
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_ATTRIBUTES,
    MAX_ID_LENGTH,
    MAX_IDENTIFIER_LENGTH,
    MAX_IDENTIFIERS_PER_EVENT,
    MAX_REF_LENGTH,
    OCCURRED_END,
    check_event,
    event_passes,
)


def accepted(ev: Event) -> bool:
    try:
        check_event(ev, "events[0]")
    except InvalidArgument:
        return False
    return True


def mostly(good: list[object], bad: list[object]) -> st.SearchStrategy[object]:
    """Good values nine times in ten, so that about a third of the events pass every check."""
    return st.sampled_from(good * (9 * max(1, len(bad)) // len(good) + 1) + bad)


def text(limit: int) -> st.SearchStrategy[object]:
    """Strings around a bound: within it mostly; empty, blank, at it or one past it."""
    return mostly(["x", " x ", "x" * limit], ["", " ", "\t", "x" * (limit + 1)])


identifiers = st.lists(
    st.builds(
        Identifier,
        mostly(list(IDENTIFIER_KINDS), ["", "FAX"]),
        text(MAX_IDENTIFIER_LENGTH),
    ),
    min_size=0,
    max_size=MAX_IDENTIFIERS_PER_EVENT + 1,
).map(tuple)
attributes = st.dictionaries(
    mostly(["k", "k" * MAX_ATTRIBUTE_KEY_LENGTH], ["k" * (MAX_ATTRIBUTE_KEY_LENGTH + 1)]),
    mostly(["", "v", "v" * MAX_ATTRIBUTE_VALUE_LENGTH], ["v" * (MAX_ATTRIBUTE_VALUE_LENGTH + 1)]),
    max_size=3,
)
too_many = {f"k{n}": "v" for n in range(MAX_ATTRIBUTES + 1)}
attributes = st.tuples(attributes, st.integers(0, 9)).map(lambda p: too_many if p[1] == 0 else p[0])
events = st.builds(
    Event,
    event_id=text(MAX_ID_LENGTH),
    identifiers=identifiers,
    channel=mostly(list(CHANNELS), ["", "<unknown 99>"]),
    type=mostly(list(EVENT_TYPES), ["", "<unknown 99>"]),
    item_id=text(MAX_ID_LENGTH),
    quantity=mostly([0, 1, 2**31], [-1]),
    price=mostly([0.0, 9.5], [-0.01, math.nan, math.inf, -math.inf]),
    store_id=text(MAX_REF_LENGTH),
    order_id=text(MAX_REF_LENGTH),
    recommendation_id=text(MAX_REF_LENGTH),
    occurred_at=mostly(
        [None, 0.0, 1.7e9, math.nextafter(OCCURRED_END, 0)], [-1.0, OCCURRED_END, math.nan, math.inf]
    ),
    attributes=attributes,
)


@settings(max_examples=600, deadline=None, database=None)
@given(events)
def test_the_fast_check_agrees_with_check_event(ev: Event) -> None:
    assert event_passes(ev) == accepted(ev)


def test_a_plain_event_passes_and_each_bad_field_is_refused() -> None:
    good = Event("e1", (Identifier("EMAIL", "a@b.example"),), "WEB", "VIEW", "i1", attributes={"k": "v"})
    assert event_passes(good) and accepted(good)
    for change in (
        {"event_id": ""},
        {"identifiers": ()},
        {"channel": ""},
        {"type": "PURCHASE", "item_id": ""},
        {"price": math.nan},
        {"occurred_at": math.nan},
        {"order_id": "o" * (MAX_REF_LENGTH + 1)},
    ):
        bad = dataclasses.replace(good, **change)  # type: ignore[arg-type]
        assert not event_passes(bad) and not accepted(bad), change
