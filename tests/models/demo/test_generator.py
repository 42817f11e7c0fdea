"""The demo retailer: deterministic, valid, and carrying the journeys the stories are tested on."""

from __future__ import annotations

import itertools
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.demo.generator import DemoConfig, DemoRetailer, generate, seed
from models.domain import DAY, Event, Identifier, Item
from models.service import Seenext
from models.validation import check_event, check_item
from tests.conftest import tiny_settings

END = datetime(2025, 3, 1, tzinfo=UTC).timestamp()  # the period then holds 14 Feb 2024 and 2025
SMALL = DemoConfig(customers=400, items=300, days=400, end=END)


@pytest.fixture(scope="module")
def demo() -> DemoRetailer:
    return generate(SMALL)


@pytest.fixture(scope="module")
def items(demo: DemoRetailer) -> dict[str, Item]:
    return {it.item_id: it for it in demo.items}


@pytest.fixture(scope="module")
def history(demo: DemoRetailer) -> dict[str, list[Event]]:
    """Each customer's events in time order, by the generator's ground truth."""
    out: dict[str, list[Event]] = defaultdict(list)
    for ev in demo.events:
        out[demo.customer_of(ev)].append(ev)
    return out


def _kinds(ev: Event) -> set[str]:
    return {i.kind for i in ev.identifiers}


def _purchases(evs: list[Event], items: dict[str, Item], category: str) -> list[Event]:
    return [e for e in evs if e.type == "PURCHASE" and items[e.item_id].category == category]


# -- determinism and validity -------------------------------------------------------------------


def test_same_config_gives_identical_output(demo: DemoRetailer) -> None:
    again = generate(SMALL)
    assert again.items == demo.items
    assert again.events == demo.events
    assert again.customers == demo.customers


def test_another_seed_gives_another_retailer(demo: DemoRetailer) -> None:
    other = generate(DemoConfig(customers=400, items=300, days=400, end=END, seed=7))
    assert [e.item_id for e in other.events[:500]] != [e.item_id for e in demo.events[:500]]
    assert [it.title for it in other.items] != [it.title for it in demo.items]


def test_default_end_is_the_start_of_today_utc() -> None:
    retailer = generate(DemoConfig(customers=3, items=60, days=30))
    assert retailer.end % DAY == 0
    assert 0 <= time.time() - retailer.end < DAY
    assert retailer.start == retailer.end - 30 * DAY


def test_every_event_is_valid_unique_sorted_and_inside_the_period(demo: DemoRetailer) -> None:
    for i, ev in enumerate(demo.events):
        check_event(ev, f"events[{i}]")
    assert len({ev.event_id for ev in demo.events}) == len(demo.events)
    times = [ev.occurred_at for ev in demo.events]
    assert times == sorted(times)
    assert demo.start <= times[0] and times[-1] < demo.end


def test_too_small_a_catalogue_is_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="got 10"):
        generate(DemoConfig(items=10))


# -- catalogue ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [60, 5000])
def test_catalogue_size_is_exact_at_any_scale(n: int) -> None:
    retailer = generate(DemoConfig(customers=20, items=n, days=60, end=END))
    assert len(retailer.items) == n
    assert len({it.item_id for it in retailer.items}) == n
    assert len({it.category for it in retailer.items}) >= 12
    assert all(e.item_id in {it.item_id for it in retailer.items} for e in retailer.events if e.item_id)


def test_items_are_valid_with_realistic_prices_and_stock(demo: DemoRetailer) -> None:
    for i, it in enumerate(demo.items):
        check_item(it, f"items[{i}]")
        assert it.title and it.brand and it.price > 0 and it.attributes["department"]
        assert set(it.stock) == {"", *demo.stores}
    prices = defaultdict(list)
    for it in demo.items:
        prices[it.category].append(it.price)
    assert min(prices["phones"]) >= 150 and max(prices["phone_cases"]) < 50 and max(prices["coffee"]) < 20
    empty = sum(q == 0 for it in demo.items for s, q in it.stock.items() if s)
    assert 0 < empty < 0.3 * len(demo.items) * len(demo.stores)  # some items are out of stock in some stores


def test_consumables_are_repeatable_and_durables_are_not(items: dict[str, Item]) -> None:
    by_category = {it.category: it.repeatable for it in items.values()}
    assert by_category["flowers"] and by_category["coffee"] and by_category["household"]
    assert not any(by_category[c] for c in ("phones", "phone_cases", "chargers", "laptops", "clothing"))


def test_accessory_links_point_to_existing_items_of_another_category(items: dict[str, Item]) -> None:
    linked = [it for it in items.values() if it.accessory_for]
    assert {it.category for it in linked} >= {"phone_cases", "chargers", "headphones", "laptop_bags", "mice"}
    for it in linked:
        for main in it.accessory_for:
            assert main in items and items[main].category != it.category
    cases = Counter(m for it in linked if it.category == "phone_cases" for m in it.accessory_for)
    chargers = Counter(m for it in linked if it.category == "chargers" for m in it.accessory_for)
    phones = [i for i, it in items.items() if it.category == "phones"]
    assert all(2 <= cases[p] <= 4 and 1 <= chargers[p] <= 3 for p in phones)
    assert any(len(it.accessory_for) > 1 for it in linked if it.category == "chargers")  # fits several phones


def test_some_items_have_a_promotion_running_at_the_end(demo: DemoRetailer) -> None:
    offers = [it.offer for it in demo.items if it.offer is not None]
    assert offers and all(o.valid_from < o.valid_until and o.promo_price < o.price for o in offers)
    assert any(o.valid_from <= demo.end < o.valid_until for o in offers)
    assert any(o.valid_until < demo.end for o in offers)


# -- customers and what each channel knows of them ----------------------------------------------


def test_customers_carry_several_identifiers_none_shared(demo: DemoRetailer) -> None:
    all_ids = [(i.kind, i.value) for c in demo.customers for i in c.identifiers]
    assert len(all_ids) == len(set(all_ids))
    assert demo.customers[0].customer_id == "cust-00001"
    kinds = Counter(kind for kind, _ in all_ids)
    n = len(demo.customers)
    assert kinds["CUSTOMER_ID"] == n and n <= kinds["DEVICE_ID"] <= 2 * n
    assert kinds["EMAIL"] > 0.8 * n and kinds["LOYALTY_CARD"] > 0.4 * n and 0 < kinds["PHONE"] < n
    assert demo.customers[0].identifier("CUSTOMER_ID") == "cust-00001"
    assert {c.channel_preference for c in demo.customers} == {"online", "mixed", "store"}


def test_events_carry_the_identifiers_their_channel_knows(demo: DemoRetailer) -> None:
    for ev in demo.events:
        kinds = _kinds(ev)
        if ev.channel == "POS":
            assert kinds <= {"LOYALTY_CARD", "POS_CARD_TOKEN"} and ev.store_id in demo.stores
        elif ev.channel == "EMAIL":
            assert "EMAIL" in kinds
        elif ev.channel in ("WEB", "APP"):
            assert "DEVICE_ID" in kinds or "CUSTOMER_ID" in kinds
        if ev.type == "PURCHASE":
            assert ev.price > 0 and ev.quantity >= 1 and ev.order_id
    anonymous = sum(1 for ev in demo.events if ev.channel in ("WEB", "APP") and _kinds(ev) == {"DEVICE_ID"})
    assert anonymous > 0


def test_baskets_group_several_lines_under_one_order(demo: DemoRetailer) -> None:
    lines = Counter(ev.order_id for ev in demo.events if ev.type == "PURCHASE")
    assert sum(n > 1 for n in lines.values()) > 0.05 * len(lines)


# -- journeys (the stories' test material) ------------------------------------------------------


def test_ad_click_then_store_purchase_of_that_item(history: dict[str, list[Event]]) -> None:
    found = 0
    for evs in history.values():
        clicked = {e.item_id: e.occurred_at for e in reversed(evs) if e.type == "AD_CLICK"}
        found += any(
            e.type == "PURCHASE"
            and e.channel == "POS"
            and clicked.get(e.item_id, e.occurred_at) < e.occurred_at
            for e in evs
        )
    assert found >= 10


def test_newsletter_click_then_web_purchase(demo: DemoRetailer, history: dict[str, list[Event]]) -> None:
    found = 0
    for evs in history.values():
        clicked = {e.item_id: e.occurred_at for e in reversed(evs) if e.type == "EMAIL_CLICK"}
        found += any(
            e.type == "PURCHASE"
            and e.channel == "WEB"
            and clicked.get(e.item_id, e.occurred_at) < e.occurred_at
            for e in evs
        )
    assert found >= 10
    opted_in = next(c for c in demo.customers if c.email_opt_in)
    assert any(e.type == "EMAIL_SENT" for e in history[opted_in.customer_id])
    assert not any(
        e.type == "EMAIL_SENT" for c in demo.customers if not c.email_opt_in for e in history[c.customer_id]
    )


def test_a_new_device_browses_anonymously_before_logging_in(
    demo: DemoRetailer, history: dict[str, list[Event]]
) -> None:
    """Story 2: a device first seen without a login is later seen with the customer id."""
    stories = 0
    for c in demo.customers:
        for device in [i for i in c.identifiers if i.kind == "DEVICE_ID"][1:]:
            seen = [e for e in history[c.customer_id] if device in e.identifiers]
            if seen and _kinds(seen[0]) == {"DEVICE_ID"}:
                stories += any(Identifier("CUSTOMER_ID", c.customer_id) in e.identifiers for e in seen)
    assert stories > 0.1 * len(demo.customers)


def test_seasonal_buyers_buy_flowers_around_valentines_day_every_year(
    demo: DemoRetailer, items: dict[str, Item], history: dict[str, list[Event]]
) -> None:
    seasonal = [c for c in demo.customers if c.seasonal]
    assert len(seasonal) > 0.05 * len(demo.customers)
    for c in seasonal:
        years = set()
        for ev in _purchases(history[c.customer_id], items, "flowers"):
            day = datetime.fromtimestamp(ev.occurred_at, UTC)
            if abs(ev.occurred_at - datetime(day.year, 2, 14, tzinfo=UTC).timestamp()) <= 3 * DAY:
                years.add(day.year)
        assert years == {2024, 2025}, c.customer_id


def test_replenishers_buy_coffee_about_monthly(
    demo: DemoRetailer, items: dict[str, Item], history: dict[str, list[Event]]
) -> None:
    gaps = []
    for c in demo.customers:
        if c.replenisher:
            coffee = _purchases(history[c.customer_id], items, "coffee")
            days = sorted({(e.occurred_at or 0) // DAY for e in coffee})
            gaps += [b - a for a, b in itertools.pairwise(days)]
    assert 25 <= statistics.median(gaps) <= 35


def test_phone_buyers_mostly_buy_an_accessory_for_their_phone(
    items: dict[str, Item], history: dict[str, list[Event]]
) -> None:
    bought = with_accessory = 0
    for evs in history.values():
        for phone in _purchases(evs, items, "phones"):
            bought += 1
            with_accessory += any(
                e.type == "PURCHASE"
                and phone.item_id in items[e.item_id].accessory_for
                and e.occurred_at >= phone.occurred_at
                for e in evs
            )
    assert bought > 20 and with_accessory > 0.7 * bought
    same_basket = sum(
        1
        for evs in history.values()
        for e in evs
        if e.type == "PURCHASE"
        and any(
            p.order_id == e.order_id and p.item_id in items[e.item_id].accessory_for
            for p in _purchases(evs, items, "phones")
        )
    )
    assert same_basket > 0


def test_customers_have_a_taste_a_recommender_can_learn(
    demo: DemoRetailer, items: dict[str, Item], history: dict[str, list[Event]]
) -> None:
    """Most of a customer's purchases fall in their favourite categories (3 of 15), and nobody buys
    the same durable item twice."""
    in_favourites = total = 0
    for c in demo.customers:
        bought = [e for e in history[c.customer_id] if e.type == "PURCHASE"]
        total += len(bought)
        in_favourites += sum(items[e.item_id].category in c.favourite_categories for e in bought)
        durables = Counter(e.item_id for e in bought if not items[e.item_id].repeatable)
        assert not durables or max(durables.values()) == 1
    assert in_favourites > 0.5 * total


def test_default_size_gives_40_to_80_events_per_customer() -> None:
    # (how long it takes is a benchmark's business: a shared machine made an 8 s bound fail here)
    retailer = generate(DemoConfig(end=END))
    assert len(retailer.items) == 600 and len(retailer.customers) == 2000 and len(retailer.stores) == 5
    assert 40 <= len(retailer.events) / 2000 <= 80


# -- seeding a real store -----------------------------------------------------------------------


def test_seed_stores_everything_in_sqlite(tmp_path: Path) -> None:
    retailer = generate(DemoConfig(customers=250, items=120, end=END))
    assert len(retailer.events) > 10_000  # more than one batch
    with Seenext(tiny_settings(tmp_path, sync_full=False)) as service:
        counts = seed(service, retailer)
        assert counts["items"] == len(retailer.items) == len(service.all_items())
        assert counts["events"] == len(retailer.events) and counts["duplicates"] == 0
        assert service.count_events() == len(retailer.events)
        phone = next(it for it in retailer.items if it.category == "phone_cases")
        assert service.get_item(phone.item_id).accessory_for == phone.accessory_for
        member = next(c for c in retailer.customers if c.identifier("LOYALTY_CARD"))
        card = Identifier("LOYALTY_CARD", member.identifier("LOYALTY_CARD") or "")
        assert service.resolve(card) == member.customer_id
        opted_in = [c.customer_id for c in retailer.customers if c.email_opt_in]
        assert counts["consents"] == len(opted_in) > 0
        assert service.with_consent(opted_in, "EMAIL", "marketing") == set(opted_in)
        again = seed(service, retailer)  # a retried seed is idempotent
        assert again["events"] == 0 and again["duplicates"] == len(retailer.events)
        assert service.count_events() == len(retailer.events)
