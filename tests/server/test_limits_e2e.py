"""Nothing wrong gets in (issue 10, points 2, 7 and 8), through the generated stubs against a real server.

Timestamps outside what google.protobuf.Timestamp allows, oversized strings, maps and lists, a duplicate
item, a stock sum past an int32, out-of-range report windows and an over-long model version are refused
with INVALID_ARGUMENT naming the field, in a short message; a bad time an older release stored never
breaks a read. Every test here failed on the code before the fix (INTERNAL, RESOURCE_EXHAUSTED "metadata
size exceeds hard limit", or an accepted value).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from models.domain import Event, Identifier, Item, Offer
from models.service import Seenext
from models.settings import Settings
from models.storage import open_storage
from protos.seenext.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server import convert

FIRST_SECOND = -62_135_596_800  # 0001-01-01T00:00:00Z
LAST_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z
BAD_FROM = FIRST_SECOND - 10  # the values the fuzz campaign stored (issue 10, point 2)
BAD_UNTIL = LAST_SECOND + 10**6
SHORT = 300  # characters an error may take, however large the value it refuses


def refused(call: Callable[[], Any], field: str) -> str:
    """Asserts INVALID_ARGUMENT naming `field` in a short message; returns the message."""
    with pytest.raises(grpc.RpcError) as info:
        reply = call()
        if isinstance(reply, Iterator):
            list(reply)
    err: Any = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    details: str = err.details()
    assert details.startswith(f"{field}:"), details
    assert len(details) < SHORT, details
    return details


def ts(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


def customer(value: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=value)


def visit(event_id: str, **kw: Any) -> events_pb2.Event:
    base: dict[str, Any] = {
        "event_id": event_id,
        "identifiers": [customer("c1")],
        "channel": common_pb2.CHANNEL_WEB,
        "type": common_pb2.EVENT_TYPE_VISIT,
    }
    base.update(kw)
    return events_pb2.Event(**base)


@pytest.fixture
def catalog(channel: grpc.Channel) -> catalog_pb2_grpc.CatalogServiceStub:
    return catalog_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture
def events(channel: grpc.Channel) -> events_pb2_grpc.EventServiceStub:
    return events_pb2_grpc.EventServiceStub(channel)


@pytest.fixture
def insights(channel: grpc.Channel) -> insights_pb2_grpc.InsightsServiceStub:
    return insights_pb2_grpc.InsightsServiceStub(channel)


# -- point 2: timestamps at the edge --------------------------------------------------------------


@pytest.mark.parametrize(
    "offer, field",
    [
        (common_pb2.Offer(price=5, valid_from=ts(BAD_FROM)), "items[0].offer.valid_from"),
        (common_pb2.Offer(price=5, valid_until=ts(BAD_UNTIL)), "items[0].offer.valid_until"),
        (common_pb2.Offer(price=5, valid_from=ts(0, nanos=-1)), "items[0].offer.valid_from"),
        (common_pb2.Offer(price=5, valid_until=ts(0, nanos=10**9)), "items[0].offer.valid_until"),
    ],
)
def test_an_offer_time_outside_the_timestamp_range_is_refused(
    catalog: catalog_pb2_grpc.CatalogServiceStub, offer: common_pb2.Offer, field: str
) -> None:
    item = catalog_pb2.Item(item_id="bad", title="Bad", offer=offer)
    refused(lambda: catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=[item])), field)
    with pytest.raises(grpc.RpcError) as info:
        catalog.GetItem(catalog_pb2.GetItemRequest(item_id="bad"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_offer_window_at_both_ends_of_the_range_round_trips(
    catalog: catalog_pb2_grpc.CatalogServiceStub,
) -> None:
    offer = common_pb2.Offer(price=5, valid_from=ts(FIRST_SECOND), valid_until=ts(LAST_SECOND, 999_999_999))
    catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=[catalog_pb2.Item(item_id="edge", offer=offer)]))
    got = catalog.GetItem(catalog_pb2.GetItemRequest(item_id="edge")).offer
    assert got.valid_from.seconds == FIRST_SECOND and got.valid_until.seconds == LAST_SECOND


def test_an_event_time_with_bad_nanos_is_rejected_in_its_batch(
    events: events_pb2_grpc.EventServiceStub,
) -> None:
    reply = events.TrackBatch(
        events_pb2.TrackBatchRequest(
            events=[visit("ok"), visit("bad", occurred_at=ts(1_700_000_000, nanos=-5))]
        )
    )
    assert reply.accepted == 1
    assert [(r.index, r.field) for r in reply.rejected] == [(1, "events[1].occurred_at")]


def test_a_bad_time_an_older_release_stored_breaks_no_read(settings: Settings) -> None:
    """Written through the storage interface, as a release before the check could have: GetItem and an
    anonymous Recommend (the item is the most popular one) answer, with the window clamped to the range."""
    from server.app import create_server

    storage = open_storage(settings.db_path)
    bad = Offer(price=9.0, promo_price=7.0, valid_from=float(BAD_FROM), valid_until=float(BAD_UNTIL))
    storage.upsert_items(
        [Item("bad", title="Bad", price=9.0, offer=bad), Item("plain", price=3.0)], time.time()
    )
    storage.close()
    with Seenext(settings) as svc:
        who = (Identifier("CUSTOMER_ID", "buyer"),)
        svc.track_batch([Event(f"p{n}", who, "WEB", "PURCHASE", "bad", price=9.0) for n in range(3)])
    running = create_server(settings)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            got = catalog_pb2_grpc.CatalogServiceStub(ch).GetItem(catalog_pb2.GetItemRequest(item_id="bad"))
            assert got.offer.valid_from.seconds == FIRST_SECOND
            assert got.offer.valid_until.seconds == LAST_SECOND
            rec = recommendation_pb2_grpc.RecommendationServiceStub(ch).Recommend(
                recommendation_pb2.RecommendRequest(channel=common_pb2.CHANNEL_WEB, k=5), timeout=10
            )
            shown = {i.item_id: i for i in rec.items}
            assert "bad" in shown and shown["bad"].offer.valid_until.seconds == LAST_SECOND
    finally:
        running.stop(grace=1.0)


def test_stored_times_outside_the_range_are_clamped_or_dropped_on_the_way_out() -> None:
    assert convert.timestamp(float("nan")) is None
    assert convert.timestamp(float("-inf")).seconds == FIRST_SECOND  # type: ignore[union-attr]
    assert convert.timestamp(float(2**62)).seconds == LAST_SECOND  # type: ignore[union-attr]
    assert convert.timestamp(1.5).ToNanoseconds() == 1_500_000_000  # type: ignore[union-attr]


# -- point 7: size limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event, field",
    [
        (visit("big-attr", attributes={"query": "x" * 60_000_000}), "event.attributes"),
        (visit("big-store", store_id="s" * 1_000_000), "event.store_id"),
        (
            visit(
                "many-ids",
                identifiers=[
                    common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_DEVICE_ID, value=f"d{n}")
                    for n in range(100_000)
                ],
            ),
            "event.identifiers",
        ),
    ],
    ids=["60MB-attribute", "1MB-store_id", "100k-identifiers"],
)
def test_oversized_events_are_refused_with_a_short_message(
    events: events_pb2_grpc.EventServiceStub, event: events_pb2.Event, field: str
) -> None:
    refused(lambda: events.Track(events_pb2.TrackRequest(event=event), timeout=60), field)


def test_an_oversized_event_of_a_batch_is_rejected_alone(events: events_pb2_grpc.EventServiceStub) -> None:
    batch = [visit(f"e{n}") for n in range(3)] + [visit("e3", attributes={"q": "x" * 5_000})]
    reply = events.TrackBatch(events_pb2.TrackBatchRequest(events=batch))
    assert reply.accepted == 3
    (rejection,) = reply.rejected
    assert rejection.field == "events[3].attributes" and len(rejection.reason) < SHORT


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda ch: _get_item(ch, "x" * 1_000_000), "item_id"),
        (lambda ch: _similar(ch, item_id="x" * 1_000_000), "item_id"),
        (lambda ch: _similar(ch, item_id="a", store_id="s" * 1_000_000), "store_id"),
        (lambda ch: _recommend(ch, placement="p" * 1_000), "placement"),
        (
            lambda ch: _recommend(ch, context=recommendation_pb2.Context(item_ids=["i"] * 1_001)),
            "context.item_ids",
        ),
        (
            lambda ch: _recommend(ch, context=recommendation_pb2.Context(basket_item_ids=["i" * 1_000_000])),
            "context.basket_item_ids[0]",
        ),
        (
            lambda ch: _recommend(ch, context=recommendation_pb2.Context(store_id="s" * 1_000_000)),
            "context.store_id",
        ),
        (
            lambda ch: _recommend(ch, filter=recommendation_pb2.Filter(exclude_item_ids=["i"] * 100_000)),
            "filter.exclude_item_ids",
        ),
        (
            lambda ch: _recommend(ch, filter=recommendation_pb2.Filter(categories=["c" * 300])),
            "filter.categories[0]",
        ),
        (lambda ch: _set_consent(ch, "p" * 1_000_000), "purpose"),
    ],
    ids=[
        "GetItem-id",
        "SimilarItems-id",
        "SimilarItems-store",
        "placement",
        "context-items",
        "basket-item",
        "context-store",
        "exclude",
        "category",
        "purpose",
    ],
)
def test_oversized_request_fields_are_refused_with_a_short_message(
    channel: grpc.Channel, call: Callable[[grpc.Channel], Any], field: str
) -> None:
    refused(lambda: call(channel), field)


def test_item_fields_are_bounded(catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    def upsert(**kw: Any) -> Any:
        item = catalog_pb2.Item(item_id="a", **kw)
        return catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=[item]))

    refused(lambda: upsert(title="t" * 1_000_000), "items[0].title")
    refused(lambda: upsert(attributes={"k": "v" * 60_000_000}), "items[0].attributes")
    refused(lambda: upsert(accessory_for=[f"m{n}" for n in range(10_000)]), "items[0].accessory_for")
    refused(lambda: upsert(stock=[catalog_pb2.Stock(store_id="s" * 1_000_000)]), "items[0].stock")
    refused(
        lambda: upsert(stock=[catalog_pb2.Stock(store_id="s", quantity=-1)]), "items[0].stock[0].quantity"
    )


def test_a_full_legitimate_batch_fits_the_server(events: events_pb2_grpc.EventServiceStub) -> None:
    """10,000 events, each with four identifiers and eight attributes, are far below the server's 64 MiB
    receive limit (docs/limits.md) and are stored."""
    batch = events_pb2.TrackBatchRequest(
        events=[
            visit(
                f"legit-{n}",
                identifiers=[customer(f"c{n % 500}")]
                + [
                    common_pb2.Identifier(
                        kind=common_pb2.IDENTIFIER_KIND_DEVICE_ID, value=f"dev-{n % 500}-{j}"
                    )
                    for j in range(3)
                ],
                attributes={f"key{j}": f"value {j} of event {n}" for j in range(8)},
                store_id="store-0042",
                order_id=f"order-{n}",
            )
            for n in range(10_000)
        ]
    )
    assert batch.ByteSize() < 4 * 1024 * 1024  # measured: 3,440,100 bytes
    reply = events.TrackBatch(batch, timeout=120)
    assert reply.accepted == 10_000 and not reply.rejected


# -- point 8: INTERNAL where a status exists --------------------------------------------------------


def test_the_same_item_twice_names_the_second(catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    items = [
        catalog_pb2.Item(item_id="a", stock=[catalog_pb2.Stock(store_id="s", quantity=1)]),
        catalog_pb2.Item(item_id="b"),
        catalog_pb2.Item(item_id="a", stock=[catalog_pb2.Stock(store_id="s", quantity=2)]),
    ]
    details = refused(
        lambda: catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=items)), "items[2].item_id"
    )
    assert "items[0]" in details


def test_stock_that_overflows_when_summed_is_refused(catalog: catalog_pb2_grpc.CatalogServiceStub) -> None:
    rows = [catalog_pb2.Stock(store_id="x", quantity=2**31 - 1)] * 3
    item = catalog_pb2.Item(item_id="s", stock=rows)
    refused(lambda: catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=[item])), "items[0].stock")
    ok = catalog_pb2.Item(item_id="s", stock=[catalog_pb2.Stock(store_id="x", quantity=2**31 - 1)])
    catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=[ok]))
    assert catalog.GetItem(catalog_pb2.GetItemRequest(item_id="s")).stock[0].quantity == 2**31 - 1


@pytest.mark.parametrize(
    "request_, field",
    [
        (
            insights_pb2.DueRemindersRequest(
                window_start=ts(FIRST_SECOND - 400 * 86_400), window_end=ts(FIRST_SECOND - 380 * 86_400)
            ),
            "window_start",
        ),
        (
            insights_pb2.DueRemindersRequest(
                window_start=ts(FIRST_SECOND), window_end=ts(FIRST_SECOND + 20 * 86_400)
            ),
            "window_start",
        ),
        (
            insights_pb2.DueRemindersRequest(window_start=ts(1_700_000_000), window_end=ts(2**62)),
            "window_end",
        ),
        (insights_pb2.ChannelReportRequest(period_end=ts(2**62)), "period_end"),
        (insights_pb2.ChannelReportRequest(period_start=ts(0, nanos=-1)), "period_start"),
        (insights_pb2.FunnelReportRequest(period_end=ts(2**62)), "period_end"),
        (insights_pb2.FunnelReportRequest(period_start=ts(-(2**62))), "period_start"),
    ],
    ids=[
        "reminders-year-0",
        "reminders-year-1",
        "reminders-2^62",
        "channel-2^62",
        "channel-nanos",
        "funnel-2^62",
        "funnel-start",
    ],
)
def test_out_of_range_report_windows_are_invalid_argument(
    insights: insights_pb2_grpc.InsightsServiceStub, request_: Any, field: str
) -> None:
    calls: dict[type, Callable[..., Any]] = {
        insights_pb2.DueRemindersRequest: insights.DueReminders,
        insights_pb2.ChannelReportRequest: insights.ChannelReport,
        insights_pb2.FunnelReportRequest: insights.FunnelReport,
    }
    refused(lambda: calls[type(request_)](request_, timeout=30), field)


def test_a_report_at_the_end_of_time_is_answered(insights: insights_pb2_grpc.InsightsServiceStub) -> None:
    channels = insights.ChannelReport(insights_pb2.ChannelReportRequest(period_end=ts(LAST_SECOND)))
    assert channels.period_end.seconds <= LAST_SECOND
    funnels = insights.FunnelReport(insights_pb2.FunnelReportRequest(period_end=ts(FIRST_SECOND + 86_400)))
    assert funnels.period_start.seconds == FIRST_SECOND


@pytest.mark.parametrize("length", [101, 300, 100_000])
def test_an_over_long_model_version_is_invalid_argument(channel: grpc.Channel, length: int) -> None:
    stub = model_pb2_grpc.ModelServiceStub(channel)
    refused(
        lambda: stub.RollbackModel(model_pb2.RollbackModelRequest(model_version="v" * length)),
        "model_version",
    )


# -- helpers ----------------------------------------------------------------------------------------


def _get_item(ch: grpc.Channel, item_id: str) -> Any:
    return catalog_pb2_grpc.CatalogServiceStub(ch).GetItem(catalog_pb2.GetItemRequest(item_id=item_id))


def _similar(ch: grpc.Channel, **kw: Any) -> Any:
    stub = recommendation_pb2_grpc.RecommendationServiceStub(ch)
    return stub.SimilarItems(recommendation_pb2.SimilarItemsRequest(**kw))


def _recommend(ch: grpc.Channel, **kw: Any) -> Any:
    stub = recommendation_pb2_grpc.RecommendationServiceStub(ch)
    return stub.Recommend(recommendation_pb2.RecommendRequest(channel=common_pb2.CHANNEL_WEB, **kw))


def _set_consent(ch: grpc.Channel, purpose: str) -> Any:
    stub = privacy_pb2_grpc.PrivacyServiceStub(ch)
    return stub.SetConsent(privacy_pb2.SetConsentRequest(who=customer("c1"), purpose=purpose, granted=True))


def test_a_rejected_over_long_event_id_is_not_echoed(events: events_pb2_grpc.EventServiceStub) -> None:
    """Rejection.event_id echoed a 5 MB id whole: the reply outgrew what a default client reads (4 MB)."""
    reply = events.TrackBatch(events_pb2.TrackBatchRequest(events=[visit("e" * 5_000_000), visit("fine")]))
    assert reply.accepted == 1
    (rejection,) = reply.rejected
    assert (rejection.index, rejection.field, rejection.event_id) == (0, "events[0].event_id", "")
    assert len(rejection.reason) < SHORT
