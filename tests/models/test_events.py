"""Event store: validation, idempotency, batches that account for every event, history reads."""

from __future__ import annotations

import json

import pytest

from models.domain import Event, Identifier
from models.errors import InvalidArgument
from models.service import Seenext
from models.settings import Settings
from tests.conftest import stored_rows

WHO = (Identifier("CUSTOMER_ID", "c1"),)


def ev(event_id: str, type_: str = "VIEW", item: str = "i1", **kw: object) -> Event:
    return Event(event_id, kw.pop("who", WHO), kw.pop("channel", "WEB"), type_, item, **kw)  # type: ignore[arg-type]


def test_track_is_idempotent_by_event_id(service: Seenext) -> None:
    first = service.track(ev("e1", "PURCHASE"))
    again = service.track(ev("e1", "PURCHASE"))
    assert (first.customer_id, first.duplicate) == ("c1", False)
    assert (again.customer_id, again.duplicate) == ("c1", True)
    assert service.count_events() == 1


def test_batch_accounts_for_every_event(service: Seenext) -> None:
    service.track(ev("old"))
    batch = [ev("a"), ev("old"), ev("b", item=""), ev("a"), ev("c", channel=""), ev("d", quantity=-2)]
    result = service.track_batch(batch)
    assert result.accepted == 1 and result.duplicates == 2
    assert [(r.index, r.field) for r in result.rejected] == [
        (2, "events[2].item_id"),
        (4, "events[4].channel"),
        (5, "events[5].quantity"),
    ]
    assert result.accepted + result.duplicates + len(result.rejected) == len(batch)
    assert "got -2" in result.rejected[2].reason
    assert service.count_events() == 2


@pytest.mark.parametrize(
    "event, field",
    [
        (ev(""), "event.event_id"),
        (Event("x", (), "WEB", "VIEW", "i"), "event.identifiers"),
        (ev("x", who=(Identifier("EMAIL", " "),)), "event.identifiers[0].value"),
        (ev("x", who=(Identifier("<unknown 99>", "v"),)), "event.identifiers[0].kind"),
        (ev("x", "NOPE"), "event.type"),
        (ev("x", price=-1.0), "event.price"),
        (ev("x", price=float("nan")), "event.price"),
        (ev("x" * 200), "event.event_id"),
    ],
)
def test_invalid_events_name_the_field(service: Seenext, event: Event, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        service.track(event)
    assert err.value.field == field
    assert service.count_events() == 0


def test_batch_size_is_bounded(service: Seenext) -> None:
    with pytest.raises(InvalidArgument, match="events: at least one"):
        service.track_batch([])
    with pytest.raises(InvalidArgument, match="at most 10000 events per call, got 10001"):
        service.track_batch([ev(f"e{i}") for i in range(10_001)])


def test_purchases_minus_returns(service: Seenext) -> None:
    service.track_batch(
        [
            ev("p1", "PURCHASE", "phone", occurred_at=100.0),
            ev("p2", "PURCHASE", "case", occurred_at=200.0),
            ev("r2", "RETURN", "case", occurred_at=300.0),
            ev("v1", "VIEW", "laptop"),
        ]
    )
    assert service.purchased_items("c1") == [("phone", 100.0)]


def test_identifiers_on_one_event_point_at_one_customer(service: Seenext) -> None:
    both = (Identifier("CUSTOMER_ID", "c9"), Identifier("DEVICE_ID", "dev-1"))
    assert service.track(ev("e1", who=both)).customer_id == "c9"
    assert service.track(ev("e2", who=(Identifier("DEVICE_ID", "dev-1"),))).customer_id == "c9"
    anon = service.track(ev("e3", who=(Identifier("DEVICE_ID", "dev-2"),))).customer_id
    assert anon.startswith("anon-")


def test_interaction_log_has_only_item_events(service: Seenext) -> None:
    service.track_batch([ev("a", "VIEW", "i1"), ev("b", "VISIT", ""), ev("c", "PURCHASE", "i2")])
    log = service.interaction_log()
    assert sorted(log.item_id.tolist()) == ["i1", "i2"]


@pytest.mark.both_backends
def test_a_batch_stores_attributes_as_sorted_json_text_and_none_as_null(settings: Settings) -> None:
    """TrackBatch encodes attributes before it takes the writers' lock: the stored text is still the
    one JSON text of the mapping, keys sorted, whatever order they came in; no attributes, NULL."""
    service = Seenext(settings)
    try:
        attrs = {"zeta": "1", "alpha": "é ✓", "mid": '"quoted"'}
        result = service.track_batch([ev("with", attributes=attrs), ev("without"), ev("with", attributes={})])
        assert (result.accepted, result.duplicates) == (2, 1)
    finally:
        service.close()
    stored = dict(stored_rows(settings, "SELECT event_id, attributes FROM events"))
    assert stored == {"with": json.dumps(attrs, sort_keys=True), "without": None}
