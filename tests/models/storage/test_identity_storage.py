"""The identity graph's rows behind the storage interface: identifiers, customers, merges, attributes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.errors import FailedPrecondition
from models.identity import pii
from models.storage import Storage
from models.storage.changes import customer_subject, node_subject
from models.storage.events import EventRow
from models.storage.identity import CustomerFacts, IdentifierRow, NewIdentifier
from tests.conftest import Database

STRONG = ("CUSTOMER_ID", "EMAIL", "PHONE", "LOYALTY_CARD")


pytestmark = pytest.mark.both_backends


@pytest.fixture
def storage(database: Database) -> Iterator[Storage]:
    s = database.open()
    yield s
    s.close()


def event(event_id: str, customer: str) -> EventRow:
    return EventRow(event_id, customer, "WEB", "VIEW", "i1", 1, 0.0, "", "", "", 1.0, 1.0, None)


def test_identifier_rows_singly_and_in_bulk(storage: Storage) -> None:
    with storage.transaction():
        for n in range(1200):
            storage.insert_identifier("DEVICE_ID", f"d{n}", f"c{n % 3}", f"d{n}", 10.0)
        storage.insert_identifier("EMAIL", "d1", "c9", "a***@x", 10.0)  # same key, other kind
    assert storage.identifier_row("DEVICE_ID", "d4") == IdentifierRow("DEVICE_ID", "d4", "c1", False, 0)
    assert storage.identifier_row("DEVICE_ID", "nope") is None
    asked = [f"d{n}" for n in range(0, 2400, 2)] + ["d0"]  # more than one query's worth, a repeat
    found = storage.identifier_rows("DEVICE_ID", asked)
    assert sorted(r.key for r in found) == sorted(f"d{n}" for n in range(0, 1200, 2))
    assert {r.kind for r in found} == {"DEVICE_ID"}
    assert storage.identifier_rows("EMAIL", ["d1", "d2"]) == [IdentifierRow("EMAIL", "d1", "c9", False, 0)]


def test_insert_keeps_the_first_owner_links_and_shared_update_the_row(storage: Storage) -> None:
    storage.insert_identifier("DEVICE_ID", "tablet", "dad", "tablet", 1.0)
    storage.insert_identifier("DEVICE_ID", "tablet", "mum", "tablet", 2.0)
    storage.add_identifier_link("DEVICE_ID", "tablet")
    storage.add_identifier_link("DEVICE_ID", "tablet")
    storage.mark_identifier_shared("DEVICE_ID", "tablet")
    assert storage.identifier_row("DEVICE_ID", "tablet") == IdentifierRow(
        "DEVICE_ID", "tablet", "dad", True, 2
    )


def test_strong_keys_of_a_customer_leave_out_shared_and_weak_ones(storage: Storage) -> None:
    storage.insert_identifier("CUSTOMER_ID", "alice", "alice", "alice", 1.0)
    storage.insert_identifier("EMAIL", "h:1", "alice", "a***@x", 2.0)
    storage.insert_identifier("LOYALTY_CARD", "card", "alice", "card", 3.0)
    storage.insert_identifier("DEVICE_ID", "phone", "alice", "phone", 4.0)
    storage.mark_identifier_shared("LOYALTY_CARD", "card")
    assert sorted(storage.customer_identifier_keys("alice", STRONG)) == [
        ("CUSTOMER_ID", "alice"),
        ("EMAIL", "h:1"),
    ]
    assert storage.customer_identifier_keys("alice", ()) == []
    views = storage.identifier_views("alice")
    assert [(v.kind, v.display, v.shared) for v in views] == [
        ("CUSTOMER_ID", "alice", False),
        ("EMAIL", "a***@x", False),
        ("LOYALTY_CARD", "card", True),
        ("DEVICE_ID", "phone", False),
    ]


def test_customers_are_created_once(storage: Storage) -> None:
    assert storage.customer_created_at("c1") is None
    storage.create_customer("c1", 5.0)
    storage.create_customer("c1", 9.0)
    assert storage.customer_created_at("c1") == 5.0


def test_a_batch_of_identifier_nodes_of_several_kinds_is_read_at_once(storage: Storage) -> None:
    with storage.transaction():
        for n in range(700):
            storage.insert_identifier("DEVICE_ID", f"d{n}", f"c{n % 3}", f"d{n}", 10.0)
        storage.insert_identifier("EMAIL", "d1", "c9", "", 10.0)  # same key, other kind
    asked = [("DEVICE_ID", f"d{n}") for n in range(0, 1400, 2)] + [("EMAIL", "d1"), ("EMAIL", "d2")]
    found = storage.identifier_rows_of([*asked, ("DEVICE_ID", "d0")])  # a repeat
    assert sorted((r.kind, r.key) for r in found) == sorted(
        [("DEVICE_ID", f"d{n}") for n in range(0, 700, 2)] + [("EMAIL", "d1")]
    )
    assert IdentifierRow("EMAIL", "d1", "c9", False, 0) in found
    assert storage.identifier_rows_of([]) == []


def test_batch_writes_do_what_the_single_ones_do(storage: Storage, database: Database) -> None:
    storage.insert_identifier("DEVICE_ID", "tablet", "dad", "tablet", 1.0)
    head = storage.feed_head()
    with storage.transaction():
        storage.create_customers([("c1", 5.0), ("c2", 6.0), ("c1", 9.0)])  # the first row of an id wins
        storage.insert_identifiers(
            [
                NewIdentifier("EMAIL", "h:1", "c1", "", 5.0),
                NewIdentifier("DEVICE_ID", "tablet", "mum", "tablet", 5.0),  # stored: left as it is
                NewIdentifier("DEVICE_ID", "phone", "c2", "phone", 6.0),
            ]
        )
        tablet, phone = ("DEVICE_ID", "tablet"), ("DEVICE_ID", "phone")
        storage.add_identifier_links([tablet, phone, tablet])
        storage.mark_identifiers_shared([("DEVICE_ID", "tablet")])
    assert storage.customer_created_at("c1") == 5.0 and storage.customer_created_at("c2") == 6.0
    assert storage.identifier_row("EMAIL", "h:1") == IdentifierRow("EMAIL", "h:1", "c1", False, 0)
    assert storage.identifier_row(*tablet) == IdentifierRow(*tablet, "dad", True, 2)
    assert storage.identifier_row(*phone) == IdentifierRow(*phone, "c2", False, 1)
    # the change feed: each customer created, identifier added and identifier marked shared, once
    subjects = {c.subject for c in storage.changes_after(head)}
    assert subjects == {
        customer_subject("c1"),
        customer_subject("c2"),
        node_subject("EMAIL", "h:1"),
        node_subject("DEVICE_ID", "tablet"),
        node_subject("DEVICE_ID", "phone"),
    }
    with storage.transaction():  # empty batches write nothing
        storage.create_customers([])
        storage.insert_identifiers([])
        storage.add_identifier_links([])
        storage.mark_identifiers_shared([])
    assert storage.feed_head() == max(c.seq for c in storage.changes_after(head))


def test_customer_facts_of_many_customers_at_once(storage: Storage) -> None:
    with storage.transaction():
        storage.create_customers([(f"c{n}", float(n)) for n in range(600)])
        storage.insert_identifier("CUSTOMER_ID", "c1", "c1", "c1", 1.0)
        storage.insert_identifier("EMAIL", "h:1", "c1", "", 2.0)
        storage.insert_identifier("DEVICE_ID", "phone", "c1", "phone", 3.0)  # weak: not asked for
        storage.insert_identifier("LOYALTY_CARD", "card", "c1", "card", 3.0)
        storage.mark_identifier_shared("LOYALTY_CARD", "card")  # shared: left out
        storage.insert_identifier("EMAIL", "h:2", "ghost", "", 4.0)  # identifiers, no customer row
    ids = [f"c{n}" for n in range(600)] + ["ghost", "nobody", "c1"]
    facts = storage.customer_facts(ids, STRONG)
    assert set(facts) == set(ids)
    assert facts["c1"].created_at == 1.0
    assert sorted(facts["c1"].keys) == [("CUSTOMER_ID", "c1"), ("EMAIL", "h:1")]
    assert facts["c599"] == CustomerFacts(599.0, ())
    assert facts["ghost"] == CustomerFacts(None, (("EMAIL", "h:2"),))
    assert facts["nobody"] == CustomerFacts(None, ())
    assert storage.customer_facts([], STRONG) == {}
    assert storage.customer_facts(["c1"], ())["c1"] == CustomerFacts(1.0, ())


def test_customer_facts_find_identifiers_by_customer_not_by_kind(
    storage: Storage, database: Database
) -> None:
    """A TrackBatch reads the facts of the customers it weighs: through the customer_id index, not the
    primary key's kind prefix (which read every e-mail, phone, account and card of the store per batch:
    a TrackBatch slowed as the store grew, issue 11)."""
    if database.backend != "sqlite":
        pytest.skip("SQLite's planner has no statistics to go by; PostgreSQL plans from its own")
    with storage.transaction():
        storage.insert_identifiers([NewIdentifier("EMAIL", f"h:{n}", f"c{n}", "", 1.0) for n in range(300)])
    with storage.count_statements() as sent:  # a batch weighs tens of customers at once
        facts = storage.customer_facts([f"c{n}" for n in range(100)], STRONG)
    assert facts["c1"].keys == (("EMAIL", "h:1"),)
    [read] = [s for s in sent if "FROM identifiers" in s]
    plan = " ".join(str(row) for row in database.sql(f"EXPLAIN QUERY PLAN {read}"))
    assert "(customer_id=?)" in plan, plan


def test_a_merge_repoints_every_row_and_records_the_alias(storage: Storage, database: Database) -> None:
    sql = database.sql
    with storage.transaction():
        for customer, born in (("anon", 1.0), ("bob", 5.0), ("old", 0.5)):
            storage.create_customer(customer, born)
        storage.insert_identifier("DEVICE_ID", "d1", "anon", "d1", 1.0)
        storage.insert_identifier("CUSTOMER_ID", "bob", "bob", "bob", 5.0)
        storage.insert_new_events([event("e1", "anon"), event("e2", "bob")])
        storage.set_customer_attributes([("anon", {"segment": "gold"})], 1.0)
    consent = (
        "INSERT INTO consent (customer_id, channel, purpose, granted, updated_at) VALUES (?, ?, ?, ?, ?)"
    )
    sql(consent, "anon", "EMAIL", "marketing", 1, 20.0)  # newer than bob's: it wins
    sql(consent, "bob", "EMAIL", "marketing", 0, 10.0)
    sql(consent, "anon", "WEB", "profiling", 0, 1.0)
    sql("INSERT INTO recommendations (recommendation_id, customer_id) VALUES ('r1', 'anon')")

    with storage.transaction():
        storage.merge_customers("old", "anon", 0.5, 50.0)  # an earlier merge into the loser
        storage.merge_customers("anon", "bob", 0.5, 60.0)

    assert sql("SELECT event_id, customer_id FROM events ORDER BY event_id") == [
        ("e1", "bob"),
        ("e2", "bob"),
    ]
    assert storage.identifier_row("DEVICE_ID", "d1") == IdentifierRow("DEVICE_ID", "d1", "bob", False, 0)
    assert sql("SELECT channel, purpose, granted FROM consent WHERE customer_id='bob' ORDER BY channel") == [
        ("EMAIL", "marketing", 1),
        ("WEB", "profiling", 0),
    ]
    assert sql("SELECT COUNT(*) FROM consent WHERE customer_id='anon'") == [(0,)]
    assert sql("SELECT customer_id FROM recommendations") == [("bob",)]
    assert (
        storage.customer_attributes("bob") == {"segment": "gold"}
        and storage.customer_attributes("anon") == {}
    )
    assert sql("SELECT customer_id, created_at FROM customers") == [("bob", 0.5)]
    assert storage.customer_aliases("bob") == ["old", "anon"]
    assert storage.customer_aliases("anon") == []


def _merge_world(storage: Storage, database: Database, ns: str) -> None:
    """Customers, identifiers, events, an alias, consent, attributes and recommendations, their ids
    prefixed by `ns` (two such worlds share one database)."""

    def n(c: str) -> str:
        return f"{ns}{c}"

    with storage.transaction():
        for customer, born in (("old", 0.5), ("anon", 1.0), ("bob", 5.0), ("dev", 3.0), ("older", 0.1)):
            storage.create_customer(n(customer), born)
        storage.insert_identifier("DEVICE_ID", n("d1"), n("anon"), "d1", 1.0)
        storage.insert_identifier("CUSTOMER_ID", n("bob"), n("bob"), "bob", 5.0)
        storage.insert_identifier("DEVICE_ID", n("d2"), n("dev"), "d2", 3.0)
        storage.insert_new_events(
            [event(n("e1"), n("anon")), event(n("e2"), n("bob")), event(n("e3"), n("dev"))]
        )
        storage.insert_new_events([event(n("e4"), n("old"))])
        storage.set_customer_attributes(
            [(n("anon"), {"segment": "gold"}), (n("dev"), {"segment": "tin"})], 1.0
        )
        storage.merge_customers(n("older"), n("old"), 0.1, 40.0)  # an alias from before
    consent = (
        "INSERT INTO consent (customer_id, channel, purpose, granted, updated_at) VALUES (?, ?, ?, ?, ?)"
    )
    for who, channel, granted, at in (
        ("anon", "EMAIL", 1, 20.0),
        ("bob", "EMAIL", 0, 10.0),
        ("dev", "EMAIL", 0, 30.0),
        ("anon", "WEB", 0, 1.0),
        ("dev", "WEB", 1, 1.0),  # a tie with anon's: the earlier survivor's stands
    ):
        database.sql(consent, n(who), channel, "marketing", granted, at)
    for r, who in (("r1", "anon"), ("r2", "dev")):
        database.sql(
            "INSERT INTO recommendations (recommendation_id, customer_id) VALUES (?, ?)", n(r), n(who)
        )


def _merge_snapshot(database: Database, ns: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the world `ns`, its prefix taken off."""
    queries = {
        "events": "SELECT event_id, customer_id FROM events",
        "identifiers": "SELECT kind, value_key, customer_id FROM identifiers",
        "customers": "SELECT customer_id, created_at FROM customers",
        "aliases": "SELECT merged_id, customer_id, merged_at FROM customer_merges",
        "consent": "SELECT customer_id, channel, purpose, granted, updated_at FROM consent",
        "attributes": "SELECT customer_id, attributes FROM customer_attributes",
        "recommendations": "SELECT recommendation_id, customer_id FROM recommendations",
    }
    out = {}
    for name, sql in queries.items():
        rows = database.sql(f"{sql} WHERE customer_id LIKE ?", f"{ns}%")
        out[name] = sorted(tuple(v.removeprefix(ns) if isinstance(v, str) else v for v in r) for r in rows)
    return out


def test_merges_of_a_batch_at_once_leave_what_merging_pair_by_pair_leaves(
    storage: Storage, database: Database
) -> None:
    # (loser, survivor, created_at) in order: a chain (old -> anon -> bob -> acct, which has no row)
    # and a second loser into bob, as a TrackBatch's resolver queues them.
    merges = [("old", "anon", 0.5), ("anon", "bob", 0.5), ("dev", "bob", 0.5), ("bob", "acct", 0.4)]
    for ns in ("p:", "m:"):
        _merge_world(storage, database, ns)
    with storage.transaction():
        for loser, survivor, born in merges:
            storage.merge_customers(f"p:{loser}", f"p:{survivor}", born, 60.0)
    with storage.transaction():
        storage.merge_customers_many([(f"m:{a}", f"m:{b}", born) for a, b, born in merges], 60.0)
    pairwise, at_once = _merge_snapshot(database, "p:"), _merge_snapshot(database, "m:")
    assert at_once == pairwise
    assert {c for _, c in at_once["events"]} == {"acct"} and at_once["customers"] == [("acct", 0.4)]
    assert sorted(m for m, _, _ in at_once["aliases"]) == ["anon", "bob", "dev", "old", "older"]
    assert ("acct", "EMAIL", "marketing", 0, 30.0) in at_once["consent"]  # the newest decision
    storage.merge_customers_many([], 70.0)  # nothing to do


def test_a_merge_into_a_customer_without_a_row_creates_it(storage: Storage) -> None:
    storage.create_customer("a", 3.0)
    storage.merge_customers("a", "acct", 3.0, 4.0)
    assert storage.customer_created_at("a") is None and storage.customer_created_at("acct") == 3.0
    assert storage.customer_aliases("acct") == ["a"]


def test_customer_attributes_round_trip(storage: Storage) -> None:
    assert storage.customer_attributes("c1") == {} and storage.customer_attributes_count() == 0
    storage.set_customer_attributes(
        [("c1", {"age": "30-39", "segment": "gold"}), ("c2", {}), ("c1", {"age": "40-49"})], 7.0
    )
    assert storage.customer_attributes("c1") == {"age": "40-49"}  # a later row of a customer wins
    assert storage.all_customer_attributes() == {"c1": {"age": "40-49"}, "c2": {}}
    assert storage.customer_attributes_count() == 2


def test_the_pii_key_fingerprint_is_kept_in_meta(storage: Storage, tmp_path: Path) -> None:
    key = pii.open_key(tmp_path / "pii.key", storage)
    assert storage.meta("pii_key_fingerprint") == key.fingerprint
    assert pii.open_key(tmp_path / "pii.key", storage).fingerprint == key.fingerprint
    other = tmp_path / "other.key"
    other.write_text("ab" * 32)
    with pytest.raises(FailedPrecondition, match="is not the one this database was written with"):
        pii.open_key(other, storage)
