"""Shared fixtures: a tiny world with a known answer, a service over a real SQLite file in a temp
folder, and a real gRPC server on a free loopback port with the generated stubs.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from models.domain import Event, Identifier, Item, Offer
from models.service import Seenext
from models.settings import Settings

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
                repeatable=True,
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


def stored_rows(settings: Settings, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Rows as they are at rest in the SQLite file (a second, read-only connection): for tests that
    check what the service really wrote, or really erased."""
    conn = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


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
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """The tiny settings; a test changes some with
    `@pytest.mark.parametrize("settings", [{…}], indirect=True)`."""
    return tiny_settings(tmp_path, **getattr(request, "param", {}))


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
