"""proto Event -> domain Event (server/convert.py `event`, the per-event cost of TrackBatch): the fast
path gives what the plain field-by-field conversion gives, including for numbers the contract does not
know and Timestamps it does not allow (validation refuses those, naming the field)."""

from __future__ import annotations

import math

from models.domain import Event, Identifier
from protos.seenext.v1 import common_pb2, events_pb2
from server import convert


def reference(msg: events_pb2.Event) -> Event:
    """The conversion written plainly, field by field (what `convert.event` was before issue 11)."""
    return Event(
        event_id=msg.event_id,
        identifiers=tuple(
            Identifier(convert.enum_name(common_pb2.IdentifierKind, i.kind, "IDENTIFIER_KIND_"), i.value)
            for i in msg.identifiers
        ),
        channel=convert.channel(msg.channel),
        type=convert.enum_name(common_pb2.EventType, msg.type, "EVENT_TYPE_"),
        item_id=msg.item_id,
        quantity=msg.quantity,
        price=msg.price,
        store_id=msg.store_id,
        order_id=msg.order_id,
        recommendation_id=msg.recommendation_id,
        occurred_at=convert.time_or_none(msg.occurred_at, msg.HasField("occurred_at")),
        attributes=dict(msg.attributes),
    )


def messages() -> list[events_pb2.Event]:
    full = events_pb2.Event(
        event_id="e1",
        identifiers=[
            common_pb2.Identifier(kind="IDENTIFIER_KIND_EMAIL", value="A@B.example"),
            common_pb2.Identifier(kind="IDENTIFIER_KIND_DEVICE_ID", value="dev"),
        ],
        channel="CHANNEL_POS",
        type="EVENT_TYPE_PURCHASE",
        item_id="i1",
        quantity=3,
        price=9.5,
        store_id="s1",
        order_id="o1",
        recommendation_id="r1",
        attributes={"k": "v"},
    )
    full.occurred_at.FromSeconds(1_700_000_000)
    empty = events_pb2.Event()  # every enum unset, no time, no identifiers
    odd = events_pb2.Event(event_id="e2", identifiers=[common_pb2.Identifier(value="x")])
    odd.channel = 99  # type: ignore[assignment]  # numbers the contract does not know
    odd.type = 77  # type: ignore[assignment]
    odd.identifiers[0].kind = 55  # type: ignore[assignment]
    odd.occurred_at.seconds, odd.occurred_at.nanos = 5, -1  # nanos outside 0..999,999,999
    far = events_pb2.Event(event_id="e3")
    far.occurred_at.seconds = 10**12  # outside what a Timestamp holds
    return [full, empty, odd, far]


def test_the_fast_conversion_gives_what_the_plain_one_gives() -> None:
    for msg in messages():
        fast, plain = convert.event(msg), reference(msg)
        assert repr(fast) == repr(plain)  # repr: NaN != NaN


def test_unknown_numbers_and_bad_times_reach_validation_as_such() -> None:
    _, empty, odd, far = (convert.event(m) for m in messages())
    assert (empty.channel, empty.type, empty.occurred_at, empty.attributes) == ("", "", None, {})
    assert (odd.channel, odd.type, odd.identifiers[0].kind) == (
        "<unknown 99>",
        "<unknown 77>",
        "<unknown 55>",
    )
    assert odd.occurred_at is not None and math.isnan(odd.occurred_at)
    assert far.occurred_at == float(10**12)


def test_a_batch_converts_each_event_as_alone_and_shares_repeated_identifiers() -> None:
    msgs = messages() * 2  # every identifier twice, the unknown kind 55 included
    batch = convert.events(msgs)
    assert [repr(e) for e in batch] == [repr(reference(m)) for m in msgs]
    assert batch[0].identifiers[0] is batch[4].identifiers[0]  # one domain value per identifier sent
    assert batch[2].identifiers[0].kind == "<unknown 55>"  # validation refuses it, naming the field
