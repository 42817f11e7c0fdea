"""Two services on one database at once (two replicas of a fleet, each with its own connections):
the identity graph's creates, merges and Forget keep their guarantees, by the database's locks and
constraints and nothing in-process (issue 11 point 1)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import pytest

from models.domain import Event, Identifier
from models.service import Seenext
from models.settings import Settings
from tests.conftest import database_of

pytestmark = pytest.mark.both_backends
ROUNDS = 12


def together(*calls: Callable[[], object]) -> None:
    """Runs the calls in threads released at the same instant; re-raises the first failure."""
    gate = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        gate.wait()
        try:
            call()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]


def visit(event_id: str, *who: Identifier) -> list[Event]:
    return [Event(event_id, tuple(who), "WEB", "VIEW", "i1")]


def track(service: Seenext, event_id: str, *who: Identifier) -> Callable[[], object]:
    return lambda: service.track_batch(visit(event_id, *who))


def test_two_replicas_creating_and_merging_the_same_person_make_one_customer(settings: Settings) -> None:
    a, b = Seenext(settings), Seenext(settings)
    try:
        for n in range(ROUNDS):
            mail, device, card = (
                Identifier("EMAIL", f"p{n}@x.example"),
                Identifier("DEVICE_ID", f"phone-{n}"),
                Identifier("LOYALTY_CARD", f"CARD{n}"),
            )
            # both first meet the same new e-mail at once; then each links it to another identifier
            together(track(a, f"a{n}", mail), track(b, f"b{n}", mail))
            together(track(a, f"a{n}-2", mail, device), track(b, f"b{n}-2", mail, card))
            # and two customers made apart (a device, a card) merged by both replicas at once
            a.track_batch(visit(f"a{n}-3", Identifier("DEVICE_ID", f"tab-{n}")))
            b.track_batch(visit(f"b{n}-3", Identifier("LOYALTY_CARD", f"CLUB{n}")))
            login = Identifier("CUSTOMER_ID", f"acct-{n}")
            together(
                track(a, f"a{n}-4", login, Identifier("DEVICE_ID", f"tab-{n}")),
                track(b, f"b{n}-4", login, Identifier("LOYALTY_CARD", f"CLUB{n}")),
            )
    finally:
        a.close()
        b.close()
    db = database_of(settings)
    owners = dict(
        ((kind, key), owner)
        for kind, key, owner in db.sql("SELECT kind, value_key, customer_id FROM identifiers")
    )
    customers = {r[0] for r in db.sql("SELECT customer_id FROM customers")}
    assert len(customers) == 2 * ROUNDS  # one person per e-mail, one per account: nobody twice
    assert set(owners.values()) == customers  # no identifier lost or left with a customer that is gone
    for n in range(ROUNDS):
        person = {o for (_, key), o in owners.items() if key in (f"phone-{n}", f"CARD{n}")}
        assert len(person) == 1, person
        account = {o for (_, key), o in owners.items() if key in (f"acct-{n}", f"tab-{n}", f"CLUB{n}")}
        assert account == {f"acct-{n}"}
    assert {r[0] for r in db.sql("SELECT DISTINCT customer_id FROM events")} == customers
    assert db.sql("SELECT COUNT(*) FROM events")[0][0] == 8 * ROUNDS


def test_forget_beside_a_replica_tracking_the_same_person_leaves_no_half_customer(settings: Settings) -> None:
    a, b = Seenext(settings), Seenext(settings)
    try:
        for n in range(ROUNDS):
            mail = Identifier("EMAIL", f"f{n}@x.example")
            a.track_batch(visit(f"f{n}", mail, Identifier("DEVICE_ID", f"old-{n}")))
            together(
                functools.partial(a.forget, mail),
                track(b, f"f{n}-2", mail, Identifier("LOYALTY_CARD", f"NEW{n}")),
            )
    finally:
        a.close()
        b.close()
    db = database_of(settings)
    customers = {r[0] for r in db.sql("SELECT customer_id FROM customers")}
    assert {r[0] for r in db.sql("SELECT customer_id FROM identifiers")} <= customers
    assert {r[0] for r in db.sql("SELECT customer_id FROM events")} <= customers
    # the first visit is always forgotten; the second either went with it or came after as a new person
    assert not db.sql("SELECT 1 FROM identifiers WHERE value_key LIKE 'old-%'")
    for n in range(ROUNDS):
        left = db.sql("SELECT event_id FROM events WHERE event_id IN (?, ?)", f"f{n}", f"f{n}-2")
        cards = db.sql("SELECT customer_id FROM identifiers WHERE value_key = ?", f"NEW{n}")
        assert (left, bool(cards)) in (([], False), ([(f"f{n}-2",)], True))
