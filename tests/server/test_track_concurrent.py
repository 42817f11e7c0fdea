"""TrackBatch calls arriving at once, as a retailer's bulk importer sends them (several batches in
flight), through the generated stubs against a real server: no event lost or stored twice, an event in
two batches at once stored once and acknowledged once, and identity merges across the batches making
one customer per person, on both backends."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from models.settings import Settings
from protos.seenext.v1 import common_pb2, events_pb2, events_pb2_grpc, identity_pb2, identity_pb2_grpc
from tests.conftest import stored_rows

pytestmark = pytest.mark.both_backends

KIND = common_pb2.IdentifierKind


def ident(kind: common_pb2.IdentifierKind, value: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=kind, value=value)


def view(event_id: str, *who: common_pb2.Identifier, item: str = "i1") -> events_pb2.Event:
    return events_pb2.Event(
        event_id=event_id,
        identifiers=list(who),
        channel=common_pb2.CHANNEL_WEB,
        type=common_pb2.EVENT_TYPE_VIEW,
        item_id=item,
    )


def at_once(
    channel: grpc.Channel, batches: Sequence[Sequence[events_pb2.Event]]
) -> list[events_pb2.TrackBatchResponse]:
    """Every batch in its own thread, released together; the replies in the batches' order."""
    stub = events_pb2_grpc.EventServiceStub(channel)
    gate = threading.Barrier(len(batches))

    def send(batch: Sequence[events_pb2.Event]) -> events_pb2.TrackBatchResponse:
        gate.wait()
        return stub.TrackBatch(events_pb2.TrackBatchRequest(events=list(batch)), timeout=60)

    with ThreadPoolExecutor(len(batches)) as pool:
        return list(pool.map(send, batches))


def test_overlapping_batches_at_once_store_and_acknowledge_every_event_once(
    channel: grpc.Channel, settings: Settings
) -> None:
    events = [
        view(f"e{n}", ident(KIND.IDENTIFIER_KIND_LOYALTY_CARD, f"card-{n % 30}"), item=f"i{n % 7}")
        for n in range(600)
    ]
    # Windows of 100 every 50 events, each sent twice: every event is in two to four batches at once.
    windows = [events[i : i + 100] for i in range(0, 550, 50)]
    replies = at_once(channel, windows + windows)
    assert not [r.rejected for r in replies if r.rejected]
    assert sum(r.accepted for r in replies) == len(events)  # each event acknowledged as new exactly once
    assert sum(r.accepted + r.duplicates for r in replies) == sum(len(w) for w in windows) * 2
    stored = Counter(str(r[0]) for r in stored_rows(settings, "SELECT event_id FROM events"))
    assert stored == Counter(e.event_id for e in events)
    # One customer per card, whichever batch met it first.
    owners = stored_rows(settings, "SELECT event_id, customer_id FROM events")
    by_card: dict[int, set[str]] = {}
    for event_id, customer_id in owners:
        by_card.setdefault(int(str(event_id)[1:]) % 30, set()).add(str(customer_id))
    assert all(len(c) == 1 for c in by_card.values()) and len({next(iter(c)) for c in by_card.values()}) == 30


def test_identity_merges_across_batches_at_once_make_one_customer_per_person(
    channel: grpc.Channel, settings: Settings
) -> None:
    """Each person is met in four batches sent at once, each batch knowing two of their identifiers: a
    device, the device and an e-mail, the e-mail and a loyalty card, the card alone. Whatever order the
    batches commit in, the four identifiers end on one customer, and every event with them."""
    people = 25
    lookup = identity_pb2_grpc.IdentityServiceStub(channel)
    for round_ in range(2):
        device = [ident(KIND.IDENTIFIER_KIND_DEVICE_ID, f"dev-{round_}-{n}") for n in range(people)]
        mail = [ident(KIND.IDENTIFIER_KIND_EMAIL, f"p{round_}-{n}@example.com") for n in range(people)]
        card = [ident(KIND.IDENTIFIER_KIND_LOYALTY_CARD, f"lc-{round_}-{n}") for n in range(people)]
        batches = [
            [view(f"r{round_}-a{n}", device[n]) for n in range(people)],
            [view(f"r{round_}-b{n}", device[n], mail[n]) for n in range(people)],
            [view(f"r{round_}-c{n}", mail[n], card[n]) for n in range(people)],
            [view(f"r{round_}-d{n}", card[n]) for n in range(people)],
        ]
        replies = at_once(channel, batches)
        assert [(r.accepted, r.duplicates, len(r.rejected)) for r in replies] == [(people, 0, 0)] * 4
        for n in range(people):
            customers = {
                lookup.Identify(identity_pb2.IdentifyRequest(identifiers=[who]), timeout=10).customer_id
                for who in (device[n], mail[n], card[n])
            }
            assert len(customers) == 1, f"round {round_}, person {n}: {customers}"
            (customer,) = customers
            rows = stored_rows(
                settings,
                "SELECT DISTINCT customer_id FROM events WHERE event_id IN (?, ?, ?, ?)",
                *(f"r{round_}-{x}{n}" for x in "abcd"),
            )
            assert [str(r[0]) for r in rows] == [customer], f"round {round_}, person {n}"
