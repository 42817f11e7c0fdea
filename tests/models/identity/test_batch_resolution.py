"""A batch resolves identities set-based (issue 11): a few reads whatever its size, and the same graph
as when each event is tracked on its own."""

from __future__ import annotations

import random

import pytest

from models.domain import Event, Identifier
from models.service import Seenext
from models.settings import Settings
from tests.conftest import Database, database_of, tiny_settings

pytestmark = pytest.mark.both_backends

POOLS = {
    "CUSTOMER_ID": [f"acct{i}" for i in range(12)],
    "EMAIL": [f"m{i}@x.example" for i in range(24)],
    "PHONE": [f"+44 20 7946 06{i:02d}" for i in range(10)],
    "LOYALTY_CARD": [f"L{i}" for i in range(8)],
    "DEVICE_ID": [f"dev{i}" for i in range(20)],
    "POS_CARD_TOKEN": [f"tok{i}" for i in range(8)],
}
WEIGHTS = {"CUSTOMER_ID": 2, "EMAIL": 3, "PHONE": 1, "LOYALTY_CARD": 1, "DEVICE_ID": 5, "POS_CARD_TOKEN": 2}


def stream(n: int, seed: int) -> list[Event]:
    """Events carrying 1-4 identifiers drawn from small pools: new customers, links, merges, accounts
    that must not merge, devices that turn shared, and repeated event ids."""
    rng = random.Random(seed)
    kinds = list(WEIGHTS)
    out = []
    for i in range(n):
        picked = rng.choices(kinds, [WEIGHTS[k] for k in kinds], k=rng.choice([1, 2, 2, 3, 4]))
        idents = tuple(Identifier(k, rng.choice(POOLS[k])) for k in picked)
        event_id = f"e{i}" if rng.random() > 0.05 else f"e{rng.randrange(i + 1)}"
        out.append(Event(event_id, idents, "WEB", "VIEW", f"i{rng.randrange(9)}", occurred_at=1e9 + i))
    return out


def graph(database: Database) -> set[tuple[object, ...]]:
    """The graph with customer ids replaced by the identifiers they hold (anonymous ids are random):
    each identifier with its shared flag and links, and each event, under its customer's identifiers."""
    rows = database.sql("SELECT customer_id, kind, value_key, shared, links FROM identifiers")
    held: dict[str, list[str]] = {}
    for customer, kind, key, *_ in rows:
        held.setdefault(customer, []).append(f"{kind}:{key}")
    name = {c: "|".join(sorted(keys)) for c, keys in held.items()}
    out: set[tuple[object, ...]] = {
        (name[c], kind, key, int(shared), int(links)) for c, kind, key, shared, links in rows
    }
    out |= {
        (name.get(c, "shared" if c.startswith("shared-") else c), e)
        for c, e in database.sql("SELECT customer_id, event_id FROM events")
    }
    return out


def reads(sent: list[str]) -> list[str]:
    return [s for s in sent if s.lstrip().upper().startswith("SELECT") and "pg_advisory" not in s]


@pytest.mark.parametrize("seed", [3, 11])
def test_a_batch_builds_the_graph_that_one_event_at_a_time_builds(
    settings: Settings, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, seed: int
) -> None:
    events = stream(300, seed)
    with Seenext(settings) as svc:
        for ev in events:
            svc.track_batch([ev])
    url = request.getfixturevalue("postgres_cluster").database() if settings.database_url else ""
    batched = tiny_settings(tmp_path_factory.mktemp("batched"), database_url=url)
    (batched.data_dir / "pii.key").write_bytes(settings.pii_key_path.read_bytes())
    with Seenext(batched) as svc:
        for start in range(0, len(events), 100):
            svc.track_batch(events[start : start + 100])
    assert graph(database_of(batched)) == graph(database_of(settings))


def test_a_batch_reads_the_graph_in_a_few_statements_whatever_its_size(service: Seenext) -> None:
    """Before: two reads per customer weighed (its strong identifiers, its first-seen time), ~60 per
    batch of 1,000 demo events; on PostgreSQL each one a round trip inside the writers' lock."""
    service.track_batch(stream(200, 5))  # a graph to link to
    for n, seed in ((50, 6), (600, 7)):
        batch = [
            Event(f"{seed}-{ev.event_id}", ev.identifiers, ev.channel, ev.type, ev.item_id)
            for ev in stream(n, seed)
        ]
        with service.count_statements() as sent:
            result = service.track_batch(batch)
        assert result.accepted > 0
        # the idempotency check, the identifier rows (a query per kind on SQLite), the customers weighed
        assert len(reads(sent)) <= 10, reads(sent)
