"""The follower passes over the feed rows of this process's own commits (applied at commit through
`listen_changes`) instead of reading them back, and still reads every other writer's (models/serving/
feed.py, models/storage/changes.py `Told`). Two `Storage` objects on one SQLite file or one PostgreSQL
database stand for this process and another one."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import pytest

from models.serving.feed import FeedFollower
from models.serving.state_cache import CustomerStates
from models.settings import Settings
from models.storage import Storage, open_storage
from models.storage.changes import FORGET, Change, customer_subject
from models.storage.serving import StateWindow
from tests.conftest import NOW

pytestmark = pytest.mark.both_backends

WIDE = StateWindow(recent_since=0.0)


class NotedStates(CustomerStates):
    """The real cache, noting every change applied to it: seq 0 from this process's commit (the
    listener), the row's seq from the follower's read."""

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage, capacity=100, max_lag=60.0)
        self.noted: list[Change] = []
        self._noting = threading.Lock()

    def apply(self, changes: Iterable[Change]) -> None:
        changes = list(changes)
        with self._noting:
            self.noted += changes
        super().apply(changes)

    def read_back(self) -> list[Change]:
        with self._noting:
            return [c for c in self.noted if c.seq > 0]

    def at_commit(self) -> list[Change]:
        with self._noting:
            return [c for c in self.noted if c.seq == 0]


class Process:
    """One serving process's wiring (models/service.py): its commits applied at once, the feed followed."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.states = NotedStates(storage)
        self.forgotten: list[set[str]] = []
        told = storage.listen_changes(self.states.apply)
        self.follower = FeedFollower(storage, self.states, on_forget=self.forgotten.append, told=told)
        self.follower.start_at_head()
        self.follower.poll()


@pytest.fixture
def stores(settings: Settings) -> Iterator[tuple[Storage, Storage]]:
    """This process's storage and another process's, on the same file or database."""
    own = open_storage(settings.db_path, database_url=settings.database_url)
    other = open_storage(settings.db_path, database_url=settings.database_url)
    yield own, other
    own.close()
    other.close()


def subjects(*ids: str) -> set[str]:
    return {customer_subject(i) for i in ids}


def test_own_writes_move_the_follower_without_being_read_back(
    stores: tuple[Storage, Storage], backend: str
) -> None:
    own, _ = stores
    p = Process(own)
    own.create_customers([("a1", NOW), ("a2", NOW), ("a3", NOW)])  # one statement for many rows
    with own.transaction():  # two writes, one commit
        own.create_customers([("a4", NOW), ("a5", NOW)])
        own.create_customers([("a6", NOW), ("a7", NOW)])
    assert p.follower.poll() == 0 and p.states.read_back() == []
    assert p.follower.position == own.feed_head()
    assert {c.subject for c in p.states.at_commit()} == subjects(*(f"a{i}" for i in range(1, 8)))
    # A single row: SQLite knows its seq for free; PostgreSQL would pay more to learn it than to read
    # the row back (models/storage/postgres/changes.py), so there it is read back as before.
    own.set_consent("a1", "ALL", "profiling", False, NOW)
    assert p.follower.poll() == (0 if backend == "sqlite" else 1)
    with own.transaction():  # the rows a PostgreSQL transaction knows the seqs of are passed over
        own.create_customers([("a8", NOW), ("a9", NOW)])
        own.set_consent("a8", "ALL", "profiling", False, NOW)
    assert p.follower.poll() == (0 if backend == "sqlite" else 1)
    assert p.follower.position == own.feed_head()


def test_another_writers_change_between_two_own_writes_is_applied(stores: tuple[Storage, Storage]) -> None:
    own, other = stores
    other.create_customers([("b", NOW)])
    p = Process(own)
    p.states.record(WIDE, customer_id="b")
    assert len(p.states) == 1  # cached while the follower is fresh
    own.create_customers([("a1", NOW), ("a2", NOW)])
    other.set_consent("b", "ALL", "profiling", False, NOW)
    own.set_consent("a3", "ALL", "profiling", False, NOW)
    p.follower.poll()
    assert p.follower.position == own.feed_head()
    read = {c.subject for c in p.states.read_back()}
    assert customer_subject("b") in read and len(p.states) == 0  # b's cached state dropped
    assert customer_subject("a3") in read  # above the other writer's row: read back, as before
    assert subjects("a1", "a2") & read == set()  # below it: passed over
    assert p.states.record(WIDE, customer_id="b").consents[("ALL", "profiling")] is False


def test_an_own_write_told_after_the_follower_lags_behind_another_writers_is_read(
    stores: tuple[Storage, Storage],
) -> None:
    own, other = stores
    p = Process(own)
    other.set_consent("b", "ALL", "profiling", False, NOW)
    own.create_customers([("a1", NOW), ("a2", NOW)])
    assert p.follower.poll() == 3  # b's row first, so a1 and a2 are read back
    assert p.follower.position == own.feed_head()
    own.create_customers([("a3", NOW), ("a4", NOW)])  # the follower is right below it again
    assert p.follower.poll() == 0
    other.set_consent("b", "ALL", "profiling", True, NOW)
    assert p.follower.poll() == 1
    assert p.follower.position == own.feed_head()


def test_a_forget_reaches_on_forget_whoever_wrote_it(stores: tuple[Storage, Storage]) -> None:
    own, other = stores
    p = Process(own)
    own.create_customers([("x", NOW), ("y", NOW)])
    p.follower.poll()
    other.erase_customer(["x"])
    p.follower.poll()
    assert p.forgotten == [subjects("x")]
    # This process's own Forget: read back and told to on_forget as it always was (the model in memory
    # drops the vectors at once, models/service.py `_forget_in_memory`).
    own.erase_customer(["y"])
    own.set_consent("z", "ALL", "profiling", False, NOW)
    p.follower.poll()
    assert p.forgotten == [subjects("x"), subjects("y")]
    forgets = [c.subject for c in p.states.read_back() if c.kind == FORGET]
    assert forgets == [customer_subject("x"), customer_subject("y")]
    assert p.follower.position == own.feed_head()


def test_concurrent_own_and_other_writers_lose_no_change(stores: tuple[Storage, Storage]) -> None:
    """Own commits from several threads (told in any order) and another writer's, while the follower
    polls: every row ends applied, the other writer's through the follower."""
    own, other = stores
    p = Process(own)
    start = p.follower.position
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            p.follower.poll()

    def own_writes(t: int) -> None:
        for i in range(15):
            own.create_customers([(f"t{t}-{i}-{j}", NOW) for j in range(3)])

    def other_writes() -> None:
        for i in range(30):
            other.set_consent(f"o{i}", "ALL", "profiling", False, NOW)

    follower = threading.Thread(target=follow)
    follower.start()
    writers = [threading.Thread(target=own_writes, args=(t,)) for t in range(3)]
    writers.append(threading.Thread(target=other_writes))
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    follower.join()
    p.follower.poll()
    rows = own.changes_after(start)
    assert p.follower.position == own.feed_head() == rows[-1].seq
    read = {c.seq for c in p.states.read_back()}
    theirs = {c.seq for c in rows if c.subject in subjects(*(f"o{i}" for i in range(30)))}
    assert len(theirs) == 30 and theirs <= read
    mine = {c.subject for c in rows} - subjects(*(f"o{i}" for i in range(30)))
    assert {c.subject for c in p.states.at_commit()} == mine and len(mine) == 3 * 15 * 3


def test_a_rolled_back_own_transaction_is_not_passed_over_and_its_seqs_stay_gaps(
    stores: tuple[Storage, Storage], backend: str
) -> None:
    """PostgreSQL burns the seqs of a rolled-back insert: they stay gaps the follower asks for again
    (never told as this process's). SQLite hands the same rowids to the next commit."""
    own, _ = stores
    p = Process(own)
    head = own.feed_head()
    with pytest.raises(RuntimeError), own.transaction():
        own.create_customers([("r1", NOW), ("r2", NOW)])
        assert own.feed_head() == head + 2  # inserted (in the transaction)
        raise RuntimeError("undone")
    own.set_consent("a1", "ALL", "profiling", False, NOW)
    assert p.states.at_commit() == [Change(0, "state", customer_subject("a1"))]
    if backend == "sqlite":
        assert own.feed_head() == head + 1
        assert p.follower.poll() == 0
    else:
        assert own.feed_head() == head + 3
        assert p.follower.poll() == 1  # above the burnt seqs: read back
        assert set(p.follower._gaps) == {head + 1, head + 2}
    assert p.follower.position == own.feed_head()
    own.create_customers([("a2", NOW), ("a3", NOW)])
    assert p.follower.poll() == 0  # right above the position again: passed over
    assert p.follower.position == own.feed_head()
