"""Customer states in memory and the change feed that keeps them fresh (models/serving/state_cache.py,
models/serving/feed.py): two `Seenext` on one SQLite file stand for two replicas on one database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing

import pytest

from models.domain import Event, Identifier
from models.service import Seenext
from models.serving.feed import FeedFollower
from models.serving.recommender import RecommendQuery
from models.serving.state_cache import CustomerStates
from models.settings import Settings
from models.storage import Storage, open_storage
from models.storage.changes import customer_subject
from models.storage.serving import CustomerRecord, StateWindow
from tests.conftest import NOW, stored_rows

U2 = Identifier("CUSTOMER_ID", "u2")
WIDE = StateWindow(recent_since=0.0)


def within(seconds: float, check: Callable[[], bool]) -> float:
    """How long `check` took to hold (fails if it did not within `seconds`)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, "did not happen in time"
        time.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
def replica_b(trained: Seenext, settings: Settings) -> Iterator[Seenext]:
    """A second serving process on the same data folder, both following the feed and the models."""
    other = Seenext(settings)
    trained.start_background()
    other.start_background()
    yield other
    other.close()


def recommended(svc: Seenext, who: Identifier, k: int = 20) -> list[str]:
    return [r.item_id for r in svc.recommend(RecommendQuery(channel="WEB", who=who, k=k)).items]


def test_a_known_customer_is_read_once_then_from_memory_until_they_change(trained: Seenext) -> None:
    trained.follow_changes()
    q = RecommendQuery(channel="WEB", who=U2, k=5)
    trained.recommend(q)  # the cold read fills the cache
    with trained.count_statements() as sent:
        before = trained.recommend(q)
    assert sent == [] and before.recognised
    bought = before.items[0].item_id
    trained.track(Event("u2-new", (U2,), "WEB", "PURCHASE", bought, occurred_at=time.time()))
    with trained.count_statements() as sent:  # this process's commit dropped the state at once
        after = trained.recommend(q)
    assert len(sent) == 1 and bought not in [r.item_id for r in after.items]
    with trained.count_statements() as sent:
        trained.recommend(q)
    assert sent == []


def test_an_e_mail_request_still_reads_what_was_mailed(trained: Seenext) -> None:
    """The mailed items depend on the request's time: never from memory."""
    trained.follow_changes()
    q = RecommendQuery(channel="EMAIL", who=Identifier("CUSTOMER_ID", "u1"), placement="newsletter", k=3)
    trained.recommend(q)
    with trained.count_statements() as sent:
        trained.recommend(q)
    assert len(sent) == 1


def test_a_purchase_on_one_replica_is_excluded_by_the_other_within_a_second(
    trained: Seenext, replica_b: Seenext
) -> None:
    first = recommended(replica_b, U2)
    assert first
    trained.track(Event("u2-buy", (U2,), "WEB", "PURCHASE", first[0], occurred_at=time.time()))
    within(1.0, lambda: first[0] not in recommended(replica_b, U2))


def test_a_customer_forgotten_on_one_replica_is_unknown_to_the_other_within_a_second(
    trained: Seenext, replica_b: Seenext
) -> None:
    u5 = Identifier("CUSTOMER_ID", "u5")
    rec = replica_b.recommend(RecommendQuery(channel="WEB", who=u5, k=5))
    assert rec.recognised and rec.strategy.startswith("personalised")
    trained.forget(u5)

    def unknown() -> bool:
        again = replica_b.recommend(RecommendQuery(channel="WEB", who=u5, k=5))
        return not again.recognised and "personalised" not in again.strategy

    within(1.0, unknown)
    # its vector leaves B's memory too: the serving model drops it at once (before the version the
    # Forget rewrote is loaded), and the version B loads next does not hold it either
    within(
        1.0, lambda: replica_b.serving_model is not None and replica_b.serving_model.user_row("u5") is None
    )
    replica_b.reload_model()
    current = replica_b.serving_model
    assert current is not None and current.user_row("u5") is None


def test_an_identifier_unknown_when_cached_is_recognised_once_another_replica_links_it(
    trained: Seenext, replica_b: Seenext
) -> None:
    card = Identifier("LOYALTY_CARD", "card-77")
    assert not replica_b.recommend(RecommendQuery(channel="WEB", who=card, k=3)).recognised  # cached: nobody
    trained.identify([U2, card])
    within(1.0, lambda: replica_b.recommend(RecommendQuery(channel="WEB", who=card, k=3)).customer_id == "u2")


class _Interleaved(Storage):
    """A storage whose customer read lets another replica commit and be followed before it returns:
    the race a fill must not lose (everything else is the real store)."""

    def __init__(self, real: Storage, meanwhile: Callable[[], None]) -> None:
        self._real = real
        self._meanwhile = meanwhile

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def customer_record(
        self, window: StateWindow, *, node: tuple[str, str] | None = None, customer_id: str | None = None
    ) -> CustomerRecord:
        record = self._real.customer_record(window, node=node, customer_id=customer_id)
        self._meanwhile()
        return record


_Interleaved.__abstractmethods__ = frozenset()


def test_a_fill_racing_with_a_change_does_not_keep_the_stale_state(
    trained: Seenext, settings: Settings
) -> None:
    reader = open_storage(settings.db_path)
    writer = open_storage(settings.db_path)
    states_holder: list[CustomerStates] = []
    follower_holder: list[FeedFollower] = []

    def another_replica_writes() -> None:
        if states_holder and not getattr(another_replica_writes, "done", False):
            another_replica_writes.done = True  # type: ignore[attr-defined]
            writer.set_consent("u2", "ALL", "profiling", False, time.time())
            follower_holder[0].poll()  # the follower applies it while the read is in flight

    try:
        states = CustomerStates(_Interleaved(reader, another_replica_writes), capacity=100, max_lag=60.0)
        follower = FeedFollower(reader, states)
        states_holder.append(states)
        follower_holder.append(follower)
        follower.start_at_head()
        follower.poll()
        stale = states.record(WIDE, customer_id="u2")  # read before the write: as it was
        assert ("ALL", "profiling") not in stale.consents
        with trained.count_statements():
            fresh = states.record(WIDE, customer_id="u2")  # not kept: read again, the decision shows
        assert fresh.consents[("ALL", "profiling")] is False
        assert states.misses == 2 and len(states) == 1
        assert states.record(WIDE, customer_id="u2") == fresh and states.hits == 1
    finally:
        reader.close()
        writer.close()


def test_states_are_read_from_the_store_while_the_feed_is_not_followed(
    settings: Settings, trained: Seenext
) -> None:
    storage = open_storage(settings.db_path)
    try:
        states = CustomerStates(storage, capacity=100, max_lag=0.2)
        follower = FeedFollower(storage, states)
        follower.start_at_head()
        follower.poll()
        states.record(WIDE, customer_id="u2")
        states.record(WIDE, customer_id="u2")
        assert states.hits == 1
        time.sleep(0.3)  # no poll for longer than the lag allowed: memory may be stale
        with storage.count_statements() as sent:
            states.record(WIDE, customer_id="u2")
        assert len(sent) == 1 and states.hits == 1
    finally:
        storage.close()


def test_a_gap_in_the_feed_is_applied_when_its_transaction_commits_late(
    settings: Settings, trained: Seenext
) -> None:
    """PostgreSQL numbers rows before commit: seq n+2 may be visible before n+1. Written here by hand
    in that order, as such a backend would show them."""
    storage = open_storage(settings.db_path)
    try:
        states = CustomerStates(storage, capacity=100, max_lag=60.0)
        follower = FeedFollower(storage, states)
        follower.start_at_head()
        follower.poll()
        head = storage.feed_head()
        states.record(WIDE, customer_id="u2")
        states.record(WIDE, customer_id="u5")
        with closing(sqlite3.connect(settings.db_path)) as conn, conn:
            conn.execute(
                "INSERT INTO changes (seq, changed_at, kind, subject) VALUES (?, ?, 'state', ?)",
                (head + 2, NOW, customer_subject("u5")),
            )
        follower.poll()
        assert follower.position == head + 2 and len(states) == 1  # u5 dropped; head + 1 is a gap
        with closing(sqlite3.connect(settings.db_path)) as conn, conn:
            conn.execute(
                "INSERT INTO changes (seq, changed_at, kind, subject) VALUES (?, ?, 'state', ?)",
                (head + 1, NOW, customer_subject("u2")),
            )
        follower.poll()
        assert len(states) == 0  # the late row was asked for again and applied
    finally:
        storage.close()


def test_the_feed_is_pruned_but_never_numbers_backwards(settings: Settings, trained: Seenext) -> None:
    storage = open_storage(settings.db_path)
    try:
        head = storage.feed_head()
        assert head > 0  # the tiny world's writes
        rows = len(stored_rows(settings, "SELECT seq FROM changes"))
        assert storage.prune_changes(head) == rows - 1
        assert [r[0] for r in stored_rows(settings, "SELECT seq FROM changes")] == [head]
        storage.set_consent("u2", "ALL", "marketing", True, time.time())
        assert storage.feed_head() == head + 1
    finally:
        storage.close()


def test_the_feed_holds_no_customer_id_or_identifier(settings: Settings, trained: Seenext) -> None:
    rows = stored_rows(settings, "SELECT kind, subject FROM changes")
    assert rows and not any("u2" in subject or "u0" in subject for _, subject in rows)


def test_a_lease_has_one_holder_until_it_expires(settings: Settings, trained: Seenext) -> None:
    a, b = open_storage(settings.db_path), open_storage(settings.db_path)
    try:
        now = time.time()
        assert a.take_lease("training", "host-a", 30.0, now)
        assert not b.take_lease("training", "host-b", 30.0, now + 1)
        assert a.take_lease("training", "host-a", 30.0, now + 2)  # renewed by its holder
        assert b.lease_holder("training", now + 3) == "host-a"
        assert b.take_lease("training", "host-b", 30.0, now + 40)  # expired: taken over
        a.release_lease("training", "host-a")  # not a's any more: nothing happens
        assert a.lease_holder("training", now + 41) == "host-b"
    finally:
        a.close()
        b.close()


def test_the_cache_is_bounded_and_drops_the_least_recently_used(settings: Settings, trained: Seenext) -> None:
    storage = open_storage(settings.db_path)
    try:
        states = CustomerStates(storage, capacity=2, max_lag=60.0)
        follower = FeedFollower(storage, states)
        follower.start_at_head()
        follower.poll()
        for customer in ("u1", "u2", "u1", "u3"):  # u2 is the least recently used when u3 comes
            states.record(WIDE, customer_id=customer)
        assert len(states) == 2
        with storage.count_statements() as sent:
            states.record(WIDE, customer_id="u1")
            states.record(WIDE, customer_id="u3")
        assert sent == []
        with storage.count_statements() as sent:
            states.record(WIDE, customer_id="u2")
        assert len(sent) == 1
    finally:
        storage.close()
