"""A small retailer for the channel tests, with known answers.

Phones with a case and a charger each (catalogue accessories), laptops with a mouse, flowers and
coffee (repeatable). Two stores: in "store-a" charger-1 is out of stock, case-1 is not. Customers
c00..c59 have one of four tastes and buy a main item with its accessory a day later (so complements
are also learned). "alice" bought phone-1 on the web a week ago and consented to marketing e-mail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from models.domain import Event, Identifier, Item, Offer
from models.service import Seenext
from models.settings import Settings
from models.storage import Storage, open_storage

DAY = 86400.0
NOW = time.time()
TASTES = ("phone", "laptop", "flowers", "coffee")
N_CUSTOMERS = 60


def items() -> list[Item]:
    out: list[Item] = []
    for n in range(1, 5):
        out.append(
            Item(
                f"phone-{n}",
                f"Nova X{n} Phone",
                "phones",
                "nova",
                500 + 50 * n,
                stock={"": 9, "store-a": 4, "store-b": 4},
            )
        )
        out.append(
            Item(
                f"case-{n}",
                f"Slim Case for Nova X{n}",
                "phone cases",
                "shell",
                19 + n,
                accessory_for=[f"phone-{n}"],
                stock={"": 30, "store-a": 6, "store-b": 6},
            )
        )
        out.append(
            Item(
                f"charger-{n}",
                f"Fast Charger for Nova X{n}",
                "chargers",
                "volt",
                29 + n,
                accessory_for=[f"phone-{n}"],
                stock={"": 30, "store-a": 0 if n == 1 else 5, "store-b": 5},
            )
        )
        out.append(
            Item(
                f"laptop-{n}",
                f"Aero A{n} Laptop",
                "laptops",
                "aero",
                900 + 100 * n,
                stock={"": 5, "store-a": 2, "store-b": 2},
                offer=Offer(price=900 + 100 * n, promo_price=850 + 100 * n),
            )
        )
        out.append(
            Item(
                f"mouse-{n}",
                f"Travel Mouse for Aero A{n}",
                "mice",
                "clickr",
                25 + n,
                accessory_for=[f"laptop-{n}"],
                stock={"": 20, "store-a": 3, "store-b": 3},
            )
        )
        out.append(
            Item(
                f"flowers-{n}",
                f"Rose Bouquet {n}",
                "flowers",
                "bloom",
                30 + n,
                repeatable=True,
                stock={"": 50, "store-a": 10, "store-b": 10},
            )
        )
        out.append(
            Item(
                f"coffee-{n}",
                f"Espresso Beans {n}",
                "coffee",
                "roast",
                8 + n,
                repeatable=True,
                stock={"": 80, "store-a": 20, "store-b": 20},
            )
        )
    out.append(Item("phone-old", "Nova X0 Phone", "phones", "nova", 299, active=False, stock={"": 3}))
    return out


def who(customer_id: str) -> tuple[Identifier, ...]:
    return (Identifier("CUSTOMER_ID", customer_id),)


def events() -> list[Event]:
    """Deterministic journeys: views of their taste, a main item bought, its accessory a day later."""
    out: list[Event] = []
    for c in range(N_CUSTOMERS):
        cid, taste = f"c{c:02d}", TASTES[c % 4]
        n = c // 4 % 4 + 1
        base = NOW - (20 + c % 7) * DAY
        for j in range(3):
            item = f"{taste}-{(n + j - 1) % 4 + 1}"
            out.append(Event(f"{cid}-v{j}", who(cid), "WEB", "VIEW", item, occurred_at=base - 3600 * (j + 1)))
        if taste in ("phone", "laptop"):
            acc = ("case" if c // 16 % 2 else "charger") if taste == "phone" else "mouse"
            out.append(
                Event(
                    f"{cid}-p0",
                    who(cid),
                    "WEB",
                    "PURCHASE",
                    f"{taste}-{n}",
                    price=600,
                    order_id=f"{cid}-o0",
                    occurred_at=base,
                )
            )
            out.append(
                Event(
                    f"{cid}-p1",
                    who(cid),
                    "POS",
                    "PURCHASE",
                    f"{acc}-{n}",
                    price=20,
                    store_id="store-b",
                    order_id=f"{cid}-o1",
                    occurred_at=base + DAY,
                )
            )
        else:
            for j in range(2):
                out.append(
                    Event(
                        f"{cid}-p{j}",
                        who(cid),
                        "WEB",
                        "PURCHASE",
                        f"{taste}-{(n + j - 1) % 4 + 1}",
                        price=30,
                        order_id=f"{cid}-o{j}",
                        occurred_at=base + j * 2 * DAY,
                    )
                )
    # Story 1: alice bought phone-1 on the web a week ago; she likes phones.
    out.append(Event("alice-v", who("alice"), "WEB", "VIEW", "phone-1", occurred_at=NOW - 8 * DAY))
    out.append(Event("alice-v2", who("alice"), "WEB", "VIEW", "phone-2", occurred_at=NOW - 8 * DAY + 60))
    out.append(
        Event(
            "alice-p",
            (Identifier("CUSTOMER_ID", "alice"), Identifier("LOYALTY_CARD", "LC-ALICE")),
            "WEB",
            "PURCHASE",
            "phone-1",
            price=550,
            order_id="alice-o1",
            occurred_at=NOW - 7 * DAY,
        )
    )
    return out


def grant(
    service: Seenext,
    customer_id: str,
    granted: bool = True,
    channel: str = "EMAIL",
    purpose: str = "marketing",
) -> None:
    """Records a consent decision, as a CRM export would (what PrivacyService.SetConsent stores)."""
    service.import_consents(
        [(Identifier("CUSTOMER_ID", customer_id), channel, purpose, granted, time.time())]
    )


@contextmanager
def storage_of(service: Seenext) -> Iterator[Storage]:
    """The service's store opened beside it through the storage interface, for a test that must write
    a world the API cannot (rows back-dated by hours), or compare a storage read on its own."""
    storage = open_storage(
        service.settings.db_path, service.settings.sync_full, database_url=service.settings.database_url
    )
    try:
        yield storage
    finally:
        storage.close()


def settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": data_dir,
        "port": 0,
        "epochs": 15,
        "components": 8,
        "train_threads": 1,
        "workers": 8,
        "reload_seconds": 0.2,
        "sync_full": False,
        "complement_min_support": 2,
        "auth": False,  # API keys are tested in tests/server/test_auth.py
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def load(service: Seenext, train: bool = True) -> Seenext:
    """The world stored (and trained), with e-mail consent for alice and the even customers."""
    service.upsert_items(items())
    result = service.track_batch(events())
    assert not result.rejected, result.rejected[:3]
    for c in range(0, N_CUSTOMERS, 2):
        grant(service, f"c{c:02d}")
    grant(service, "alice")
    if train:
        service.train()
    return service


def serve(data_dir: Path, interceptors: Sequence[object] = (), train: bool = True):  # type: ignore[no-untyped-def]
    """A real server on a free loopback port over a loaded world; `.stop()` it when done."""
    from server.app import create_server

    running = create_server(settings(data_dir), interceptors=interceptors)  # type: ignore[arg-type]
    load(running.service, train)
    running.service.warm()
    return running
