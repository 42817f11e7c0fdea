"""Issue 9's demo target, through the front door: no recent buyer of a durable gets a substitute.

The demo retailer is seeded and trained as `make run` does it, then served by a real gRPC server on
a loopback port. Every customer with an account who bought a durable — an item of a category other
items are accessories of (the demo's phones, laptops, coffee machines) — in the last 30 days is asked
for through the stubs, by their CUSTOMER_ID, in every channel — WEB home (k=8), EMAIL newsletter
(k=6, customers with marketing consent), POS checkout with nothing in the basket (k=4), CALL_CENTER
profile (k=5), ADS (k=6) — and every list holding another item of the bought item's category counts
as a substitute offered.

    .venv/bin/python -m bench.demo_substitutes [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc

from models.domain import DAY
from models.service import Seenext
from models.settings import Settings
from protos.seenext.v1 import common_pb2, recommendation_pb2, recommendation_pb2_grpc

CHANNELS = (
    ("WEB", common_pb2.CHANNEL_WEB, "home", 8),
    ("EMAIL", common_pb2.CHANNEL_EMAIL, "newsletter", 6),
    ("POS", common_pb2.CHANNEL_POS, "checkout", 4),
    ("CALL_CENTER", common_pb2.CHANNEL_CALL_CENTER, "profile", 5),
    ("ADS", common_pb2.CHANNEL_ADS, "ads", 6),
)


def recent_durable_buyers(service: Seenext, days: float) -> dict[str, set[str]]:
    """account -> the durable categories they bought in (and kept) in the last `days` of the history."""
    items = {it.item_id: it for it in service.all_items()}
    durable = {items[main].category for it in items.values() for main in it.accessory_for if main in items}
    accounts = set(service.account_ids(10**9))
    log = service.interaction_log()
    newest = float(log.occurred_at.max())
    out: dict[str, set[str]] = {}
    rows = zip(log.customer_id, log.item_id, log.type, log.occurred_at, strict=True)
    for customer, item_id, etype, at in rows:
        item = items.get(item_id)
        recent = etype == "PURCHASE" and at >= newest - days * DAY
        if recent and item is not None and item.category in durable and customer in accounts:
            out.setdefault(str(customer), set()).add(item_id)
    # Kept, not returned: a customer who sent the phone back may well want another one.
    kept = {c: {i for i, _ in service.purchased_items(c)} & bought for c, bought in out.items()}
    return {c: {items[i].category for i in bought} for c, bought in kept.items() if bought}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="a seeded demo folder to reuse")
    parser.add_argument("--days", type=float, default=30.0, help="how recent a purchase counts")
    args = parser.parse_args()
    from server.app import create_server
    from server.cli.main import prepare_demo

    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="seenext-demo-subst-"))
    settings = Settings(data_dir=folder, demo=True, auth=False, port=0, sync_full=False)
    started = time.perf_counter()
    prepare_demo(settings)
    running = create_server(settings)
    try:
        service: Seenext = running.service  # type: ignore[attr-defined]
        categories_of = {it.item_id: it.category for it in service.all_items()}
        buyers = recent_durable_buyers(service, args.days)
        consented = service.with_consent(list(buyers), "EMAIL", "marketing")
        print(
            f"demo: {len(categories_of):,} items, {service.count_events():,} events; "
            f"{len(buyers):,} customers with an account bought a durable in the last {args.days:g} days "
            f"({len(consented):,} of them with e-mail consent); "
            f"set up in {time.perf_counter() - started:.0f}s"
        )
        asked: Counter[str] = Counter()
        offered: Counter[str] = Counter()
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:  # type: ignore[attr-defined]
            stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
            for customer, bought in sorted(buyers.items()):
                who = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer)
                for name, channel_value, placement, k in CHANNELS:
                    if name == "EMAIL" and customer not in consented:
                        continue
                    reply = stub.Recommend(
                        recommendation_pb2.RecommendRequest(
                            who=who, channel=channel_value, placement=placement, k=k
                        ),
                        timeout=5,
                    )
                    asked[name] += 1
                    if any(categories_of.get(i.item_id) in bought for i in reply.items):
                        offered[name] += 1
            first = stub.Recommend(
                recommendation_pb2.RecommendRequest(
                    who=common_pb2.Identifier(
                        kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value="cust-00001"
                    ),
                    channel=common_pb2.CHANNEL_WEB,
                    placement="home",
                    k=5,
                ),
                timeout=5,
            )
        print(f"{'channel':<12}{'lists':>7}{'with a substitute':>20}")
        for name, *_ in CHANNELS:
            print(f"{name:<12}{asked[name]:>7}{offered[name]:>20}")
        print(
            "cust-00001 home page, first five:", ", ".join(f"{i.item_id} ({i.category})" for i in first.items)
        )
        return 1 if sum(offered.values()) else 0
    finally:
        running.stop(grace=1.0)  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(main())
