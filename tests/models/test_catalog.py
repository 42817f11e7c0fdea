"""Catalogue: round trip, whole-item replacement, validation, the serving snapshot."""

from __future__ import annotations

import pytest

from models.domain import Item, Offer
from models.errors import InvalidArgument, NotFound
from models.service import Seenext


def test_upsert_and_get_round_trip(service: Seenext) -> None:
    item = Item(
        "case-1",
        "Case",
        "phone case",
        "shell",
        19.5,
        accessory_for=["phone-1"],
        repeatable=False,
        attributes={"colour": "red"},
        stock={"": 3, "store-1": 0},
        offer=Offer(price=19.5, promo_price=15.0, valid_from=1.0e9, valid_until=2.0e9, offer_id="promo"),
    )
    assert service.upsert_items([item]) == 1
    assert service.get_item("case-1") == item


def test_upsert_replaces_the_whole_item(service: Seenext) -> None:
    service.upsert_items([Item("a", stock={"s1": 1, "s2": 2}, accessory_for=["b"])])
    service.upsert_items([Item("a", stock={"s3": 3})])
    got = service.get_item("a")
    assert got.stock == {"s3": 3} and got.accessory_for == []
    assert service.catalog_snapshot().accessories_of == {}


def test_snapshot_follows_upserts(service: Seenext) -> None:
    service.upsert_items([Item("a")])
    first = service.catalog_snapshot()
    service.upsert_items([Item("b", accessory_for=["a"])])
    second = service.catalog_snapshot()
    assert second.version == first.version + 1
    assert second.accessories_of == {"a": ("b",)}


def test_unknown_item_is_not_found(service: Seenext) -> None:
    with pytest.raises(NotFound, match="'nope'"):
        service.get_item("nope")


@pytest.mark.parametrize(
    "item, field",
    [
        (Item(""), "items[0].item_id"),
        (Item("a", price=-3), "items[0].price"),
        (Item("a", accessory_for=["a"]), "items[0].accessory_for[0]"),
        (Item("a", stock={"s": -1}), "items[0].stock"),
    ],
)
def test_invalid_items_name_the_field(service: Seenext, item: Item, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        service.upsert_items([item])
    assert err.value.field == field


def test_stock_rules(service: Seenext) -> None:
    service.upsert_items([Item("a", stock={"": 0, "s1": 2}), Item("b")])
    snap = service.catalog_snapshot()
    assert not snap.in_stock("a", "") and snap.in_stock("a", "s1") and not snap.in_stock("a", "s2")
    assert snap.in_stock("b", "s2")  # no stock data: not filtered
