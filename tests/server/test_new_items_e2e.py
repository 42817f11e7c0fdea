"""Issue 9 point 7: untested new items do not take the top places — through the generated stubs.

A retailer's world sent as its systems know it (id, title, category, price, stock; no `active`, no
`repeatable`): sixty customers who bought and looked at twenty-four established items over the last
half year, trained; then ten items arrive. Five have a title and a category only (no price, no stock):
a shop cannot sell them. Five are priced and stocked: they may be tried, in a bounded share of the
last places, with the reason `new_in`. Seen before the fix: a brand-new item without price or stock
first in "Picked for you", and one in many 4-item mails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from protos.seenext.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from tests.conftest import tiny_settings

DAY = 86_400
CATEGORIES = ("lamps", "mugs", "books", "kettles")
CUSTOMERS = [f"c{n:02d}" for n in range(60)]
CONSENTED = CUSTOMERS[:40]
UNPRICED = [f"bare-{n}" for n in range(5)]  # title and category only
FRESH = [f"fresh-{n}" for n in range(5)]  # new, priced and stocked
NEW = set(UNPRICED) | set(FRESH)
STOCK = [catalog_pb2.Stock(store_id="", quantity=20), catalog_pb2.Stock(store_id="store-1", quantity=5)]
CHANNELS = (
    common_pb2.CHANNEL_WEB,
    common_pb2.CHANNEL_EMAIL,
    common_pb2.CHANNEL_POS,
    common_pb2.CHANNEL_CALL_CENTER,
    common_pb2.CHANNEL_ADS,
)


def who(customer: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer)


def established() -> list[catalog_pb2.Item]:
    """Six items per category, priced and stocked online and in store-1."""
    return [
        catalog_pb2.Item(
            item_id=f"{cat}-{n}", title=f"{cat.title()} {n}", category=cat, price=10.0 + n, stock=STOCK
        )
        for cat in CATEGORIES
        for n in range(6)
    ]


def history() -> list[events_pb2.Event]:
    """Each customer favours one category: purchases and views from 200 to 66 days ago (none of these
    items is new)."""
    now = int(time.time())
    events = []
    for i, customer in enumerate(CUSTOMERS):
        cat = CATEGORIES[i % len(CATEGORIES)]
        for j in range(6):
            item = f"{cat}-{(i + j) % 6}" if j < 5 else f"{CATEGORIES[(i + 1) % 4]}-{i % 6}"
            kind = common_pb2.EVENT_TYPE_PURCHASE if j % 2 == 0 else common_pb2.EVENT_TYPE_VIEW
            e = events_pb2.Event(
                event_id=f"{customer}-{j}",
                identifiers=[who(customer)],
                channel=common_pb2.CHANNEL_WEB if j % 3 else common_pb2.CHANNEL_POS,
                type=kind,
                item_id=item,
                store_id="" if j % 3 else "store-1",
            )
            e.occurred_at.FromSeconds(now - (200 - 25 * j - i % 10) * DAY)  # 66 to 200 days ago
            events.append(e)
    return events


def arrivals() -> list[catalog_pb2.Item]:
    """What the merchandising system sends before prices and stock are set, and what is ready to sell."""
    bare = [
        catalog_pb2.Item(item_id=i, title=f"Brand-new thing {n}", category=CATEGORIES[n % 4])
        for n, i in enumerate(UNPRICED)
    ]
    fresh = [
        catalog_pb2.Item(
            item_id=i,
            title=f"Fresh {CATEGORIES[n % 4]} {n}",
            category=CATEGORIES[n % 4],
            price=30.0 + n,
            stock=STOCK,
        )
        for n, i in enumerate(FRESH)
    ]
    return bare + fresh


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    from server.app import create_server

    running = create_server(tiny_settings(Path(tmp_path_factory.mktemp("new-items"))))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            grpc.channel_ready_future(ch).result(timeout=10)
            catalog = catalog_pb2_grpc.CatalogServiceStub(ch)
            catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=established()))
            reply = events_pb2_grpc.EventServiceStub(ch).TrackBatch(
                events_pb2.TrackBatchRequest(events=history())
            )
            assert reply.accepted == len(CUSTOMERS) * 6 and not reply.rejected
            privacy = privacy_pb2_grpc.PrivacyServiceStub(ch)
            for customer in CONSENTED:
                privacy.SetConsent(
                    privacy_pb2.SetConsentRequest(
                        who=who(customer), channel=common_pb2.CHANNEL_EMAIL, purpose="marketing", granted=True
                    )
                )
            model_pb2_grpc.ModelServiceStub(ch).Train(model_pb2.TrainRequest(), timeout=120)
            catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=arrivals()))  # after the training
            yield ch
    finally:
        running.stop(grace=1.0)


def ask(
    ch: grpc.Channel, customer: str, on: common_pb2.Channel.ValueType, k: int = 10, placement: str = "home"
) -> recommendation_pb2.RecommendResponse:
    return recommendation_pb2_grpc.RecommendationServiceStub(ch).Recommend(
        recommendation_pb2.RecommendRequest(
            who=who(customer),
            channel=on,
            placement=placement,
            k=k,
            explain=True,
            context=recommendation_pb2.Context(store_id="store-1" if on == common_pb2.CHANNEL_POS else ""),
        )
    )


def test_new_items_without_a_price_are_never_offered_in_any_channel(shop: grpc.Channel) -> None:
    stub = recommendation_pb2_grpc.RecommendationServiceStub(shop)
    seen: set[str] = set()
    for customer in CONSENTED[:20]:
        for on in CHANNELS:
            for placement in ("home", "newsletter", "product"):
                seen |= {i.item_id for i in ask(shop, customer, on, 10, placement).items}
    for item in ("lamps-0", "mugs-1", "books-2", "kettles-3"):  # "similar items" strips
        reply = stub.SimilarItems(recommendation_pb2.SimilarItemsRequest(item_id=item, k=10))
        seen |= {i.item_id for i in reply.items}
    anonymous = stub.Recommend(
        recommendation_pb2.RecommendRequest(
            channel=common_pb2.CHANNEL_WEB, k=10, context=recommendation_pb2.Context(item_ids=["lamps-1"])
        )
    )
    seen |= {i.item_id for i in anonymous.items}
    assert seen and not seen & set(UNPRICED), sorted(seen & set(UNPRICED))


def test_priced_new_items_take_at_most_their_share_of_the_last_places(shop: grpc.Channel) -> None:
    """At the default share (0.1) a 10-item home page tries one new item, last, with `new_in`."""
    tried = 0
    for customer in CUSTOMERS:
        reply = ask(shop, customer, common_pb2.CHANNEL_WEB, k=10)
        ids = [i.item_id for i in reply.items]
        assert len(ids) == 10 and not NEW & set(ids[:-1]), (customer, ids)  # never above the ranked items
        last = reply.items[-1]
        if last.item_id in NEW:
            tried += 1
            assert last.item_id in FRESH
            assert [r.code for r in last.reasons] == ["new_in"]
            assert last.reasons[0].text.startswith("New in: Fresh ")
            assert last.score < min(i.score for i in reply.items[:-1])
            assert "exploration" in reply.strategy
    assert tried >= len(CUSTOMERS) // 2  # new items do get tried (they are none of these customers' own)


def test_a_four_item_mail_carries_at_most_one_new_item(shop: grpc.Channel) -> None:
    stub = recommendation_pb2_grpc.RecommendationServiceStub(shop)
    mails = list(
        stub.RecommendBatch(
            recommendation_pb2.RecommendBatchRequest(
                who=[who(c) for c in CUSTOMERS], channel=common_pb2.CHANNEL_EMAIL, placement="newsletter", k=4
            )
        )
    )
    sent = [[i.item_id for i in m.items] for m in mails if m.items]
    assert len(sent) == len(CONSENTED)  # the others gave no consent
    per_mail = [sum(i in NEW for i in ids) for ids in sent]
    assert max(per_mail) <= 1 and sum(per_mail) > 0, per_mail
    assert all(ids[-1] in FRESH for ids in sent if set(ids) & NEW)


def test_stock_counts_where_the_channel_needs_it(shop: grpc.Channel) -> None:
    """The ERP's feed no longer lists lamps-0 (its stock rows are gone) and mugs-0 is stocked in store-1
    only: in a catalogue that keeps stock, neither is offered online; mugs-0 still is at store-1's till."""
    catalog = catalog_pb2_grpc.CatalogServiceStub(shop)
    mask = field_mask_pb2.FieldMask(paths=["stock"])
    catalog.UpsertItems(
        catalog_pb2.UpsertItemsRequest(
            items=[
                catalog_pb2.Item(item_id="lamps-0"),
                catalog_pb2.Item(item_id="mugs-0", stock=[catalog_pb2.Stock(store_id="store-1", quantity=3)]),
            ],
            update_mask=mask,
        )
    )
    stub = recommendation_pb2_grpc.RecommendationServiceStub(shop)
    online, till = set(), set()
    for customer in CUSTOMERS[:24]:
        for on in (common_pb2.CHANNEL_WEB, common_pb2.CHANNEL_EMAIL, common_pb2.CHANNEL_ADS):
            online |= {i.item_id for i in ask(shop, customer, on, 12).items}
        till |= {i.item_id for i in ask(shop, customer, common_pb2.CHANNEL_POS, 12).items}
    anonymous = stub.Recommend(recommendation_pb2.RecommendRequest(channel=common_pb2.CHANNEL_WEB, k=30))
    online |= {i.item_id for i in anonymous.items}
    assert online and not {"lamps-0", "mugs-0"} & online
    assert "mugs-0" in till and "lamps-0" not in till
    catalog.UpsertItems(  # stocked again: back online
        catalog_pb2.UpsertItemsRequest(
            items=[catalog_pb2.Item(item_id=i, stock=STOCK) for i in ("lamps-0", "mugs-0")], update_mask=mask
        )
    )


def test_an_accessory_of_an_unknown_item_is_reported_and_kept(shop: grpc.Channel) -> None:
    catalog = catalog_pb2_grpc.CatalogServiceStub(shop)
    reply = catalog.UpsertItems(
        catalog_pb2.UpsertItemsRequest(
            items=[
                catalog_pb2.Item(
                    item_id="shade-1",
                    title="Shade",
                    category="lamp shades",
                    price=9.0,
                    accessory_for=["lamps-1"],
                ),
                catalog_pb2.Item(
                    item_id="shade-2",
                    title="Shade for the Aurora",
                    category="lamp shades",
                    price=9.0,
                    accessory_for=["lamps-2", "aurora-9", "shade-1"],  # aurora-9 is not in the catalogue yet
                ),
            ]
        )
    )
    assert reply.upserted == 2
    assert len(reply.warnings) == 1 and reply.warnings[0].startswith(
        "items[1].accessory_for[1]: no item 'aurora-9'"
    )
    got = catalog.GetItem(catalog_pb2.GetItemRequest(item_id="shade-2"))
    assert list(got.accessory_for) == ["lamps-2", "aurora-9", "shade-1"]  # kept: the main item may come later
    later = catalog.UpsertItems(
        catalog_pb2.UpsertItemsRequest(
            items=[catalog_pb2.Item(item_id="aurora-9", title="Aurora", category="lamps", price=80.0)]
        )
    )
    assert later.upserted == 1 and not later.warnings
    again = catalog.UpsertItems(  # a stock-only update does not report the links it did not send
        catalog_pb2.UpsertItemsRequest(
            items=[catalog_pb2.Item(item_id="shade-2", stock=STOCK)],
            update_mask=field_mask_pb2.FieldMask(paths=["stock"]),
        )
    )
    assert again.upserted == 1 and not again.warnings
