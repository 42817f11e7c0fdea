"""Issue 9: a retailer's own world, sent through the API with only the fields its systems have.

No `active`, no `repeatable`, no demo flags: an empty server, `UpsertItems` and `TrackBatch` with what
an ERP and a till know, `Train`, then `Recommend`. Each test is a defect seen through the API.
"""

from __future__ import annotations

import datetime as dt
import time

import grpc
import pytest

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
from tests import rebuy_world

pytestmark = pytest.mark.both_backends  # the store on SQLite and on PostgreSQL (tests/conftest.py)

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


# -- issue 9 points 3 and 4: what customers buy again is learned, not flagged ---------------------------


def load_rebuy_world(channel: grpc.Channel) -> None:
    """tests/rebuy_world.py as a retailer sends it: items with id, title, category and price; purchases
    from the web shop and the tills; marketing consent for `newbie`; a training."""
    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    items = [
        catalog_pb2.Item(item_id=s.item_id, title=s.title, category=s.category, price=s.price)
        for s in rebuy_world.items()
    ]
    assert catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=items)).upserted == len(items)
    events = []
    for b in rebuy_world.purchases():
        e = events_pb2.Event(
            event_id=b.event_id,
            identifiers=[who(b.customer)],
            channel=common_pb2.CHANNEL_POS if b.channel == "POS" else common_pb2.CHANNEL_WEB,
            type=common_pb2.EVENT_TYPE_PURCHASE,
            item_id=b.item_id,
            order_id=b.order_id,
            store_id="store-1" if b.channel == "POS" else "",
        )
        e.occurred_at.FromSeconds(int(b.at))
        events.append(e)
    reply = events_pb2_grpc.EventServiceStub(channel).TrackBatch(events_pb2.TrackBatchRequest(events=events))
    assert reply.accepted == len(events) and not reply.rejected
    privacy_pb2_grpc.PrivacyServiceStub(channel).SetConsent(
        privacy_pb2.SetConsentRequest(
            who=who("newbie"), channel=common_pb2.CHANNEL_EMAIL, purpose="marketing", granted=True
        )
    )
    model_pb2_grpc.ModelServiceStub(channel).Train(model_pb2.TrainRequest(), timeout=120)


def recommended(
    channel: grpc.Channel, customer: str, on: common_pb2.Channel.ValueType, k: int = 8, store_id: str = ""
) -> list[str]:
    reply = recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend(
        recommendation_pb2.RecommendRequest(
            who=who(customer),
            channel=on,
            k=k,
            context=recommendation_pb2.Context(store_id=store_id),
        )
    )
    return [i.item_id for i in reply.items]


def test_a_phone_buyer_is_offered_no_phone_in_any_channel_but_its_case(channel: grpc.Channel) -> None:
    """Issue 9 point 4 (story 1) without flags: `newbie` bought phone-2 8 days ago. The bought phone and
    every other phone (forty customers bought one and never another) stay out of an 8-item answer in
    every channel; the case its buyers take with it is offered."""
    load_rebuy_world(channel)
    for on in (
        common_pb2.CHANNEL_WEB,
        common_pb2.CHANNEL_EMAIL,
        common_pb2.CHANNEL_POS,
        common_pb2.CHANNEL_CALL_CENTER,
        common_pb2.CHANNEL_ADS,
    ):
        got = recommended(channel, "newbie", on, store_id="store-1" if on == common_pb2.CHANNEL_POS else "")
        name = common_pb2.Channel.Name(on)
        assert len(got) == 8, (name, got)
        assert not [i for i in got if i.startswith("phone-")], (name, got)
        assert "case-2" in got, (name, got)


def test_coffee_comes_back_when_it_is_due(channel: grpc.Channel) -> None:
    """Issue 9 point 3: coffee bought every 30 days is offered again once due (31 days on), not three days
    after the last bag. Unflagged, it used to be excluded for ever."""
    load_rebuy_world(channel)
    reply = recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend(
        recommendation_pb2.RecommendRequest(
            who=who("regular"), channel=common_pb2.CHANNEL_WEB, k=8, explain=True
        )
    )
    # the whole answer on failure: once in a CI run on PostgreSQL case-3 came first (not reproduced since)
    got = [(i.item_id, round(i.score, 4), [r.code for r in i.reasons]) for i in reply.items]
    assert got and got[0][0] == "coffee-1", (reply.strategy, reply.model_version, got)
    assert "coffee-1" in recommended(channel, "regular", common_pb2.CHANNEL_POS, store_id="store-1")
    assert "coffee-1" not in recommended(channel, "stocked", common_pb2.CHANNEL_WEB, k=20)


def test_a_stock_only_update_keeps_the_rest_of_the_item(channel: grpc.Channel) -> None:
    """Issue 9 point 2: a till that sends only `item_id` and `stock` used to wipe title, category, links
    and `active`; with `update_mask` only the named fields change."""
    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    phone = catalog_pb2.Item(item_id="phone", title="Nova X1", category="phones", price=600.0, active=True)
    case = catalog_pb2.Item(item_id="case", title="Nova X1 Case", category="cases", accessory_for=["phone"])
    case.attributes["colour"] = "black"
    catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=[phone, case]))
    till = catalog_pb2.Item(item_id="case", stock=[catalog_pb2.Stock(store_id="store-1", quantity=4)])
    request = catalog_pb2.UpsertItemsRequest(items=[till])
    request.update_mask.paths.append("stock")
    assert catalog.UpsertItems(request).upserted == 1
    got = catalog.GetItem(catalog_pb2.GetItemRequest(item_id="case"))
    assert (got.title, got.category, list(got.accessory_for), dict(got.attributes)) == (
        "Nova X1 Case",
        "cases",
        ["phone"],
        {"colour": "black"},
    )
    assert got.active and [(s.store_id, s.quantity) for s in got.stock] == [("store-1", 4)]


def test_an_offer_only_update_keeps_the_rest_and_an_unknown_path_or_item_is_refused(
    channel: grpc.Channel,
) -> None:
    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=ten_items()))
    promo = catalog_pb2.Item(item_id="sku-2", offer=common_pb2.Offer(price=12.0, promo_price=9.0))
    request = catalog_pb2.UpsertItemsRequest(items=[promo])
    request.update_mask.paths.append("offer")
    catalog.UpsertItems(request)
    got = catalog.GetItem(catalog_pb2.GetItemRequest(item_id="sku-2"))
    assert (got.title, got.category, got.price, got.offer.promo_price) == ("Thing 2", "cat-2", 12.0, 9.0)

    bad = catalog_pb2.UpsertItemsRequest(items=[promo])
    bad.update_mask.paths.extend(["offer", "item_id"])
    with pytest.raises(grpc.RpcError) as err:
        catalog.UpsertItems(bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("update_mask.paths[1]")
    missing = catalog_pb2.UpsertItemsRequest(items=[catalog_pb2.Item(item_id="nope", price=1.0)])
    missing.update_mask.paths.append("price")
    with pytest.raises(grpc.RpcError) as err:
        catalog.UpsertItems(missing)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "items[0].item_id" in err.value.details()


def test_a_personal_anniversary_is_due_and_a_one_off_is_not(channel: grpc.Channel) -> None:
    """Issue 9 point 6 (story 4): flowers bought on 9 Dec 2024 and 10 Dec 2025 are due in a 5-15 Dec 2026
    window although December is no flower season for the population; a shirt bought once last December,
    or bought two Decembers running in a category customers buy any time, is no occasion."""

    def at(y: int, m: int, d: int) -> int:
        return int(dt.datetime(y, m, d, 12, tzinfo=dt.UTC).timestamp())

    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    catalog.UpsertItems(
        catalog_pb2.UpsertItemsRequest(
            items=[
                catalog_pb2.Item(item_id="roses", title="Red Roses", category="flowers", price=40.0),
                catalog_pb2.Item(item_id="tulips", title="Tulips", category="flowers", price=25.0),
                catalog_pb2.Item(item_id="shirt", title="Oxford Shirt", category="shirts", price=30.0),
                catalog_pb2.Item(item_id="tee", title="Tee", category="shirts", price=12.0),
            ]
        )
    )
    bought = [
        ("ann", "roses", at(2024, 12, 9)),
        ("ann", "tulips", at(2025, 12, 10)),
        ("bob", "shirt", at(2025, 12, 8)),  # once: no occasion
        ("cid", "tee", at(2024, 12, 6)),  # shirts two Decembers running ...
        ("cid", "shirt", at(2025, 12, 12)),
        # ... but shirts are bought any time by those who buy them in several years: no occasion
        *((f"s{n}", "tee", at(2024, 1 + n, 3)) for n in range(6)),
        *((f"s{n}", "shirt", at(2025, 7 + n % 5, 20)) for n in range(6)),
    ]
    events = []
    for n, (customer, item, t) in enumerate(bought):
        e = events_pb2.Event(
            event_id=f"b{n}",
            identifiers=[who(customer)],
            channel=common_pb2.CHANNEL_WEB,
            type=common_pb2.EVENT_TYPE_PURCHASE,
            item_id=item,
        )
        e.occurred_at.FromSeconds(t)
        events.append(e)
    assert (
        events_pb2_grpc.EventServiceStub(channel)
        .TrackBatch(events_pb2.TrackBatchRequest(events=events))
        .accepted
    )
    request = insights_pb2.DueRemindersRequest(k=2)
    request.window_start.FromSeconds(at(2026, 12, 5))
    request.window_end.FromSeconds(at(2026, 12, 15))
    due = {r.customer_id: r for r in insights_pb2_grpc.InsightsServiceStub(channel).DueReminders(request)}
    assert set(due) == {"ann"}
    assert [i.category for i in due["ann"].items] == ["flowers", "flowers"]
    assert due["ann"].reason == "You bought flowers around 10 December last year"


def test_channel_report_counts_the_mails_sent_not_every_campaign_run(channel: grpc.Channel) -> None:
    """Issue 9 point 10: a campaign list answered twice (a retried run) and sent once was counted twice,
    halving the e-mail conversion rate; only recommendations an EMAIL_SENT quotes count."""
    load(channel)
    privacy = privacy_pb2_grpc.PrivacyServiceStub(channel)
    campaign = [who(f"c{n}") for n in range(6)]
    for customer in campaign:
        privacy.SetConsent(
            privacy_pb2.SetConsentRequest(
                who=customer, channel=common_pb2.CHANNEL_EMAIL, purpose="marketing", granted=True
            )
        )
    stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
    request = recommendation_pb2.RecommendBatchRequest(
        who=campaign, channel=common_pb2.CHANNEL_EMAIL, placement="newsletter", k=3
    )
    first = list(stub.RecommendBatch(request))
    second = list(stub.RecommendBatch(request))  # the retry; only this run is sent
    assert len(first) == len(second) == 6
    sent = []
    for n, reply in enumerate(second):
        e = events_pb2.Event(
            event_id=f"mail-{n}",
            identifiers=[who(reply.customer_id)],
            channel=common_pb2.CHANNEL_EMAIL,
            type=common_pb2.EVENT_TYPE_EMAIL_SENT,
            recommendation_id=reply.recommendation_id,
        )
        e.occurred_at.GetCurrentTime()
        sent.append(e)
    events_pb2_grpc.EventServiceStub(channel).TrackBatch(events_pb2.TrackBatchRequest(events=sent))
    report = insights_pb2_grpc.InsightsServiceStub(channel).ChannelReport(insights_pb2.ChannelReportRequest())
    email = [r for r in report.rows if r.channel == common_pb2.CHANNEL_EMAIL]
    assert [(r.arm, r.recommendations, r.customers) for r in email] == [("personalised", 6, 6)]
    assert list(report.warnings) == []


def test_events_dated_in_the_future_are_refused(channel: grpc.Channel) -> None:
    """Issue 9 point 8: a purchase dated ten years ahead was accepted and froze freshness."""
    now = int(time.time())
    events = []
    for n, ahead in enumerate((10 * 365 * DAY, 60)):
        e = events_pb2.Event(
            event_id=f"f{n}",
            identifiers=[who("c1")],
            channel=common_pb2.CHANNEL_POS,
            type=common_pb2.EVENT_TYPE_PURCHASE,
            item_id="sku-1",
        )
        e.occurred_at.FromSeconds(now + ahead)
        events.append(e)
    reply = events_pb2_grpc.EventServiceStub(channel).TrackBatch(events_pb2.TrackBatchRequest(events=events))
    assert reply.accepted == 1  # a minute ahead is a till's clock skew
    assert [(r.index, r.field) for r in reply.rejected] == [(0, "events[0].occurred_at")]
    assert "past the server's clock" in reply.rejected[0].reason


def test_history_stored_with_future_dates_does_not_freeze_a_live_cart(
    channel: grpc.Channel, server: object
) -> None:
    """Issue 9 point 8: history that ran weeks past today (stored by an earlier release, which accepted
    it) anchored recency in the future, so a live ADD_TO_CART was ignored until the clock got there."""
    from models.storage import open_storage
    from models.storage.events import EventRow

    catalog_pb2_grpc.CatalogServiceStub(channel).UpsertItems(
        catalog_pb2.UpsertItemsRequest(items=ten_items())
    )
    now = time.time()
    settings = server.service.settings  # type: ignore[attr-defined]
    storage = open_storage(settings.db_path, settings.sync_full, database_url=settings.database_url)
    with storage.transaction():
        storage.create_customer("c0", now)
    storage.insert_new_events(
        [
            EventRow(
                event_id=f"old-{n}",
                customer_id=f"c{n % 20}",
                channel="WEB",
                type="PURCHASE",
                item_id=f"sku-{n % 3 if n % 2 else 3 + n % 7}",
                quantity=1,
                price=10.0,
                store_id="",
                order_id="",
                recommendation_id="",
                occurred_at=now - 10 * DAY + n * 5400,  # runs ~52 days past today
                received_at=now,
                attributes=None,
            )
            for n in range(1000)
        ]
    )
    storage.close()
    model_pb2_grpc.ModelServiceStub(channel).Train(model_pb2.TrainRequest(), timeout=120)
    cart = events_pb2.Event(
        event_id="live-cart",
        identifiers=[who("newbie")],
        channel=common_pb2.CHANNEL_WEB,
        type=common_pb2.EVENT_TYPE_ADD_TO_CART,
        item_id="sku-1",
    )
    cart.occurred_at.GetCurrentTime()
    events_pb2_grpc.EventServiceStub(channel).Track(events_pb2.TrackRequest(event=cart))
    rec = recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend(
        recommendation_pb2.RecommendRequest(
            who=who("newbie"), channel=common_pb2.CHANNEL_WEB, placement="cart", k=5
        )
    )
    assert "similar_items" in rec.strategy.split("+"), rec.strategy  # the live cart folds in


def test_a_known_customer_with_an_old_history_is_not_a_stranger(channel: grpc.Channel) -> None:
    """Issue 9 point 9: a customer the model does not know, who bought the same coffee every month until
    a month ago, got `popular` while DueReminders told them "Time to stock up"."""
    load(channel)  # trains on the shop's customers; `regular` arrives after the model
    now = time.time()
    coffee = catalog_pb2.Item(item_id="coffee", title="Espresso Beans", category="coffee", price=9.0)
    catalog_pb2_grpc.CatalogServiceStub(channel).UpsertItems(catalog_pb2.UpsertItemsRequest(items=[coffee]))
    events = []
    for n in range(6):
        e = events_pb2.Event(
            event_id=f"regular-{n}",
            identifiers=[who("regular")],
            channel=common_pb2.CHANNEL_WEB,
            type=common_pb2.EVENT_TYPE_PURCHASE,
            item_id="coffee",
        )
        e.occurred_at.FromSeconds(int(now - (32 + 30 * n) * DAY))  # monthly until 32 days ago
        events.append(e)
    events_pb2_grpc.EventServiceStub(channel).TrackBatch(events_pb2.TrackBatchRequest(events=events))
    rec = recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend(
        recommendation_pb2.RecommendRequest(who=who("regular"), channel=common_pb2.CHANNEL_WEB, k=5)
    )
    assert rec.recognised and rec.strategy != "popular"
    assert "similar_items" in rec.strategy.split("+"), rec.strategy  # their history drives the ranking
