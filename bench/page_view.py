"""A page view through the front door: what keeping a customer's scores saves a Recommend.

A web page shows several placements, each one Recommend of the same customer (here: the home page's,
a product page's and the basket's); the till asks again at every item scanned. Between two such calls
the customer's vector is the same, so the product of it with every item (20k x 49 float32, 3.9 MB read,
and every later step of the call slower for it: docs/performance.md) can be kept
(models/serving/score_cache.py, SEENEXT_SCORE_CACHE_MB).

Two `seenext serve` processes on the same world, the cache on (the default) and off; each customer's
three calls go to one and then the other (the order alternating), one call in flight, through the
generated stubs with an API key as in production. The first round fills the cache and is not timed; in
the timed rounds every call of the first server reuses a kept product, as the second and third
placements of a page do. The figure is the paired median difference per placement.

    .venv/bin/python -m bench.page_view --data-dir DIR  (a world `bench.run --keep` left, trained)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.serving import ServerProcess
from bench.world import known_customers, settings_for
from models.service import Seenext
from protos.seenext.v1 import common_pb2, recommendation_pb2, recommendation_pb2_grpc

PLACEMENTS = ("home", "product", "cart")


@dataclass(frozen=True)
class PageViewFigures:
    customers: int
    rounds: int  # timed rounds over the customers (after one untimed round)
    kept_p50_ms: dict[str, float]  # per placement, the server keeping scores (the default)
    computed_p50_ms: dict[str, float]  # per placement, SEENEXT_SCORE_CACHE_MB=0
    saved_ms: dict[str, float]  # paired median of (computed - kept) per placement


def _requests(customer: str, item: str, k: int) -> dict[str, recommendation_pb2.RecommendRequest]:
    who = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer)
    web = common_pb2.CHANNEL_WEB
    contexts = {  # what each page shows: nothing, the item on its page, the item in the basket
        "home": recommendation_pb2.Context(),
        "product": recommendation_pb2.Context(item_ids=[item]),
        "cart": recommendation_pb2.Context(basket_item_ids=[item]),
    }
    return {
        placement: recommendation_pb2.RecommendRequest(
            who=who, channel=web, placement=placement, k=k, context=context
        )
        for placement, context in contexts.items()
    }


def measure(
    data_dir: Path, customers: list[str], items: list[str], k: int = 10, rounds: int = 2
) -> PageViewFigures:
    """`customers` (known to the model) each viewing the pages of one of `items`, `rounds` timed rounds."""
    with (
        ServerProcess(data_dir, retrain_every_hours=0) as kept,
        ServerProcess(data_dir, retrain_every_hours=0, score_cache_mb=0) as computed,
        grpc.insecure_channel(kept.target) as kept_channel,
        grpc.insecure_channel(computed.target) as computed_channel,
    ):
        servers = (
            (recommendation_pb2_grpc.RecommendationServiceStub(kept_channel), kept.metadata),
            (recommendation_pb2_grpc.RecommendationServiceStub(computed_channel), computed.metadata),
        )
        ms: list[dict[str, list[float]]] = [{p: [] for p in PLACEMENTS} for _ in servers]
        for timed in [False] + [True] * rounds:
            for n, customer in enumerate(customers):
                page = _requests(customer, items[n % len(items)], k)
                for s in ((0, 1), (1, 0))[n % 2]:
                    stub, metadata = servers[s]
                    for placement, request in page.items():
                        started = time.perf_counter()
                        stub.Recommend(request, metadata=metadata, timeout=10)
                        if timed:
                            ms[s][placement].append((time.perf_counter() - started) * 1000)
    return PageViewFigures(
        len(customers),
        rounds,
        {p: statistics.median(ms[0][p]) for p in PLACEMENTS},
        {p: statistics.median(ms[1][p]) for p in PLACEMENTS},
        {p: statistics.median(c - k for k, c in zip(ms[0][p], ms[1][p], strict=True)) for p in PLACEMENTS},
    )


def lines(f: PageViewFigures) -> list[str]:
    out = [
        f"{f.customers:,} known customers, each page's three Recommends (k=10) to both servers in turn,"
        f" {f.rounds} timed round(s) after one untimed:",
        "  placement   scores kept p50   computed p50   saved (paired median)",
    ]
    for p in PLACEMENTS:
        out.append(
            f"  {p:<10} {f.kept_p50_ms[p]:10.2f} ms {f.computed_p50_ms[p]:11.2f} ms {f.saved_ms[p]:12.2f} ms"
        )
    return out


def page_items(service: Seenext, n: int) -> list[str]:
    """Items a product page or a basket shows: the first `n` active ones of the catalogue."""
    return [i.item_id for i in service.all_items() if i.active][:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with Seenext(settings_for(args.data_dir)) as service:
        customers = known_customers(service, args.customers)
        items = page_items(service, args.customers)
    print("\n".join(lines(measure(args.data_dir, customers, items, rounds=args.rounds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
