"""Catalogue storage: whole-item upserts with stock and accessory links, reads, the version."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from models.domain import Item, Offer
from models.storage import Storage
from tests.conftest import Database

pytestmark = pytest.mark.both_backends


@pytest.fixture
def storage(database: Database) -> Iterator[Storage]:
    db = database.open()
    yield db
    db.close()


def phone() -> Item:
    return Item(
        "phone",
        "Phone",
        "phones",
        "nova",
        500.0,
        attributes={"colour": "black"},
        stock={"": 3, "store-1": 1},
        offer=Offer(
            price=500.0, promo_price=450.0, valid_from=1.0, valid_until=2.0, offer_id="o", currency="EUR"
        ),
    )


def test_an_upsert_round_trips_and_moves_the_version(storage: Storage) -> None:
    assert storage.catalog_version() == 0 and storage.all_items() == [] and storage.item("phone") is None
    case = Item("case", accessory_for=["phone"], repeatable=True, active=False)
    assert storage.upsert_items([phone(), case], now=10.0) == 2
    assert storage.catalog_version() == 1
    assert storage.item("phone") == phone() and storage.item("case") == case
    assert [i.item_id for i in storage.all_items()] == ["case", "phone"]  # by id
    assert storage.all_items()[1] == phone()


def test_an_upsert_replaces_the_whole_item(storage: Storage) -> None:
    storage.upsert_items(
        [Item("a", stock={"s1": 1, "s2": 2}, accessory_for=["b"], offer=Offer(price=1.0))], 1.0
    )
    storage.upsert_items([Item("a", stock={"s3": 3})], 2.0)
    assert storage.item("a") == Item("a", stock={"s3": 3})
    assert storage.catalog_version() == 2


def test_an_upsert_inside_a_failed_transaction_leaves_nothing(storage: Storage) -> None:
    with pytest.raises(RuntimeError), storage.transaction():
        storage.upsert_items([phone()], 1.0)
        raise RuntimeError("the caller failed after the upsert")
    assert storage.item("phone") is None and storage.catalog_version() == 0
