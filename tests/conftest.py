"""Shared fixtures: a tiny world with a known answer, a service over a real database (a SQLite file
in a temp folder, or a fresh database on a throwaway PostgreSQL cluster), and a real gRPC server on a
free loopback port with the generated stubs.

Backends: the `backend` fixture is "sqlite" unless a test is marked `both_backends` (the storage
suite and the e2e modules that exercise storage most), then it runs once per backend; a test of
something only SQLite has (its file, its pragmas) is marked `sqlite_only`. TEST_POSTGRES=0
leaves PostgreSQL out; otherwise a cluster that cannot start fails those tests (tests/postgres.py).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from models.domain import Event, Identifier, Item, Offer
from models.service import Seenext
from models.settings import Settings
from models.storage import Storage, open_storage
from tests import postgres as pg

DAY = 86400.0
NOW = time.time()

# Three tastes: customers u0, u3, u6, … like phones; u1, u4, … flowers; u2, u5, … laptops.
GROUPS = {0: "phone", 1: "flowers", 2: "laptop"}
N_USERS = 60


def tiny_items() -> list[Item]:
    items = []
    for n in range(1, 6):
        items.append(
            Item(
                f"phone-{n}",
                title=f"Phone {n}",
                category="phone",
                brand="nova",
                price=600 + n,
                stock={"": 5, "store-1": 3},
            )
        )
        items.append(
            Item(
                f"case-{n}",
                title=f"Case for phone {n}",
                category="phone case",
                brand="shell",
                price=20 + n,
                accessory_for=[f"phone-{n}"],
                stock={"": 10, "store-1": 0 if n == 1 else 4},
            )
        )
        items.append(
            Item(
                f"flowers-{n}",
                title=f"Bouquet {n}",
                category="flowers",
                brand="bloom",
                price=30 + n,
                stock={"": 50},
            )
        )
        items.append(
            Item(
                f"laptop-{n}",
                title=f"Laptop {n}",
                category="laptop",
                brand="vega",
                price=1200 + n,
                stock={"": 2},
                offer=Offer(price=1200 + n, promo_price=1100 + n),
            )
        )
    return items


def flag_repeatable(service: Seenext, category: str) -> None:
    """The catalogue flags a category's items repeatable (an override: the tiny world itself carries no
    flag, as a retailer's catalogue seldom does)."""
    service.upsert_items([replace(i, repeatable=True) for i in tiny_items() if i.category == category])


def tiny_events() -> list[Event]:
    """Each customer views and buys within their group; deterministic."""
    events = []
    for u in range(N_USERS):
        group = GROUPS[u % 3]
        who = (Identifier("CUSTOMER_ID", f"u{u}"),)
        picks = [(u + j) % 5 + 1 for j in range(3)]
        for j, n in enumerate(picks):
            item = f"{group}-{n}"
            t = NOW - (j + 1) * 3 * DAY - u * 60
            events.append(Event(f"u{u}-v{j}", who, "WEB", "VIEW", item, occurred_at=t - 3600))
            if j < 2:
                events.append(
                    Event(
                        f"u{u}-p{j}",
                        who,
                        "WEB" if j == 0 else "POS",
                        "PURCHASE",
                        item,
                        store_id="" if j == 0 else "store-1",
                        order_id=f"o{u}-{j}",
                        price=10.0,
                        occurred_at=t,
                    )
                )
    return events


@dataclass(frozen=True)
class Database:
    """One test's database, whichever the backend: `open()` gives its Storage, `sql()` reads or writes
    it beside the storage, as another process would (a connection of its own, committed at once)."""

    backend: str
    path: Path  # the SQLite file ("sqlite")
    url: str = ""  # the PostgreSQL database ("postgres")

    def open(self, sync_full: bool = False) -> Storage:
        return open_storage(self.path, sync_full, database_url=self.url, pool_size=4)

    def sql(self, statement: str, *args: object) -> list[tuple[Any, ...]]:
        """`?` placeholders on both backends; the rows a statement returns (none for a write)."""
        if not self.url:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                return conn.execute(statement, args).fetchall()
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as pconn:
            if not args:  # no placeholders parsed: a literal % stays as it is
                cur = pconn.execute(statement)  # type: ignore[arg-type]
            else:
                cur = pconn.execute(statement.replace("%", "%%").replace("?", "%s"), args)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if not self.url:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.executemany(statement, rows)
            finally:
                conn.close()
            return
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as pconn, pconn.cursor() as cur:
            cur.executemany(statement.replace("%", "%%").replace("?", "%s"), rows)  # type: ignore[arg-type]

    def tables(self) -> list[str]:
        if not self.url:
            return [r[0] for r in self.sql("SELECT name FROM sqlite_master WHERE type='table'")]
        return [
            str(r[0]) for r in self.sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ]


def database_of(settings: Settings) -> Database:
    return Database(
        "postgres" if settings.database_url else "sqlite", settings.db_path, settings.database_url
    )


def stored_rows(settings: Settings, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows as they are at rest in the database (a second connection, `?` placeholders): for tests that
    check what the service really wrote, or really erased."""
    if settings.database_url:
        return database_of(settings).sql(sql, *args)
    conn = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# -- backends -----------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_backends: run the test on SQLite and on PostgreSQL")
    config.addinivalue_line("markers", "sqlite_only: a test of SQLite's own file, kept off PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames or not pg.wanted():
        return
    node = metafunc.definition
    if node.get_closest_marker("both_backends") and not node.get_closest_marker("sqlite_only"):
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[pg.Cluster]:
    """One throwaway PostgreSQL 15 cluster for the session (tests/postgres.py). It FAILS the tests that
    need it when it cannot start; only TEST_POSTGRES=0 (asked for) skips them."""
    if not pg.wanted():
        pytest.skip("TEST_POSTGRES=0: PostgreSQL left out of this run")
    cluster = pg.Cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """Empty for SQLite; a fresh, empty PostgreSQL database (dropped after the test) for "postgres"."""
    if backend != "postgres":
        yield ""
        return
    cluster: pg.Cluster = request.getfixturevalue("postgres_cluster")
    url = cluster.database()
    yield url
    cluster.drop(url)


@pytest.fixture
def postgres_url(postgres_cluster: pg.Cluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, whatever the test's backend (tests that compare both)."""
    url = postgres_cluster.database()
    yield url
    postgres_cluster.drop(url)


@pytest.fixture
def database(backend: str, database_url: str, tmp_path: Path) -> Database:
    return Database(backend, tmp_path / "test.db", database_url)


def tiny_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {  # API keys are tested in tests/server/test_auth.py
        "data_dir": data_dir,
        "port": 0,
        "epochs": 20,
        "components": 8,
        "train_threads": 1,
        "learning_rate": 0.05,
        "workers": 8,
        "reload_seconds": 0.2,
        "auth": False,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest, database_url: str) -> Settings:
    """The tiny settings, on the test's backend; a test changes some with
    `@pytest.mark.parametrize("settings", [{…}], indirect=True)`."""
    overrides: dict[str, object] = {"database_url": database_url} if database_url else {}
    overrides.update(getattr(request, "param", {}))
    return tiny_settings(tmp_path, **overrides)


@pytest.fixture
def service(settings: Settings) -> Iterator[Seenext]:
    svc = Seenext(settings)
    yield svc
    svc.close()


@pytest.fixture
def trained(service: Seenext) -> Seenext:
    """The tiny world stored and trained."""
    service.upsert_items(tiny_items())
    result = service.track_batch(tiny_events())
    assert not result.rejected
    service.train()
    return service


@pytest.fixture
def server(settings: Settings) -> Iterator[object]:
    from server.app import create_server

    running = create_server(settings)
    yield running
    running.stop(grace=1.0)


@pytest.fixture
def channel(server: object) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:  # type: ignore[attr-defined]
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch
