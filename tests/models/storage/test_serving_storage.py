"""Serving storage: the one-statement customer state, popularity, purchase baskets, the served log.

A small known-answer world written straight into a real database (the rows other modules would
write), then read back through the serving part of the storage interface; on both backends.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest

from models.domain import DAY
from models.storage import Storage
from models.storage.serving import ItemEvent, ServedRecommendation, StateWindow, Tally
from tests.conftest import Database

T0 = 1_700_000_000.0


pytestmark = pytest.mark.both_backends


@pytest.fixture
def storage(database: Database) -> Iterator[Storage]:
    db = database.open()
    yield db
    db.close()


def write(database: Database, sql: str, rows: list[tuple[object, ...]]) -> None:
    """Rows as other modules would write them, straight into the database."""
    database.executemany(sql, rows)


def event(
    n: int,
    customer: str,
    etype: str,
    item: str,
    at: float,
    channel: str = "WEB",
    store: str = "",
    rec: str = "",
) -> tuple[object, ...]:
    return (f"e{n}", customer, channel, etype, item, 1, 0.0, store, f"o{n}", rec, at, at, None)


EVENTS = (
    "INSERT INTO events (event_id, customer_id, channel, type, item_id, quantity, price, store_id, order_id,"
    " recommendation_id, occurred_at, received_at, attributes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@pytest.fixture
def world(storage: Storage, database: Database) -> Storage:
    """ann (account "ann", e-mail key "h-ann", a device she shares with bob), bob, and a merge into ann."""
    write(
        database,
        "INSERT INTO identifiers (kind, value_key, customer_id, display, created_at, shared, links)"
        " VALUES (?,?,?,?,?,?,0)",
        [
            ("CUSTOMER_ID", "ann", "ann", "ann", T0, 0),
            ("EMAIL", "h-ann", "ann", "a***", T0, 0),
            ("DEVICE_ID", "tablet", "ann", "tablet", T0, 1),
            ("CUSTOMER_ID", "bob", "bob", "bob", T0, 0),
        ],
    )
    write(
        database, "INSERT INTO customers (customer_id, created_at) VALUES (?,?)", [("ann", T0), ("bob", T0)]
    )
    write(
        database,
        "INSERT INTO customer_merges (merged_id, customer_id, merged_at) VALUES (?,?,?)",
        [("anon-2", "ann", T0 + 2), ("anon-1", "ann", T0 + 1)],
    )
    write(
        database,
        EVENTS,
        [
            event(1, "ann", "PURCHASE", "phone", T0 - 10 * DAY),
            event(2, "ann", "PURCHASE", "coffee", T0 - 9 * DAY),
            event(3, "ann", "PURCHASE", "coffee", T0 - 2 * DAY, channel="POS", store="s1"),
            event(4, "ann", "PURCHASE", "case", T0 - DAY),
            event(5, "ann", "RETURN", "case", T0 - DAY + 60),
            event(6, "ann", "VIEW", "laptop", T0 - 3600),
            event(7, "ann", "VIEW", "mouse", T0 - 1800),
            event(8, "ann", "ADD_TO_CART", "mouse", T0 - 1800),  # the same time: the later row first
            event(9, "ann", "EMAIL_SENT", "flowers", T0 - 3 * DAY, channel="EMAIL"),
            event(10, "ann", "EMAIL_SENT", "", T0 - 2 * DAY, channel="EMAIL", rec="r-quoted"),
            event(11, "ann", "EMAIL_SENT", "old-mail", T0 - 30 * DAY, channel="EMAIL"),
            event(12, "bob", "PURCHASE", "laptop", T0 - DAY),
            event(13, "bob", "VIEW", "phone", T0 - 100),
        ],
    )
    write(
        database,
        "INSERT INTO consent (customer_id, channel, purpose, granted, updated_at) VALUES (?,?,?,?,?)",
        [
            ("ann", "EMAIL", "marketing", 1, T0),
            ("ann", "ALL", "profiling", 0, T0),
            ("bob", "ALL", "marketing", 1, T0),
        ],
    )
    storage.record_served(
        [
            ServedRecommendation(
                "r-quoted", "ann", "APP", "home", ["q1", "q2"], "p", "v", "personalised", T0 - 20 * DAY
            ),
            ServedRecommendation(
                "r-mail", "ann", "EMAIL", "newsletter", ["m1"], "p", "v", "personalised", T0 - DAY
            ),
            ServedRecommendation(
                "r-now", "ann", "EMAIL", "newsletter", ["m2"], "p", "v", "personalised", T0 - 60
            ),
            ServedRecommendation("r-web", "ann", "WEB", "home", ["w1"], "p", "v", "personalised", T0 - 60),
        ]
    )
    return storage


def test_the_customer_state_of_an_identifier_is_one_statement_with_every_part(world: Storage) -> None:
    window = StateWindow(
        recent_since=T0 - 2 * DAY, recent_limit=3, mailed_since=T0 - 7 * DAY, served_before=T0 - 3600
    )
    with world.count_statements() as sent:
        rec = world.customer_record(window, node=("EMAIL", "h-ann"))
    assert len(sent) == 1
    assert rec.customer_id == "ann"
    assert rec.aliases == ("anon-1", "anon-2")  # oldest merge first
    assert rec.purchases == {
        "phone": Tally(T0 - 10 * DAY, 1),
        "coffee": Tally(T0 - 2 * DAY, 2),
        "case": Tally(T0 - DAY, 1),
    }
    assert rec.returns == {"case": Tally(T0 - DAY + 60, 1)}
    # newest first, ties by the order they were logged (later first), at most recent_limit
    assert rec.recent == (
        ItemEvent("mouse", "ADD_TO_CART", T0 - 1800),
        ItemEvent("mouse", "VIEW", T0 - 1800),
        ItemEvent("laptop", "VIEW", T0 - 3600),
    )
    assert rec.consents == {("EMAIL", "marketing"): True, ("ALL", "profiling"): False}
    # EMAIL_SENT items and the recommendation quoted, EMAIL recommendations served before the cut
    assert rec.mailed == {"flowers", "q1", "q2", "m1"}


def test_parts_not_asked_for_are_not_read(world: Storage) -> None:
    rec = world.customer_record(StateWindow(), customer_id="ann")
    assert rec.customer_id == "ann" and rec.recent == () and rec.mailed == frozenset()
    assert rec.purchases and rec.consents and rec.aliases  # these are always read
    since = world.customer_record(StateWindow(recent_since=T0 - 1800), customer_id="ann").recent
    assert [e.item_id for e in since] == ["mouse", "mouse"]


def test_unknown_ids_and_shared_devices_recognise_no_one(world: Storage) -> None:
    window = StateWindow(recent_since=0.0, mailed_since=0.0)
    assert world.customer_record(window, node=("DEVICE_ID", "tablet")).customer_id is None  # shared
    unknown = world.customer_record(window, node=("CUSTOMER_ID", "nobody"))
    assert unknown.customer_id is None and unknown.purchases == {} and unknown.mailed == frozenset()
    assert world.customer_record(window, customer_id="nobody").customer_id is None
    with pytest.raises(ValueError):
        world.customer_record(window)


def test_mailed_items_follow_the_window(world: Storage) -> None:
    def mailed(customer: str, since: float, served_before: float = math.inf) -> frozenset[str]:
        window = StateWindow(mailed_since=since, served_before=served_before)
        return world.customer_record(window, customer_id=customer).mailed

    assert mailed("ann", T0 - 7 * DAY, served_before=T0 - 3600) == {"flowers", "q1", "q2", "m1"}
    assert mailed("ann", T0 - 7 * DAY) == {"flowers", "q1", "q2", "m1", "m2"}  # no grace
    assert mailed("ann", T0 - 40 * DAY) >= {"old-mail"}
    assert mailed("bob", 0.0) == set()


def test_popularity_weighs_events_as_configured_per_channel_and_store(world: Storage) -> None:
    weights = {"PURCHASE": 5.0, "VIEW": 1.0, "ADD_TO_CART": 3.0}
    ranked = world.popularity(weights, window=math.inf)
    assert ranked == [("coffee", 10.0), ("laptop", 6.0), ("phone", 6.0), ("case", 5.0), ("mouse", 4.0)]
    assert ("flowers", 0.0) not in ranked and all(s > 0 for _, s in ranked)  # EMAIL_SENT weighs nothing
    assert world.popularity({"VIEW": 1.0}, window=math.inf) == [
        ("laptop", 1.0),
        ("mouse", 1.0),
        ("phone", 1.0),
    ]
    assert world.popularity(weights, window=math.inf, store_id="s1") == [("coffee", 5.0)]
    assert world.popularity(weights, window=math.inf, channel="POS") == [("coffee", 5.0)]
    # the window ends at the newest event (T0 - 60 s would be r-now; events end at T0 - 100)
    assert [i for i, _ in world.popularity(weights, window=2000.0)] == ["mouse", "phone"]
    assert world.popularity({"PURCHASE": 0.0}, window=math.inf) == []
    assert world.popularity(weights, window=math.inf, limit=1) == [("coffee", 10.0)]


def test_popularity_of_an_empty_store_is_empty(storage: Storage) -> None:
    assert storage.popularity({"PURCHASE": 5.0}, window=30 * DAY) == []


def test_purchase_rows_come_by_customer_then_time(world: Storage) -> None:
    rows = list(world.purchase_rows())
    assert [(c, i) for c, i, _, _ in rows] == [
        ("ann", "phone"),
        ("ann", "coffee"),
        ("ann", "coffee"),
        ("ann", "case"),
        ("bob", "laptop"),
    ]
    assert rows[0] == ("ann", "phone", "o1", T0 - 10 * DAY)


def test_the_served_log_round_trips_and_a_repeated_id_replaces_its_row(
    world: Storage, database: Database
) -> None:
    world.record_served(
        [ServedRecommendation("r-mail", "ann", "EMAIL", "newsletter", ["m9"], "p", "v", "x", T0 - DAY)]
    )
    world.record_served([])
    rows = database.sql("SELECT items, arm FROM recommendations WHERE recommendation_id='r-mail'")
    assert [(json.loads(items), arm) for items, arm in rows] == [(["m9"], "x")]
