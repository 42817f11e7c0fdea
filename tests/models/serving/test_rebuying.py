"""What customers buy again, learned from the history (issue 9 points 3 and 4): known answers on small
worlds, the exclusion rules made from them, and the facade over a retailer that sent no flags."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.catalog import CatalogSnapshot
from models.domain import CHANNELS, DAY, Event, Identifier, Item
from models.service import Seenext
from models.serving import channel_rules
from models.serving.customer_state import CustomerState, Tally
from models.serving.rebuying import FLAGS_ONLY, RebuyPolicy, RebuyTable, Rhythm, bought_again, learn
from models.serving.recommender import Recommendation, RecommendQuery
from tests import channel_world
from tests import rebuy_world as world
from tests.conftest import tiny_settings

# -- Kaplan-Meier and the learned table -----------------------------------------------------------------


def test_bought_again_counts_a_recent_purchase_only_for_the_time_it_was_watched() -> None:
    # gaps of 10 and 20 days; one purchase watched 5 days, one 30 days, without another
    curve = bought_again([10.0, 20.0], [5.0, 30.0])
    assert [t for t, _ in curve] == [10.0, 20.0]
    assert [s for _, s in curve] == pytest.approx([1 / 3, 2 / 3])
    assert bought_again([], [3.0, 4.0]) == []


def rows(*buys: tuple[str, str, float]) -> list[tuple[str, str, str, float]]:
    """(customer, item, day) as Storage.purchase_rows gives them: by customer, then time."""
    return sorted((c, i, "", d * DAY) for c, i, d in buys)


CATALOGUE = CatalogSnapshot.build(
    [
        Item("coffee-1", category="coffee"),
        Item("coffee-2", category="coffee"),
        Item("phone-1", category="phones"),
        Item("phone-2", category="phones"),
        Item("case-1", category="cases"),
        Item("odd", category="rare"),
    ],
    1,
)


def shop() -> list[tuple[str, str, str, float]]:
    """12 customers buy coffee-1 every 30 days for 200 days; 12 buy one phone each (a case in the same
    order), over 200 days, and never another; one customer bought `odd`."""
    buys: list[tuple[str, str, float]] = []
    for c in range(12):
        buys += [(f"k{c}", "coffee-1", c + 30.0 * j) for j in range(7)]
        buys += [(f"p{c}", f"phone-{c % 2 + 1}", 10.0 * c), (f"p{c}", "case-1", 10.0 * c)]
    buys.append(("x", "odd", 5.0))
    return rows(*buys)


def test_a_consumable_comes_back_after_its_interval_and_a_phone_never() -> None:
    table = learn(shop(), CATALOGUE, RebuyPolicy())
    coffee = table.items["coffee-1"]
    assert coffee.buyers == 12 and coffee.share == pytest.approx(1.0)
    assert table.again_after(CATALOGUE.items["coffee-1"]) == 30 * DAY
    # coffee-2 has no buyers of its own: the coffee category's pooled rhythm speaks for it
    assert table.again_after(CATALOGUE.items["coffee-2"]) == 30 * DAY
    assert table.rest_after(CATALOGUE.items["coffee-1"]) == 0.0  # a consumable: nothing rests
    assert table.again_after(CATALOGUE.items["phone-1"]) is None  # bought by 6, pooled: 12, never again
    phones = table.categories["phones"]
    assert phones.share == 0.0
    # never bought again in the 191 days the oldest was watched: they rest that long
    assert table.newest == 191 * DAY
    assert table.rest_after(CATALOGUE.items["phone-2"]) == phones.rest == 191 * DAY


def test_too_thin_a_history_says_nothing() -> None:
    table = learn(shop(), CATALOGUE, RebuyPolicy())
    odd = CATALOGUE.items["odd"]
    assert "rare" not in table.categories and table.again_after(odd) is None  # one buyer: a one-off
    assert table.rest_after(odd) == 0.0  # but nothing else is suppressed on a guess
    assert FLAGS_ONLY.again_after(CATALOGUE.items["coffee-1"]) is None  # before anything is learned


def test_the_catalogue_flag_overrides_what_was_learned() -> None:
    table = learn(shop(), CATALOGUE, RebuyPolicy())
    assert table.again_after(Item("coffee-1", category="coffee", repeatable=False)) is None
    flagged_phone = Item("phone-1", category="phones", repeatable=True)
    assert table.again_after(flagged_phone) == 0.0 and table.rest_after(flagged_phone) == 0.0
    # flagged a one-off with a learned category: its substitutes rest as the category's buyers say
    assert table.rest_after(Item("odd", category="phones", repeatable=False)) == 191 * DAY
    assert table.rest_after(Item("odd", category="rare", repeatable=False)) == 0.0


def test_an_items_own_buyers_are_weighed_against_its_categorys() -> None:
    """On the H&M sample an article with 12 buyers and no repeat sits in a category whose articles are
    bought again after 5 % of purchases: 12 buyers cannot tell it apart, 300 can."""
    tees = RebuyTable(pooled={"tees": Rhythm(400, 0.05, 2 * DAY, 0.0, 20)})
    few = RebuyTable(items={"tee-1": Rhythm(12, 0.0, None, 0.0)}, pooled=tees.pooled)
    many = RebuyTable(items={"tee-1": Rhythm(300, 0.0, None, 0.0)}, pooled=tees.pooled)
    tee = Item("tee-1", category="tees")
    assert tees.again_after(tee) == few.again_after(tee) == 2 * DAY  # (0 + 30 x 5 %) / 42 = 3.6 %
    assert many.again_after(tee) is None  # (0 + 30 x 5 %) / 330 = 0.5 %
    own_rhythm = RebuyTable(items={"tee-1": Rhythm(50, 0.5, 9 * DAY, 0.0, 25)}, pooled=tees.pooled)
    assert own_rhythm.again_after(tee) == 9 * DAY  # enough gaps of its own: its own interval


def test_a_category_bought_again_soon_is_no_durable() -> None:
    """Every customer of the tiny test world buys a second phone three days after the first: phones rest
    for none of them (the same phone still never comes back)."""
    buys = [(f"u{c}", f"phone-{j + 1}", 3.0 * j + c) for c in range(12) for j in range(2)]
    table = learn(rows(*buys), CATALOGUE, RebuyPolicy())
    assert table.categories["phones"].rest == 3 * DAY
    assert table.rest_after(CATALOGUE.items["phone-1"]) == 0.0
    assert table.again_after(CATALOGUE.items["phone-1"]) is None


def test_a_basket_or_a_size_swap_within_a_day_is_one_occasion() -> None:
    buys = [(f"c{c}", "coffee-1", c + 0.2 * j) for c in range(12) for j in range(3)]
    assert learn(rows(*buys), CATALOGUE, RebuyPolicy()).items["coffee-1"].share == 0.0


def test_recent_buyers_do_not_make_a_consumable_look_like_a_one_off() -> None:
    """30 customers who bought it for the first time this week have not had time to buy it again."""
    buys = [(f"k{c}", "coffee-1", 30.0 * j + c % 3) for c in range(10) for j in range(6)]
    buys += [(f"new{c}", "coffee-1", 175.0 + c % 3) for c in range(30)]
    table = learn(rows(*buys), CATALOGUE, RebuyPolicy())
    naive = 50 / (50 + 40)  # purchases followed by another, of all purchases
    assert table.items["coffee-1"].share > 0.99 > naive
    assert table.again_after(CATALOGUE.items["coffee-1"]) is not None


def test_ages_are_measured_at_the_newest_thing_known_never_after_now() -> None:
    table = RebuyTable(newest=100.0)
    assert table.anchor(now=1000.0, reference_time=50.0, latest=[80.0]) == 100.0
    assert table.anchor(now=1000.0, reference_time=50.0, latest=[300.0]) == 300.0
    assert table.anchor(now=90.0, reference_time=50.0, latest=[300.0]) == 90.0


# -- the exclusion rules of a request -------------------------------------------------------------------

LEARNED = RebuyTable(
    items={"coffee-1": Rhythm(12, 1.0, 30 * DAY, 25 * DAY)},
    categories={"phones": Rhythm(40, 0.0, None, 200 * DAY), "cases": Rhythm(40, 0.0, None, 5 * DAY)},
    pooled={"phones": Rhythm(40, 0.0, None, 200 * DAY), "cases": Rhythm(40, 0.0, None, 5 * DAY)},
)
SNAP = CatalogSnapshot.build(
    [
        Item("coffee-1", category="coffee"),
        Item("phone-1", category="phones"),
        Item("phone-2", category="phones"),
        Item("phone-3", category="phones", repeatable=True),
        Item("case-1", category="cases"),
    ],
    1,
)


def state(**bought: float) -> CustomerState:
    return CustomerState("ann", purchases={i: Tally(t * DAY, 1) for i, t in bought.items()})


def test_a_consumable_is_excluded_until_it_is_due_then_blended_in() -> None:
    at = 100 * DAY
    early = channel_rules.owned(state(**{"coffee-1": 92.0}), SNAP, LEARNED, at)
    assert early.excluded == {"coffee-1"} and early.due == {"coffee-1": False} and not early.resting
    due = channel_rules.owned(state(**{"coffee-1": 69.0}), SNAP, LEARNED, at)
    assert due.excluded == frozenset() and due.due == {"coffee-1": True}


def test_a_durable_rests_its_whole_category_but_for_items_flagged_repeatable() -> None:
    owned = channel_rules.owned(state(**{"phone-1": 92.0, "case-1": 80.0}), SNAP, LEARNED, 100 * DAY)
    assert owned.excluded == {"phone-1", "case-1"}
    assert owned.resting == {"phones": 292 * DAY}  # the case's 5-day rest is over; < 14 days anyway
    allowed = channel_rules.base_filter(SNAP, owned.excluded, owned.resting.keys())
    assert [i for i in SNAP.items if allowed(i)] == ["coffee-1", "phone-3"]
    later = channel_rules.owned(state(**{"phone-1": 92.0}), SNAP, LEARNED, 293 * DAY)
    assert later.resting == {} and later.excluded == {"phone-1"}  # the phone itself: still a one-off


def test_the_accessories_of_what_is_being_bought_never_rest() -> None:
    """Bought a laptop and its mouse: mice rest. With a second laptop in the basket, its own mouse is
    offered all the same (tests/clients/test_web.py: the cart page leads with it)."""
    snap = CatalogSnapshot.build(
        [
            Item("laptop-1", category="laptops"),
            Item("laptop-3", category="laptops"),
            Item("mouse-1", category="mice", accessory_for=["laptop-1"]),
            Item("mouse-3", category="mice", accessory_for=["laptop-3"]),
        ],
        1,
    )
    plain = channel_rules.base_filter(snap, set(), {"mice", "laptops"})
    buying = channel_rules.base_filter(snap, set(), {"mice", "laptops"}, ["laptop-3"])
    assert not plain("mouse-3") and buying("mouse-3")
    assert not buying("mouse-1") and not buying("laptop-1")


# -- through the facade: a retailer that sent no flags -----------------------------------------------


def load(svc: Seenext) -> Seenext:
    svc.upsert_items([Item(s.item_id, s.title, s.category, price=s.price) for s in world.items()])
    result = svc.track_batch(
        [
            Event(b.event_id, (Identifier("CUSTOMER_ID", b.customer),), b.channel, "PURCHASE", b.item_id,
                  order_id=b.order_id, store_id="store-1" if b.channel == "POS" else "", occurred_at=b.at)
            for b in world.purchases()
        ]
    )  # fmt: skip
    assert not result.rejected, result.rejected[:3]
    svc.import_consents([(Identifier("CUSTOMER_ID", "newbie"), "EMAIL", "marketing", True, world.NOW)])
    svc.train()
    return svc


@pytest.fixture(scope="module")
def shop_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seenext]:
    svc = load(Seenext(tiny_settings(tmp_path_factory.mktemp("rebuy"))))
    yield svc
    svc.close()


def ask(svc: Seenext, customer: str, channel: str = "WEB", k: int = 8, **kw: object) -> Recommendation:
    who = Identifier("CUSTOMER_ID", customer)
    return svc.recommend(RecommendQuery(channel=channel, who=who, k=k, **kw))  # type: ignore[arg-type]


def ids(rec: Recommendation) -> list[str]:
    return [r.item_id for r in rec.items]


def test_a_phone_buyer_gets_no_phone_in_any_channel_and_its_case(shop_world: Seenext) -> None:
    for channel in CHANNELS:
        got = ids(ask(shop_world, "newbie", channel, store_id="store-1" if channel == "POS" else ""))
        assert len(got) == 8, (channel, got)
        assert not [i for i in got if i.startswith("phone-")], (channel, got)
        assert "case-2" in got, (channel, got)


def test_coffee_comes_back_when_due_and_not_before(shop_world: Seenext) -> None:
    regular = ask(shop_world, "regular")
    assert ids(regular)[0] == "coffee-1", ids(regular)  # due: the repurchase blend puts it first
    assert regular.items[0].reasons[0].code == "personalised"
    assert "coffee-1" not in ids(ask(shop_world, "stocked", k=20))  # bought 3 days ago


def test_the_flags_stay_overrides(tmp_path: Path) -> None:
    svc = load(Seenext(tiny_settings(tmp_path)))
    try:
        svc.upsert_items(
            [
                Item("coffee-1", "Espresso Beans 1", "coffee", price=9.0, repeatable=False),
                Item("phone-2", "Nova X2 Phone", "phones", price=600.0, repeatable=True),
            ]
        )
        assert "coffee-1" not in ids(ask(svc, "regular", k=20))
        newbie = ids(ask(svc, "newbie", k=30))  # the whole catalogue
        # a phone flagged repeatable comes back at once, and its substitutes do not rest
        assert "phone-2" in newbie and len([i for i in newbie if i.startswith("phone-")]) == 5
    finally:
        svc.close()


# -- the owned-accessory cap counts what the channel lets through ---------------------------------------


def test_the_owned_accessory_cap_is_counted_after_the_channel_filter(tmp_path: Path) -> None:
    """Six accessories of the phone newbie bought, three out of stock online: the web still shows three
    accessories (it showed at most two when the cap was counted before stock), and the till, whose store
    lacks two others, keeps the web's order for the items both show (story 3)."""
    svc = load(Seenext(tiny_settings(tmp_path)))
    try:
        svc.upsert_items(
            [
                Item(
                    f"acc-{n}",
                    f"Accessory {n} for the Nova X2",
                    f"accessories {n}",
                    price=10.0 + n,
                    accessory_for=["phone-2"],
                    stock={"": 0 if n <= 3 else 5, "store-1": 0 if n in (4, 5) else 5},
                )
                for n in range(1, 7)
            ]
        )
        web = ask(svc, "newbie", "WEB", k=10)
        till = ask(svc, "newbie", "POS", k=10, store_id="store-1")
        for rec, missing in ((web, {"acc-1", "acc-2", "acc-3"}), (till, {"acc-4", "acc-5"})):
            complements = [
                r.item_id
                for r in rec.items
                if r.reasons[0].code in {"accessory_for_owned", "bought_together"}
            ]
            assert len(complements) == 3 and not missing & set(complements), complements
        both = set(ids(web)) & set(ids(till))
        assert [i for i in ids(web) if i in both] == [i for i in ids(till) if i in both]
    finally:
        svc.close()


def test_the_demo_worlds_flags_keep_their_meaning(tmp_path: Path) -> None:
    """The channel world flags coffee and flowers repeatable and nothing else: alice, who bought phone-1 a
    week ago, is offered no phone (learned: nobody there bought a second one) but its accessories."""
    svc = channel_world.load(Seenext(channel_world.settings(tmp_path)))
    try:
        got = ids(ask(svc, "alice", "WEB", k=10))
        assert not [i for i in got if i.startswith("phone-")] and {"case-1", "charger-1"} <= set(got), got
    finally:
        svc.close()
