"""What merchandising rules and diversity cost a Recommend, in process (issue 12 target: ≤ 0.1 ms with
five rules in force on a 20k-item catalogue).

Three `Seenext` instances on one data folder (see `measure`): no rules and diversity off ("before"),
five rules and the default diversity ("after"), and the five plus a sixth rule; every query is timed
on each in turn, and the cost is the median of the paired differences. The three run twice over: once
computing every customer's product over the items on each call (a customer's first request: the
figure checked against the target), once keeping it for their next request (models/serving/
score_cache.py: reading the 3.9 MB item matrix empties the core's L2 cache, and every step after it
runs slower — the rules' steps among them). The five rules read the item
only (exclude a category, boost a brand, bury the dearest, pin one item, reserve a fifth of the list
for items on offer); a sixth rule that reads the request's context ("the brand of something they
bought") is timed apart, because it is evaluated per candidate on every request. Each call's CPU time
on its own thread is recorded beside its wall time: on a machine shared with other work the paired CPU
difference moves far less than the wall one.

The calls run as `seenext serve` runs them (`serving_runtime`): BLAS on the calling thread
(server/runtime.py) and the serving process's collector settings (server/memory.py: what the process
holds at start frozen, a young generation of 20,000 objects). With Python's default collector a young
pass ran every one or two Recommends here, and the arranged list's extra objects drew more of them, so
the default settings charged the rules for collections a serving process does not make.

    .venv/bin/python -m bench.merchandising [--items 20000] [--customers 2000] [--calls 1000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from threadpoolctl import threadpool_limits

from bench.conditions import Conditions
from bench.recommend_inprocess import cycle, known_customers, seed, settings_for
from bench.world import settings_for as world_settings
from models.demo import generator
from models.domain import Identifier
from models.merchandising.rules import RuleSpec
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from server import memory


@dataclass(frozen=True)
class MerchandisingFigures:
    items: int
    calls: int
    before_p50_us: float  # no rules, diversity off
    after_p50_us: float  # five item-only rules and the default diversity
    cost_us: float  # median of (after - before), paired per query
    context_rule_cost_us: float  # a sixth rule that reads `context`, beyond the five
    matches_seconds: float  # creating the five rules: each evaluates its condition over the catalogue
    cpu_cost_us: float = 0.0  # the same median of paired differences, in the calling thread's CPU time
    context_rule_cpu_cost_us: float = 0.0
    # The same pairs on services that keep each customer's product over every item for their next
    # request (models/serving/score_cache.py; the figures above compute it on every call, as a
    # customer's first request does): a page's second placement, the till's next scan.
    kept_before_p50_us: float = 0.0
    kept_after_p50_us: float = 0.0
    kept_cost_us: float = 0.0
    kept_cpu_cost_us: float = 0.0


def five_rules(service: Seenext) -> list[RuleSpec]:
    """Rules a merchandiser would write, sized to touch the catalogue: its commonest category and brand,
    one item pinned, items on offer promoted."""
    items = service.all_items()
    category = Counter(i.category for i in items).most_common(1)[0][0]
    brand = Counter(i.brand for i in items if i.brand).most_common(2)[-1][0]
    return [
        RuleSpec("no " + category, f'item.category == "{category}"', "exclude"),
        RuleSpec("push " + brand, f'item.brand == "{brand}"', "boost", weight=3.0),
        RuleSpec("dear last", "item.price > 500.0", "bury", weight=4.0),
        RuleSpec("pin one", f'item.id == "{items[len(items) // 2].item_id}"', "pin", position=3),
        RuleSpec("offers", "item.on_offer", "reserve", share=0.2),
    ]


@contextmanager
def serving_runtime() -> Iterator[None]:
    """The process settings `seenext serve` takes traffic with (server/cli/main.py: one BLAS thread,
    `memory.tune_collector` after the service is built), undone afterwards: `make bench` runs its
    other measurements in this process."""
    threshold = gc.get_threshold()
    with threadpool_limits(limits=1, user_api="blas"):
        memory.tune_collector()
        try:
            yield
        finally:
            gc.unfreeze()
            gc.set_threshold(*threshold)


CONTEXT_RULE = RuleSpec("their brands", "item.brand in context.owned_brands", "boost", weight=2.0)


def measure(
    data_dir: Path, customers: Sequence[str], k: int = 10, calls: int = 1_000
) -> MerchandisingFigures:
    """Services on one data folder, each holding its own rules in force (a service reloads on its own
    change; none runs the background watcher here): none and no diversity, the five rules and the
    default diversity, and the five plus a context rule — each twice, once computing every customer's
    product over the items on every call (SEENEXT_SCORE_CACHE_MB=0: a customer's first request) and once
    keeping it (the default: their next one). Each query is timed on the six in turn (order rotated), so
    the machine's load hits them alike; a cost is the median of the paired differences."""
    # Exploration off in all: every item of a freshly seeded world is "new", and walking that list
    # costs milliseconds that vary from call to call, hiding the fraction of one measured here.
    quiet = {"retrain_every_hours": 0, "exploration_share": 0.0}

    def pair(**overrides: object) -> tuple[Seenext, Seenext]:
        return (
            Seenext(world_settings(data_dir, score_cache_mb=0, **quiet, **overrides)),
            Seenext(world_settings(data_dir, **quiet, **overrides)),
        )

    plain = pair(diversity_near_duplicates=0)
    ruled = pair()
    context = pair()
    services = (plain[0], ruled[0], context[0], plain[1], ruled[1], context[1])
    try:
        matches_seconds = _put_rules(plain, ruled, context)
        for service in services:
            service.warm()
        queries = [
            RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", c), placement="home", k=k)
            for c in customers
        ]
        for q in queries:  # warm-up (the keeping services keep every customer's product from here)
            for service in services:
                service.recommend(q)
        gc.collect()
        timings, cpu = _timed(services, queries, calls)
        return MerchandisingFigures(
            len(ruled[0].all_items()),
            calls,
            statistics.median(timings[0]),
            statistics.median(timings[1]),
            _paired(timings[0], timings[1]),
            _paired(timings[1], timings[2]),
            matches_seconds,
            _paired(cpu[0], cpu[1]),
            _paired(cpu[1], cpu[2]),
            statistics.median(timings[3]),
            statistics.median(timings[4]),
            _paired(timings[3], timings[4]),
            _paired(cpu[3], cpu[4]),
        )
    finally:
        for service in services:
            service.close()


def _put_rules(
    plain: tuple[Seenext, Seenext], ruled: tuple[Seenext, Seenext], context: tuple[Seenext, Seenext]
) -> float:
    """The six rules created (through `context[0]`) and each pair's share of them in force: none, the
    five, all six. The seconds creating the five took."""
    author = context[0]
    for rule in author.merchandising_rules():  # a reused folder: start from no rules
        author.delete_rule(rule.rule_id, "bench")
    specs = five_rules(author)
    started = time.perf_counter()
    # each change computes the new rules' item-only matches over the catalogue before it returns
    ids = [author.create_rule(spec, "bench").rule_id for spec in specs]
    matches_seconds = time.perf_counter() - started
    extra = author.create_rule(CONTEXT_RULE, "bench").rule_id
    for service in context:  # context: the six
        service.reload_rules()
    ruled[0].set_rule_enabled(extra, False, "bench")
    for service in ruled:  # ruled: the five
        service.reload_rules()
    for rule_id in ids:
        plain[0].set_rule_enabled(rule_id, False, "bench")
    for service in plain:  # plain: none
        service.reload_rules()
    return matches_seconds


def _timed(
    services: Sequence[Seenext], queries: list[RecommendQuery], calls: int
) -> tuple[list[list[float]], list[list[float]]]:
    """Each query on every service in turn, the order rotated: (wall us, thread CPU us) per service."""
    timings: list[list[float]] = [[] for _ in services]
    cpu: list[list[float]] = [[] for _ in services]
    orders = [[(start + j) % len(services) for j in range(len(services))] for start in range(len(services))]
    with serving_runtime():
        for n, q in enumerate(cycle(queries, calls)):
            for i in orders[n % len(orders)]:
                started_cpu = time.thread_time_ns()
                started_ns = time.perf_counter_ns()
                services[i].recommend(q)
                timings[i].append((time.perf_counter_ns() - started_ns) / 1000.0)
                cpu[i].append((time.thread_time_ns() - started_cpu) / 1000.0)
    return timings, cpu


def _paired(before: Sequence[float], after: Sequence[float]) -> float:
    return statistics.median(a - b for a, b in zip(after, before, strict=True))


def lines(f: MerchandisingFigures) -> list[str]:
    return [
        f"Recommend (WEB home, known customers, {f.items:,} items),"
        f" {f.calls:,} calls on each service, interleaved:",
        f"  no rules, no diversity          p50 {f.before_p50_us:8.0f} us",
        f"  five rules + default diversity  p50 {f.after_p50_us:8.0f} us",
        f"  cost of rules and diversity     {f.cost_us / 1000:8.3f} ms  (median of paired differences;"
        " target <= 0.1 ms)",
        f"  a sixth rule reading context    {f.context_rule_cost_us / 1000:8.3f} ms more",
        f"  the same two in CPU time        {f.cpu_cost_us / 1000:8.3f} ms,"
        f" {f.context_rule_cpu_cost_us / 1000:.3f} ms more  (the calling thread's, paired)",
        f"  creating the five rules (each evaluates its condition over the catalogue):"
        f" {f.matches_seconds:.2f} s",
        "Above, each call computes the customer's product over every item (their first request);",
        "below, it is kept from their previous request (a page's next placement, the till's next scan;",
        "SEENEXT_SCORE_CACHE_MB):",
        f"  no rules, no diversity          p50 {f.kept_before_p50_us:8.0f} us",
        f"  five rules + default diversity  p50 {f.kept_after_p50_us:8.0f} us",
        f"  cost of rules and diversity     {f.kept_cost_us / 1000:8.3f} ms"
        f"  ({f.kept_cpu_cost_us / 1000:.3f} ms in CPU time)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args(argv)
    conditions = Conditions.now()
    with tempfile.TemporaryDirectory(prefix="seenext-merch-") as tmp:
        data_dir = Path(tmp)
        retailer = generator.generate(
            generator.DemoConfig(customers=args.customers, items=args.items, days=args.days, seed=42)
        )
        with Seenext(settings_for(data_dir, 3, 48)) as service:
            seed(service, retailer)
            service.train()
            customers = known_customers(service, retailer, 300)
        figures = measure(data_dir, customers, args.k, args.calls)
    conditions.finish()
    for line in conditions.lines():
        print(line)
    print("\n".join(lines(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
