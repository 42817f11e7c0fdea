"""`Recommender.recommend` in process, without gRPC: the time one Recommend spends in models/.

Builds the demo retailer with a 20k-item catalogue in a temp folder (small training: few epochs),
warms the serving caches, then times Recommend(k) for known customers (by CUSTOMER_ID) in two
channels: WEB home (the common page) and EMAIL newsletter (consent and recently mailed items count).
Only the facade's public methods are used, so the same script measures older commits too.

    .venv/bin/python -m bench.recommend_inprocess [--items 20000] [--customers 2000] [--calls 2000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.conditions import Conditions
from models.demo import generator
from models.domain import Identifier
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from models.settings import Settings

CHUNK = 10_000  # the catalogue's and the event store's batch limit


def settings_for(data_dir: Path, epochs: int, components: int) -> Settings:
    return Settings(
        data_dir=data_dir,
        eval_holdout_days=0,
        epochs=epochs,
        components=components,
        auth=False,
        retrain_every_hours=0,
    )


def seed(service: Seenext, retailer: generator.DemoRetailer) -> int:
    """Catalogue and events through the facade; e-mail consent for the customers who opted in."""
    for start in range(0, len(retailer.items), CHUNK):
        service.upsert_items(retailer.items[start : start + CHUNK])
    events = 0
    for start in range(0, len(retailer.events), CHUNK):
        events += service.track_batch(retailer.events[start : start + CHUNK]).accepted
    for c in retailer.customers:
        if c.email_opt_in:
            service.set_consent(Identifier("CUSTOMER_ID", c.customer_id), "EMAIL", "marketing", True)
    return events


def known_customers(service: Seenext, retailer: generator.DemoRetailer, n: int) -> list[str]:
    """Up to `n` demo customers the serving model has a vector for, drawn with a fixed seed."""
    model = service.serving_model
    assert model is not None, "no model is serving: train first"
    known = [c.customer_id for c in retailer.customers if model.user_row(c.customer_id) is not None]
    rng = np.random.default_rng(7)
    return [known[i] for i in rng.choice(len(known), size=min(n, len(known)), replace=False)]


def cycle(queries: list[RecommendQuery], n: int) -> list[RecommendQuery]:
    """`n` queries, going round the list."""
    return [queries[i % len(queries)] for i in range(n)]


def time_calls(service: Seenext, queries: Sequence[RecommendQuery], warmup: int) -> list[float]:
    """Microseconds per call, after `warmup` untimed calls (garbage collected first, as a server idles)."""
    for q in queries[:warmup]:
        service.recommend(q)
    gc.collect()
    out = []
    for q in queries:
        started = time.perf_counter_ns()
        service.recommend(q)
        out.append((time.perf_counter_ns() - started) / 1000.0)
    return out


def summary(label: str, us: list[float]) -> str:
    arr = np.asarray(us)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return (
        f"{label:<22} calls {len(us):>5}  p50 {p50:8.0f} us  p95 {p95:8.0f} us  "
        f"p99 {p99:8.0f} us  mean {statistics.fmean(us):8.0f} us"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--components", type=int, default=48)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, default=None, help="reuse a seeded folder")
    args = parser.parse_args(argv)

    conditions = Conditions.now()
    with tempfile.TemporaryDirectory(prefix="seenext-inprocess-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        retailer = generator.generate(
            generator.DemoConfig(customers=args.customers, items=args.items, days=args.days, seed=42)
        )
        service = Seenext(settings_for(data_dir, args.epochs, args.components))
        try:
            started = time.perf_counter()
            events = seed(service, retailer)
            seeded = time.perf_counter()
            service.train()
            trained = time.perf_counter()
            service.warm()
            customers = known_customers(service, retailer, 500)
            opted_in = {c.customer_id for c in retailer.customers if c.email_opt_in}
            mailable = [c for c in customers if c in opted_in] or customers
            web = [
                RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", c), placement="home", k=args.k)
                for c in customers
            ]
            mail = [
                RecommendQuery(
                    channel="EMAIL", who=Identifier("CUSTOMER_ID", c), placement="newsletter", k=args.k
                )
                for c in mailable
            ]
            web_us = time_calls(service, cycle(web, args.calls), warmup=len(web))
            mail_us = time_calls(service, cycle(mail, args.calls), warmup=len(mail))
            anon_us = time_calls(
                service, [RecommendQuery(channel="WEB", placement="home", k=args.k)] * 500, warmup=50
            )
        finally:
            service.close()
    conditions.finish()
    print(
        f"world: {args.items} items, {args.customers} customers, {args.days} days, {events} events "
        f"(seeded in {seeded - started:.0f} s); LightFM {args.components} components, {args.epochs} "
        f"epochs (trained in {trained - seeded:.0f} s); {len(customers)} known customers sampled, k={args.k}"
    )
    for line in conditions.lines():
        print(line)
    print(summary("WEB home (known)", web_us))
    print(summary("EMAIL newsletter", mail_us))
    print(summary("WEB home (anonymous)", anon_us))
    return 0


if __name__ == "__main__":
    sys.exit(main())
