"""Next days' purchases on a real clickstream: the service against "what they looked at last".

Issue 9 point 5's target, measured in process through the `Seenext` facade's public methods only: on
the Taobao UserBehavior sample (/work/shared/data/taobao-userbehavior, views, carts, favourites and
buys of 814 users over nine days), the events before `--cut` (default 2 December 2017 00:00 China
time) are tracked as a retailer would send them (items with only a category: no title, price,
`active` or `repeatable`), the model is trained, and every customer who buys in the next
`--days` (2) gets one WEB home-page Recommend of k items. Hit rate@k: the share of those customers
with at least one of their next-days purchases among the k.

Baselines, from the same tracked events:
- `last_looked`: the items each customer carted or viewed, most recent first, not bought since
  (issue 9's baseline);
- `last_looked_fav`: the same with favourites (wish list) counted as looks;
- `popular`: the most bought items before the cut.

    .venv/bin/python -m bench.looked_at_eval [--k 10] [--fav WISHLIST|VIEW] [--epochs 30]

Intervals are a seeded bootstrap over customers (95 %), paired for the differences. About 40 s.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import gzip
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models.domain import Event, Identifier, Item
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from models.settings import Settings

DATA = Path("/work/shared/data/taobao-userbehavior/userbehavior_first814users.csv.gz")
CHINA = dt.timezone(dt.timedelta(hours=8))
CUT = dt.datetime(2017, 12, 2, tzinfo=CHINA).timestamp()
CHUNK = 10_000  # the event store's batch limit
LOOKS = {"pv", "cart"}


def read(path: Path) -> list[tuple[str, str, str, str, int]]:
    """(user, item, category, behaviour: pv, cart, fav or buy, unix seconds), oldest first."""
    with gzip.open(path, "rt") as f:
        rows = []
        for line in f:
            user, item, category, behaviour, ts = line.strip().split(",")
            rows.append((user, item, category, behaviour, int(ts)))
    rows.sort(key=lambda r: r[4])
    return rows


def to_events(rows: Sequence[tuple[str, str, str, str, int]], fav: str) -> list[Event]:
    kinds = {"pv": "VIEW", "cart": "ADD_TO_CART", "fav": fav, "buy": "PURCHASE"}
    return [
        Event(
            f"tb-{n}",
            (Identifier("CUSTOMER_ID", user),),
            "WEB",
            kinds[behaviour],
            item,
            occurred_at=float(ts),
        )
        for n, (user, item, _c, behaviour, ts) in enumerate(rows)
    ]


def last_looked(rows: Sequence[tuple[str, str, str, str, int]], looks: set[str]) -> dict[str, list[str]]:
    """user -> items looked at (behaviours `looks`), most recent first, not bought after the last look."""
    last: dict[str, dict[str, int]] = collections.defaultdict(dict)
    bought: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for user, item, _c, behaviour, ts in rows:
        if behaviour in looks:
            last[user][item] = ts
        elif behaviour == "buy":
            bought[user][item] = ts
    return {
        user: [i for i, t in sorted(items.items(), key=lambda x: -x[1]) if bought[user].get(i, -1) < t]
        for user, items in last.items()
    }


def hits(truth: dict[str, set[str]], ranked: Callable[[str], list[str]], k: int) -> np.ndarray:
    """1.0 for each customer (in id order) with a next-days purchase among their first k items."""
    return np.array([bool(set(ranked(u)[:k]) & items) for u, items in sorted(truth.items())], dtype=float)


def interval(values: np.ndarray, draws: int = 1000) -> tuple[float, float, float]:
    """(mean, low, high): a 95 % bootstrap interval over customers, seeded; paired when `values` is a
    per-customer difference."""
    rng = np.random.default_rng(42)
    means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--days", type=float, default=2.0, help="days after the cut whose purchases are predicted")
    p.add_argument(
        "--fav", default="WISHLIST", help="event type favourites are sent as (VIEW before issue 9)"
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--placement", default="home")
    args = p.parse_args(argv)

    rows = read(args.data)
    train = [r for r in rows if r[4] < CUT]
    end = CUT + args.days * 86_400
    truth: dict[str, set[str]] = collections.defaultdict(set)
    for user, item, _c, behaviour, ts in rows:
        if behaviour == "buy" and CUT <= ts < end:
            truth[user].add(item)
    category = {item: c for _u, item, c, _b, _t in train}

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # one training thread: LightFM's parallel updates race, and the same run should give the
        # same table (with two, the service's figure moves by a customer or two between runs)
        settings = Settings(
            data_dir=Path(tmp), epochs=args.epochs, train_threads=1, auth=False, eval_holdout_days=0
        )
        with Seenext(settings) as service:
            items = [Item(i, category=c) for i, c in category.items()]
            for start in range(0, len(items), CHUNK):
                service.upsert_items(items[start : start + CHUNK])
            events = to_events(train, args.fav)
            for start in range(0, len(events), CHUNK):
                assert not service.track_batch(events[start : start + CHUNK]).rejected
            service.train()
            answers: dict[str, list[str]] = {}
            strategies: collections.Counter[str] = collections.Counter()
            for user in sorted(truth):
                rec = service.recommend(
                    RecommendQuery(
                        channel="WEB", who=Identifier("CUSTOMER_ID", user), placement=args.placement, k=args.k
                    )
                )
                answers[user] = [r.item_id for r in rec.items]
                strategies[rec.strategy] += 1
    seconds = time.perf_counter() - started

    looked = last_looked(train, LOOKS)
    looked_fav = last_looked(train, LOOKS | {"fav"})
    sales = collections.Counter(item for _u, item, _c, b, _t in train if b == "buy")
    top = [i for i, _ in sales.most_common(args.k)]
    table = {
        f"service (WEB {args.placement})": hits(truth, lambda u: answers.get(u, []), args.k),
        "last_looked": hits(truth, lambda u: looked.get(u, []), args.k),
        "last_looked_fav": hits(truth, lambda u: looked_fav.get(u, []), args.k),
        "popular": hits(truth, lambda u: top, args.k),
    }
    ours = table[f"service (WEB {args.placement})"]
    print(
        f"{args.data.name}: {len(train)} events before "
        f"{dt.datetime.fromtimestamp(CUT, CHINA):%Y-%m-%d %H:%M} "
        f"(UTC+8), {len(truth)} customers buying in the next {args.days:g} days, k={args.k}, "
        f"favourites sent as {args.fav}, {seconds:.0f} s"
    )
    print(f"{'ranking':<22} hit rate@{args.k}   95 % interval")
    for name, per_customer in table.items():
        mean, low, high = interval(per_customer)
        print(f"{name:<22} {mean:.4f}         {low:.4f}-{high:.4f}")
    for name in ("last_looked", "last_looked_fav"):
        mean, low, high = interval(ours - table[name])
        print(f"{'service - ' + name:<26} {mean:+.4f}  {low:+.4f} to {high:+.4f} (paired)")
    print("strategies:", dict(strategies.most_common()))


if __name__ == "__main__":
    main(sys.argv[1:])
