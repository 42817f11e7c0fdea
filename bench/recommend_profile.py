"""Where one Recommend's time goes, in process: per-stage wall time, then a cProfile of the same calls.

The world and the queries are bench/recommend_inprocess.py's (demo retailer, 20k items, known customers
by CUSTOMER_ID on WEB home), served as `seenext serve` serves them: one BLAS thread (server/runtime.py)
and customer states in memory, kept fresh by the change feed (no statement per request). Each stage is
timed by wrapping the function that does it, so the stages' sum is a little over the calls' own time.

    .venv/bin/python -m bench.recommend_profile [--items 20000] [--calls 2000] [--data-dir DIR]

`--data-dir` keeps the seeded, trained world there and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench.conditions import Conditions
from bench.recommend_inprocess import known_customers, seed, settings_for
from models.demo import generator
from models.domain import Identifier
from models.service import Seenext
from models.serving import channel_rules, foldin, ranking, recommender
from models.serving.recommender import RecommendQuery

# (module or class, function name, label): the stages of `Recommender.recommend`
STAGES: tuple[tuple[Any, str, str], ...] = (
    (recommender.Recommender, "_validate", "validate the query"),
    (recommender.Recommender, "customer_state", "customer state (from memory)"),
    (channel_rules, "owned", "owned / resting items (rebuying)"),
    (recommender.Recommender, "_looked_at", "looked-at source"),
    (foldin, "known_customer_scores", "scores: 20k x d product, fold-in, repurchase blend"),
    (ranking, "take", "ranking: sources, filters, exploration (take)"),
    (recommender.Recommender, "decorate", "decorate the k items"),
)
# inside `take` (part of its time): the lazy sorts (generators) and the filters' predicates
WITHIN_TAKE: tuple[tuple[Any, str, str], ...] = (
    (ranking, "descending", "take: the lazy partial sorts (personalised, new items)"),
    (ranking, "_complements_of", "take: complements of what they own"),
)
PREDICATES: tuple[tuple[Any, str, str], ...] = (
    (channel_rules, "base_filter", "take: base filter calls (owned, active, priced)"),
    (channel_rules, "channel_filter", "take: channel filter calls (stock, caller's filter)"),
)


def _timed(f: Callable[..., Any], label: str, spent: dict[str, int]) -> Callable[..., Any]:
    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return f(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0) + time.perf_counter_ns() - started

    return run


def _timed_iter(f: Callable[..., Any], label: str, spent: dict[str, int]) -> Callable[..., Any]:
    """`f` returns an iterator: the time spent producing its items."""

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        it = iter(f(*args, **kwargs))
        while True:
            started = time.perf_counter_ns()
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                spent[label] = spent.get(label, 0) + time.perf_counter_ns() - started
            yield item

    return run


def _timed_predicate(f: Callable[..., Any], label: str, spent: dict[str, int]) -> Callable[..., Any]:
    """`f` returns a predicate: the time spent in its calls."""

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        return _timed(f(*args, **kwargs), label, spent)

    return run


def stages(service: Seenext, queries: list[RecommendQuery]) -> tuple[float, dict[str, float]]:
    """(mean us per call, label -> mean us per call) over `queries`, the stages wrapped meanwhile."""
    spent: dict[str, int] = {}
    wrapped = [(STAGES, _timed), (WITHIN_TAKE, _timed_iter), (PREDICATES, _timed_predicate)]
    originals = [(owner, name, getattr(owner, name)) for table, _ in wrapped for owner, name, _ in table]
    for table, wrap in wrapped:
        for owner, name, label in table:
            setattr(owner, name, wrap(getattr(owner, name), label, spent))
    try:
        gc.collect()
        started = time.perf_counter_ns()
        for q in queries:
            service.recommend(q)
        total = (time.perf_counter_ns() - started) / 1000 / len(queries)
    finally:
        for owner, name, f in originals:
            setattr(owner, name, f)
    return total, {k: v / 1000 / len(queries) for k, v in spent.items()}


def profile(service: Seenext, queries: list[RecommendQuery], rows: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for q in queries:
        service.recommend(q)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(rows)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--rows", type=int, default=30, help="cProfile rows printed")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep (and reuse) the world here")
    args = parser.parse_args(argv)
    threadpool_limits(limits=1, user_api="blas")  # as the server runs (server/runtime.py)
    conditions = Conditions.now()
    with tempfile.TemporaryDirectory(prefix="seenext-profile-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        fresh = not (data_dir / "models" / "CURRENT").exists()
        retailer = generator.generate(
            generator.DemoConfig(customers=args.customers, items=args.items, days=120, seed=42)
        )
        with Seenext(settings_for(data_dir, epochs=3, components=48)) as service:
            if fresh:
                seed(service, retailer)
                service.train()
            service.warm()
            service.follow_changes()  # customer states in memory, as `seenext serve` does
            customers = known_customers(service, retailer, 500)
            queries = [
                RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", c), placement="home", k=10)
                for c in customers
            ]
            calls = [queries[i % len(queries)] for i in range(args.calls)]
            for q in queries:  # warm-up: every customer's state in memory
                service.recommend(q)
            total, by_stage = stages(service, calls)
            walls = []
            for q in calls:
                started = time.perf_counter_ns()
                service.recommend(q)
                walls.append((time.perf_counter_ns() - started) / 1000)
            text = profile(service, calls, args.rows)
    conditions.finish()
    print(f"world: {args.items} items, {args.customers} customers; {args.calls} calls, WEB home, k=10")
    for line in conditions.lines():
        print(line)
    print(f"\nunwrapped: p50 {np.percentile(walls, 50):.0f} us, mean {np.mean(walls):.0f} us per call")
    print(f"wrapped:   mean {total:.0f} us per call\n")
    print("| stage | us per call | share |\n| --- | --- | --- |")
    for label, us in sorted(by_stage.items(), key=lambda x: -x[1]):
        print(f"| {label} | {us:.0f} | {us / total:.0%} |")
    rest = total - sum(us for label, us in by_stage.items() if not label.startswith("take:"))
    print(f"| the rest (recommend's own body, served log, ids) | {rest:.0f} | {rest / total:.0%} |")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
