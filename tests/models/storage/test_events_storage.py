"""The event log behind the storage interface: idempotent inserts, history reads, the training columns."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from models.storage import Storage
from models.storage.events import EventRow, PurchaseCount
from tests.conftest import Database

pytestmark = pytest.mark.both_backends


@pytest.fixture
def storage(database: Database) -> Iterator[Storage]:
    s = database.open()
    yield s
    s.close()


def row(
    event_id: str,
    customer: str = "c1",
    type_: str = "VIEW",
    item: str = "i1",
    at: float = 100.0,
    **kw: object,
) -> EventRow:
    fields: dict[str, object] = {
        "channel": "WEB",
        "quantity": 1,
        "price": 0.0,
        "store_id": "",
        "order_id": "",
        "recommendation_id": "",
        "received_at": 1000.0,
        "attributes": None,
    }
    fields.update(kw)
    return EventRow(event_id, customer, type=type_, item_id=item, occurred_at=at, **fields)  # type: ignore[arg-type]


def test_stored_events_are_found_by_id(storage: Storage) -> None:
    assert storage.insert_new_events([row("a"), row("b")]) == 2
    assert storage.insert_new_events([row("c", customer="other")]) == 1
    assert storage.event_count() == 3
    assert storage.event_customer("c") == "other" and storage.event_customer("nope") is None
    assert storage.stored_event_ids(["a", "c", "zz"]) == {"a", "c"}


def test_a_batch_mixing_whole_and_decimal_numbers_is_stored_as_sent(storage: Storage) -> None:
    assert storage.insert_new_events([row("a", price=10, quantity=2, at=5), row("b", price=9.5, at=6.5)]) == 2
    assert storage.item_events(["event_id", "price", "quantity", "occurred_at"]) == [
        ("a", 10.0, 2, 5.0),
        ("b", 9.5, 1, 6.5),
    ]


def test_new_events_are_stored_in_order_between_the_transactions_other_writes(storage: Storage) -> None:
    # TrackBatch's bulk path (PostgreSQL: a binary COPY, which leaves the transaction's pipeline and
    # enters it again): writes queued before and after it, and reads, are one transaction with it.
    rows = [row("b", price=10, quantity=2, at=5), row("a", price=9.5, at=6.5, attributes={"k": "v"})]
    with storage.transaction():
        storage.create_customers([("c1", 1.0)])
        assert storage.stored_event_ids(["a", "b"]) == set()
        assert storage.insert_new_events(rows) == 2
        storage.create_customers([("c2", 2.0)])
        assert storage.event_count() == 2  # the transaction reads its own writes
    assert storage.insert_new_events([]) == 0
    assert storage.item_events(["event_id", "price", "quantity", "occurred_at", "attributes"]) == [
        ("b", 10.0, 2, 5.0, None),
        ("a", 9.5, 1, 6.5, '{"k": "v"}'),
    ]  # in the order sent (seq)
    assert storage.customer_created_at("c1") == 1.0 and storage.customer_created_at("c2") == 2.0


def test_a_new_event_that_is_stored_already_is_never_stored_twice(
    storage: Storage, database: Database
) -> None:
    # PostgreSQL's COPY fails the whole transaction on it; SQLite's insert skips it.
    storage.insert_new_events([row("a")])
    if database.backend == "postgres":
        with pytest.raises(psycopg.errors.UniqueViolation), storage.transaction():
            storage.create_customers([("c9", 1.0)])
            storage.insert_new_events([row("b"), row("a", customer="other")])
        assert storage.stored_event_ids(["a", "b"]) == {"a"}
        assert storage.customer_created_at("c9") is None  # nothing of the failed transaction was kept
        assert storage.insert_new_events([row("b")]) == 1  # and the storage goes on working
    else:
        assert storage.insert_new_events([row("b"), row("a", customer="other")]) == 1
    assert storage.stored_event_ids(["a", "b"]) == {"a", "b"} and storage.event_customer("a") == "c1"


def test_stored_ids_of_a_list_longer_than_one_query(storage: Storage) -> None:
    storage.insert_new_events([row(f"e{n}") for n in range(1200)])
    asked = [f"e{n}" for n in range(0, 2400, 2)]
    assert storage.stored_event_ids(asked) == {f"e{n}" for n in range(0, 1200, 2)}


def test_a_failed_transaction_stores_nothing(storage: Storage) -> None:
    with pytest.raises(RuntimeError), storage.transaction():
        storage.insert_new_events([row("a")])
        assert storage.event_count() == 1  # a transaction reads its own writes
        raise RuntimeError("boom")
    assert storage.event_count() == 0


def test_newest_event_time(storage: Storage) -> None:
    assert storage.newest_event_time() is None
    storage.insert_new_events([row("a", at=5.0), row("b", at=7.5), row("c", at=6.0)])
    assert storage.newest_event_time() == 7.5


def test_interaction_columns_hold_item_events_before_a_time(storage: Storage) -> None:
    storage.insert_new_events(
        [
            row("a", "c1", "VIEW", "i1", 10.0, channel="WEB"),
            row("b", "c2", "VISIT", "", 20.0),
            row("c", "c2", "PURCHASE", "i2", 30.0, channel="POS", order_id="o1"),
        ]
    )
    every = storage.interaction_columns()
    assert sorted(
        zip(
            every.customer_id,
            every.item_id,
            every.type,
            every.channel,
            every.occurred_at,
            every.order_id,
            strict=True,
        )
    ) == [("c1", "i1", "VIEW", "WEB", 10.0, ""), ("c2", "i2", "PURCHASE", "POS", 30.0, "o1")]
    before = storage.interaction_columns(until=30.0)
    assert list(before.item_id) == ["i1"] and list(before.occurred_at) == [10.0]
    assert len(storage.interaction_columns(until=0.0).item_id) == 0


def test_purchase_counts_group_by_item_and_type(storage: Storage) -> None:
    storage.insert_new_events(
        [
            row("p1", type_="PURCHASE", item="phone", at=10.0),
            row("p2", type_="PURCHASE", item="phone", at=30.0),
            row("r1", type_="RETURN", item="phone", at=40.0),
            row("v1", type_="VIEW", item="case", at=50.0),
            row("x1", customer="c2", type_="PURCHASE", item="case", at=60.0),
        ]
    )
    assert sorted(storage.purchase_counts("c1")) == [
        PurchaseCount("phone", "PURCHASE", 30.0, 2),
        PurchaseCount("phone", "RETURN", 40.0, 1),
    ]
