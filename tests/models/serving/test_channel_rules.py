"""Channel rules: each channel filters one channel-independent ranking (stock, consent, mailed items)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.catalog import CatalogSnapshot
from models.domain import CHANNELS, Event, Identifier, Item, Offer
from models.privacy.consent import ConsentDefaults, allows
from models.service import Seenext
from models.serving import channel_rules
from models.serving.ranking import RankingState, _source
from models.serving.recommender import RecommendQuery
from models.serving.served import Served
from tests import channel_world as world

DAY = 86400.0


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seenext]:
    svc = Seenext(world.settings(tmp_path_factory.mktemp("rules")))
    world.load(svc)
    yield svc
    svc.close()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Seenext]:
    """A world of its own, for tests that change it."""
    svc = world.load(Seenext(world.settings(tmp_path)))
    yield svc
    svc.close()


def ask(svc: Seenext, channel: str, customer: str | None = None, **kw: object) -> list[str]:
    ident = Identifier("CUSTOMER_ID", customer) if customer else None
    return [r.item_id for r in svc.recommend(RecommendQuery(channel=channel, who=ident, **kw)).items]  # type: ignore[arg-type]


def test_every_channel_has_a_rule_and_every_plan_names_known_sources() -> None:
    assert set(channel_rules.CHANNEL_RULES) == set(CHANNELS)
    assert (
        channel_rules.rule_for("EMAIL").consent == "marketing"
        and channel_rules.rule_for("EMAIL").hold_back_mailed
    )
    assert (
        channel_rules.rule_for("POS").stock == channel_rules.STORE_STOCK
        and channel_rules.rule_for("WEB").stock == channel_rules.ONLINE_STOCK
    )
    state = world_state()
    for plan in channel_rules.PLACEMENT_PLANS.values():
        for source in plan:
            list(_source(source.name, 0, state, None))  # an unknown name raises
    assert channel_rules.plan_for("no-such-page") == channel_rules.PLACEMENT_PLANS["home"]
    assert (
        channel_rules.plan_for("checkout")[0].name
        == channel_rules.plan_for("cart")[0].name
        == "basket_complements"
    )


def world_state() -> RankingState:
    return RankingState(snapshot=CatalogSnapshot.build(world.items(), 1))


def consents(svc: Seenext, customer: str) -> dict[tuple[str, str], bool]:
    return dict(svc.customer_state(Identifier("CUSTOMER_ID", customer)).consents)


def test_no_consent_recorded_means_no_email(shop: Seenext) -> None:
    opt_in = ConsentDefaults()  # the default: no decision recorded = no marketing
    assert allows(consents(shop, "alice"), "EMAIL", "marketing", opt_in)
    assert not allows(consents(shop, "c01"), "EMAIL", "marketing", opt_in)  # nothing recorded
    rec = shop.recommend(RecommendQuery(channel="EMAIL", who=Identifier("CUSTOMER_ID", "c01"), k=5))
    assert rec.recognised and rec.items == [] and rec.strategy == "no_consent"
    anonymous = shop.recommend(RecommendQuery(channel="EMAIL", k=5))
    assert anonymous.items == [] and anonymous.strategy == "no_consent"
    assert ask(shop, "WEB", "c01", k=5)  # the web needs no marketing consent


def test_withdrawn_consent_stops_email_offers(fresh: Seenext) -> None:
    assert ask(fresh, "EMAIL", "c02", k=3)
    world.grant(fresh, "c02", granted=False)
    assert ask(fresh, "EMAIL", "c02", k=3) == []


def test_items_mailed_recently_are_not_mailed_again_but_stay_on_the_web(fresh: Seenext) -> None:
    rec = fresh.recommend(RecommendQuery(channel="EMAIL", who=Identifier("CUSTOMER_ID", "alice"), k=3))
    first = [r.item_id for r in rec.items]
    fresh.flush_served()
    assert ask(fresh, "EMAIL", "alice", k=3) == first  # a retry within the grace period: the same offers
    fresh.flush_served()
    # an hour and a bit later they count as mailed: the first answer logged again, 3,700 s earlier
    with world.storage_of(fresh) as storage:
        storage.record_served(
            [
                Served(
                    rec.recommendation_id,
                    "alice",
                    "EMAIL",
                    "home",
                    first,
                    rec.strategy,
                    "",
                    "p",
                    time.time() - 3700,
                )
            ]
        )
    again = ask(fresh, "EMAIL", "alice", k=3)
    assert first and again and not set(first) & set(again)
    assert set(first) <= set(ask(fresh, "WEB", "alice", k=10))


def test_mailed_items_come_from_email_sent_events_and_served_email_recommendations(fresh: Seenext) -> None:
    now = time.time()
    fresh.track_batch(
        [
            Event("sent-1", world.who("c04"), "EMAIL", "EMAIL_SENT", "coffee-2", occurred_at=now - 2 * DAY),
            Event(
                "sent-old", world.who("c04"), "EMAIL", "EMAIL_SENT", "coffee-3", occurred_at=now - 30 * DAY
            ),
        ]
    )
    rec = fresh.recommend(RecommendQuery(channel="APP", who=Identifier("CUSTOMER_ID", "c04"), k=2))
    fresh.track(
        Event(
            "sent-2",
            world.who("c04"),
            "EMAIL",
            "EMAIL_SENT",
            recommendation_id=rec.recommendation_id,
            occurred_at=now - DAY,
        )
    )
    fresh.flush_served()

    def mailed_items(since: float) -> frozenset[str]:
        return fresh.customer_state(Identifier("CUSTOMER_ID", "c04"), mailed_since=since).mailed

    mailed = mailed_items(now - 7 * DAY)
    assert mailed == {"coffee-2"} | {r.item_id for r in rec.items}
    with world.storage_of(fresh) as storage:
        storage.record_served(
            [Served("r-mail", "c04", "EMAIL", "newsletter", ["flowers-1"], "x", "", "p", now - 3 * DAY)]
        )
    assert "flowers-1" in mailed_items(now - 7 * DAY)
    assert "flowers-1" not in mailed_items(now - 2 * DAY)


def test_pos_uses_the_store_stock_online_channels_the_online_stock(shop: Seenext) -> None:
    pos = ask(shop, "POS", placement="checkout", basket_item_ids=["phone-1"], store_id="store-a", k=10)
    assert "case-1" in pos and "charger-1" not in pos  # charger-1 is out of stock in store-a
    other_store = ask(
        shop, "POS", placement="checkout", basket_item_ids=["phone-1"], store_id="store-b", k=10
    )
    assert "charger-1" in other_store
    web = ask(shop, "WEB", placement="cart", basket_item_ids=["phone-1"], store_id="store-a", k=10)
    assert "charger-1" in web  # online stock counts for the web, whatever store the context names


def test_an_item_out_of_stock_online_is_offered_only_in_stores_that_have_it(fresh: Seenext) -> None:
    case = next(i for i in world.items() if i.item_id == "case-2")
    case.stock = {"": 0, "store-a": 5}
    fresh.upsert_items([case])
    assert "case-2" not in ask(fresh, "WEB", placement="cart", basket_item_ids=["phone-2"], k=10)
    assert "case-2" in ask(
        fresh, "POS", placement="checkout", basket_item_ids=["phone-2"], store_id="store-a", k=10
    )


def test_owned_durables_inactive_and_basket_items_never_come_back_in_any_channel(shop: Seenext) -> None:
    for channel, extra in (("WEB", {}), ("EMAIL", {}), ("POS", {"store_id": "store-b"}), ("CALL_CENTER", {})):
        got = ask(shop, channel, "alice", k=40, basket_item_ids=["case-2"], **extra)
        assert got and "phone-1" not in got and "phone-old" not in got and "case-2" not in got, channel


def test_a_purchase_in_a_store_removes_the_item_from_the_email_at_once(fresh: Seenext) -> None:
    top = ask(fresh, "EMAIL", "c00", k=1)[0]
    fresh.track(Event("till", world.who("c00"), "POS", "PURCHASE", top, store_id="store-a"))
    item = fresh.get_item(top)
    if not item.repeatable:
        assert top not in ask(fresh, "EMAIL", "c00", k=10)


def test_story3_channels_agree_on_order_for_every_customer(shop: Seenext) -> None:
    """Same customer and state: items allowed in two channels come in the same relative order."""

    def common_order(a: list[str], b: list[str]) -> bool:
        both = set(a) & set(b)
        return [i for i in a if i in both] == [i for i in b if i in both]

    checked = 0
    for c in ["alice"] + [f"c{n:02d}" for n in range(0, world.N_CUSTOMERS, 2)]:
        for placement, basket in (("home", []), ("cart", ["phone-2"])):
            lists = {
                ch: ask(
                    shop,
                    ch,
                    c,
                    k=25,
                    placement=placement,
                    basket_item_ids=basket,
                    store_id="store-a" if ch == "POS" else "",
                )
                for ch in ("WEB", "EMAIL", "POS", "APP")
            }
            for a in lists.values():
                for b in lists.values():
                    assert common_order(a, b), (c, placement, lists)
            checked += 1
    assert checked == 62
    # The channels do differ, but only by what they filter out.
    assert ask(shop, "POS", "alice", k=25, store_id="store-a") != ask(shop, "WEB", "alice", k=25)


def test_caller_filters_still_apply(shop: Seenext) -> None:
    cheap = ask(shop, "WEB", "c01", k=20, max_price=40)
    assert cheap and all(shop.get_item(i).price <= 40 for i in cheap)
    flowers = ask(shop, "WEB", "c01", k=5, categories=["flowers"], exclude_item_ids=["flowers-2"])
    assert flowers and all(i.startswith("flowers-") and i != "flowers-2" for i in flowers)


def test_an_expired_promotion_is_not_offered() -> None:
    now = time.time()
    running = Item(
        "a", price=10, offer=Offer(price=10, promo_price=8, valid_from=now - DAY, valid_until=now + DAY)
    )
    ended = Item(
        "b", price=10, offer=Offer(price=10, promo_price=8, valid_from=now - 9 * DAY, valid_until=now - DAY)
    )
    assert channel_rules.live_offer(running).promo_price == 8 and channel_rules.effective_price(running) == 8
    assert channel_rules.live_offer(ended).promo_price == 0 and channel_rules.effective_price(ended) == 10
    assert channel_rules.live_offer(Item("c", price=5)).price == 5


def test_story3_holds_for_a_known_customer_with_nothing_to_rank_from(fresh: Seenext) -> None:
    """Popular fallback for a recognised customer is the same list everywhere (not popular-in-channel)."""
    fresh.track(Event("zed-visit", world.who("zed"), "POS", "VISIT", store_id="store-b"))
    world.grant(fresh, "zed")
    lists = [
        ask(fresh, ch, "zed", k=12, store_id="store-b" if ch == "POS" else "")
        for ch in ("WEB", "EMAIL", "POS")
    ]
    assert all(lists)
    for a in lists:
        for b in lists:
            both = set(a) & set(b)
            assert [i for i in a if i in both] == [i for i in b if i in both]
    assert lists[0] == [i for i, _ in fresh.popular()][:12]


def test_an_anonymous_shopper_at_a_till_gets_what_is_popular_in_that_store(shop: Seenext) -> None:
    rec = shop.recommend(RecommendQuery(channel="POS", store_id="store-b", k=3, explain=True))
    assert not rec.recognised and rec.strategy == "popular"
    store_sales = {i for i, _ in shop.popular(store_id="store-b")}
    assert [r.reasons[0].code for r in rec.items] == ["popular_in_store"] * 3
    assert {r.item_id for r in rec.items} <= store_sales
    assert rec.items[0].reasons[0].text == "Popular in this store right now"


def test_similar_items_without_a_model_fall_back_to_the_items_category(tmp_path: Path) -> None:
    svc = world.load(Seenext(world.settings(tmp_path)), train=False)
    try:
        items, version = svc.similar_items("charger-2", k=3)
        assert (
            version == ""
            and items
            and all(r.category == "chargers" and r.item_id != "charger-2" for r in items)
        )
    finally:
        svc.close()


def test_docs_describe_every_channel_placement_source_and_reason_code() -> None:
    from models.serving.reasons import CODES

    doc = (Path(__file__).resolve().parents[3] / "docs" / "channels.md").read_text()
    names = [
        *CHANNELS,
        *channel_rules.PLACEMENT_PLANS,
        *{s.name for p in channel_rules.PLACEMENT_PLANS.values() for s in p},
        *CODES,
    ]
    missing = [n for n in names if f"`{n}`" not in doc]
    assert not missing, f"docs/channels.md does not mention: {missing}"
