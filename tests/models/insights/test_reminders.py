"""Story 4: seasonal and replenishment reminders for a date window, with known answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.domain import Event, Identifier, Item
from models.errors import InvalidArgument
from models.insights.reminders import seasonal_categories, years_before
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from tests import channel_world as world


def day(y: int, m: int, d: int) -> float:
    return dt.datetime(y, m, d, 12, tzinfo=dt.UTC).timestamp()


START, END = day(2025, 2, 10), day(2025, 2, 18)

PURCHASES = {
    "rose": [("flowers-1", day(2024, 2, 14))],  # due: Valentine's last year
    "june": [("flowers-2", day(2024, 6, 1))],  # not: another season
    "early": [("flowers-1", day(2024, 2, 13)), ("flowers-2", day(2025, 2, 9))],  # not: bought already
    "phoneguy": [("phone-1", day(2024, 2, 14))],  # not: phones do not recur
    "twoyears": [("flowers-2", day(2023, 2, 15))],  # due: two years back counts
    "beans": [
        ("coffee-1", day(2024, 11, 10)),
        ("coffee-1", day(2024, 12, 10)),
        ("coffee-1", day(2025, 1, 9)),
    ],
    "fresh": [("coffee-1", day(2025, 1, 6)), ("coffee-1", day(2025, 2, 5))],  # not: next one in March
    "single": [("coffee-1", day(2025, 1, 12))],  # due: the usual 30 days
    "lapsed": [("coffee-1", day(2024, 6, 1)), ("coffee-1", day(2024, 7, 1))],  # not: lapsed long ago
    # flowers every month: a routine, not a season (and due again like coffee)
    "monthly": [("flowers-2", day(2024, m, 14)) for m in range(2, 13)] + [("flowers-2", day(2025, 1, 14))],
    "mothersday": [("flowers-1", day(2024, 2, 14)), ("flowers-2", day(2024, 3, 10))],  # two seasons: due
    # gaps of 5 and 60 days (median 32.5: "due" on 11 February) are no rhythm to remind on
    "erratic": [
        ("coffee-2", day(2024, 11, 6)),
        ("coffee-2", day(2024, 11, 11)),
        ("coffee-2", day(2025, 1, 10)),
    ],
}


def catalogue() -> list[Item]:
    return [
        Item("flowers-1", "Red Roses", "flowers", repeatable=True, price=40, stock={"": 10}),
        Item("flowers-2", "Tulip Bunch", "flowers", repeatable=True, price=25, stock={"": 10}),
        Item("flowers-3", "Peony Bouquet", "flowers", repeatable=True, price=55, stock={"": 0}),
        Item("coffee-1", "Espresso Beans", "coffee", repeatable=True, price=9, stock={"": 50}),
        Item("coffee-2", "Coffee Pods", "coffee", repeatable=True, price=6, stock={"": 50}),
        Item("phone-1", "Nova X1 Phone", "phones", price=600, stock={"": 3}),
        Item("vase-1", "Glass Vase", "home", price=20, stock={"": 5}),
    ]


def stock(svc: Seenext) -> Seenext:
    svc.upsert_items(catalogue())
    svc.track_batch(
        [
            Event(
                f"{c}-{n}",
                (Identifier("CUSTOMER_ID", c),),
                "WEB",
                "PURCHASE",
                item,
                occurred_at=t,
                order_id=f"{c}-{n}",
            )
            for c, bought in PURCHASES.items()
            for n, (item, t) in enumerate(bought)
        ]
    )
    return svc


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Seenext]:
    with Seenext(world.settings(tmp_path)) as svc:
        yield stock(svc)


def due(svc: Seenext, start: float = START, end: float = END, **kw: object) -> dict[str, list]:
    return {r.customer_id: r for r in svc.due_reminders(start, end, **kw)}  # type: ignore[arg-type]


def test_story4_the_flower_anniversary(shop: Seenext) -> None:
    found = due(shop)
    assert "rose" in found and "twoyears" in found and "mothersday" in found
    assert not {"june", "early", "phoneguy"} & set(found)
    assert [i.reasons[0].code for i in found["monthly"].items] == ["due_again"]
    rose = found["rose"]
    assert rose.reason == "You bought flowers around 14 February last year"
    assert [i.item_id for i in rose.items][:2] and all(i.category == "flowers" for i in rose.items)
    reason = rose.items[0].reasons[0]
    assert (reason.code, reason.related_item_id) == ("seasonal", "flowers-1")
    assert found["twoyears"].reason == "You bought flowers around 15 February 2023"


def test_replenishment_when_the_usual_interval_has_elapsed(shop: Seenext) -> None:
    found = due(shop)
    assert "beans" in found and "single" in found
    assert not {"fresh", "lapsed", "erratic"} & set(found)
    beans = found["beans"]
    assert [i.item_id for i in beans.items] == ["coffee-1"]
    assert beans.items[0].reasons[0].code == "due_again"
    assert beans.reason.startswith("Time to stock up: you last bought the Espresso Beans on 9 January")
    assert "about every 30 days" in beans.reason


def test_customers_come_in_order_and_the_window_decides(shop: Seenext) -> None:
    ids = [r.customer_id for r in shop.due_reminders(START, END)]
    assert ids == sorted(ids)
    june = due(shop, day(2025, 5, 28), day(2025, 6, 5))
    assert not {"june", "rose"} & set(june)  # one bouquet in June does not make June a flower season


def test_only_categories_that_peak_around_the_dates_are_seasonal(shop: Seenext) -> None:
    catalog = shop.catalog_snapshot()
    with world.storage_of(shop) as storage:
        assert seasonal_categories(storage, START, END, catalog) == {"flowers"}
        assert seasonal_categories(storage, day(2025, 5, 28), day(2025, 6, 5), catalog) == set()


def test_email_rules_apply_when_the_channel_is_email(shop: Seenext) -> None:
    world.grant(shop, "rose")
    world.grant(shop, "beans")
    found = due(shop, channel="EMAIL", k=5)
    assert set(found) == {"rose", "beans"}  # the others gave no consent
    assert "flowers-3" not in [i.item_id for i in found["rose"].items]  # out of stock online
    assert "flowers-3" in [i.item_id for i in due(shop, k=5)["rose"].items]  # no channel: no stock rule


def test_reminders_and_recommend_take_the_same_consent_decision(tmp_path: Path) -> None:
    """Regression (issue 8): with marketing allowed by default, Recommend mailed a customer who recorded
    no decision while DueReminders, which treated "no decision" as a refusal, left them out."""
    with Seenext(world.settings(tmp_path, consent_default_marketing=True)) as svc:
        stock(svc)
        svc.set_consent(Identifier("CUSTOMER_ID", "twoyears"), "EMAIL", "marketing", False)
        reminded = set(due(svc, channel="EMAIL"))
        mailed = {
            c
            for c in ("rose", "twoyears")
            if svc.recommend(RecommendQuery("EMAIL", Identifier("CUSTOMER_ID", c), "newsletter", k=3)).items
        }
        assert "rose" in reminded and "twoyears" not in reminded  # both are due (see the story test)
        assert mailed == {"rose"}


@pytest.mark.parametrize(
    "start, end, field",
    [
        (None, END, "window_start"),
        (START, None, "window_end"),
        (END, START, "window_end"),
        (START, START + 100 * 86400, "window_end"),
    ],
)
def test_bad_windows_name_the_field(
    shop: Seenext, start: float | None, end: float | None, field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        shop.due_reminders(start, end)
    assert err.value.field == field


def test_years_before_keeps_the_calendar_day() -> None:
    assert years_before(day(2025, 2, 14), 1) == day(2024, 2, 14)
    assert years_before(day(2024, 2, 29), 1) == day(2023, 2, 28)
