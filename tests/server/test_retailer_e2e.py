"""Issue 9: a retailer's own world, sent through the API with only the fields its systems have.

No `active`, no `repeatable`, no demo flags: an empty server, `UpsertItems` and `TrackBatch` with what
an ERP and a till know, `Train`, then `Recommend`. Each test is a defect seen through the API.
"""

from __future__ import annotations

import time

import grpc

from protos.seenext.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)

DAY = 86_400


def who(customer: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer)


def ten_items() -> list[catalog_pb2.Item]:
    """What an ERP export has: id, title, category, price. Nothing else."""
    return [
        catalog_pb2.Item(item_id=f"sku-{n}", title=f"Thing {n}", category=f"cat-{n % 3}", price=10.0 + n)
        for n in range(10)
    ]


def ninety_purchases() -> list[events_pb2.Event]:
    now = int(time.time())
    events = []
    for n in range(90):
        e = events_pb2.Event(
            event_id=f"till-{n}",
            identifiers=[who(f"c{n % 30}")],
            channel=common_pb2.CHANNEL_POS,
            type=common_pb2.EVENT_TYPE_PURCHASE,
            item_id=f"sku-{(n * 7 + n // 30) % 10}",
            store_id="store-1",
        )
        e.occurred_at.FromSeconds(now - (90 - n) * 3600)
        events.append(e)
    return events


def load(channel: grpc.Channel) -> None:
    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    assert catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=ten_items())).upserted == 10
    reply = events_pb2_grpc.EventServiceStub(channel).TrackBatch(
        events_pb2.TrackBatchRequest(events=ninety_purchases())
    )
    assert reply.accepted == 90 and not reply.rejected
    model_pb2_grpc.ModelServiceStub(channel).Train(model_pb2.TrainRequest(), timeout=120)


def test_items_sent_without_active_are_recommended(channel: grpc.Channel) -> None:
    """Issue 9 point 1: `active` was a plain bool, so an item sent without it was inactive and every
    Recommend answered zero items."""
    load(channel)
    stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
    known = stub.Recommend(
        recommendation_pb2.RecommendRequest(who=who("c1"), channel=common_pb2.CHANNEL_WEB, k=4)
    )
    anonymous = stub.Recommend(recommendation_pb2.RecommendRequest(channel=common_pb2.CHANNEL_WEB, k=4))
    assert len(known.items) == 4 and known.recognised
    assert len(anonymous.items) == 4
    got = catalog_pb2_grpc.CatalogServiceStub(channel).GetItem(catalog_pb2.GetItemRequest(item_id="sku-1"))
    assert got.active and not got.HasField("repeatable")  # unset stays unset: learned, not flagged


def test_an_item_sent_inactive_is_never_recommended(channel: grpc.Channel) -> None:
    load(channel)
    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    withdrawn = ten_items()[3]
    withdrawn.active = False
    catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=[withdrawn]))
    stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
    for request in (
        recommendation_pb2.RecommendRequest(who=who("c1"), channel=common_pb2.CHANNEL_WEB, k=9),
        recommendation_pb2.RecommendRequest(channel=common_pb2.CHANNEL_WEB, k=9),
    ):
        assert "sku-3" not in [i.item_id for i in stub.Recommend(request).items]
