"""Issue 9 point 7 on the demo retailer: where brand-new items land.

The demo retailer is seeded and trained as `make run` does it (through the facade), then ten items
arrive after the training: five with a title and a category only (no price, no stock — what a
merchandising system sends first) and five priced and stocked in every store, in the five categories
customers buy most. Then every customer account's home page (WEB, k=10) and every consented
customer's 4-item newsletter (EMAIL) is asked for, and the table says where the new items came.

    .venv/bin/python -m bench.new_items_demo [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from models.domain import Identifier, Item
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from models.settings import Settings


def arrivals(service: Seenext) -> tuple[list[Item], list[Item]]:
    items = service.all_items()
    stores = sorted({s for it in items for s in it.stock})
    by_category = Counter(it.category for it in items)
    top = [c for c, _ in by_category.most_common(5)]
    bare = [Item(f"new-bare-{n}", f"Brand-new {c} {n}", c) for n, c in enumerate(top)]
    priced = [
        Item(f"new-priced-{n}", f"New {c} {n}", c, price=49.0, stock=dict.fromkeys(stores, 10))
        for n, c in enumerate(top)
    ]
    return bare, priced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="a folder to seed the demo into")
    args = parser.parse_args()
    folder = args.data_dir or Path(tempfile.mkdtemp(prefix="seenext-new-items-"))
    settings = Settings.from_env(data_dir=folder, sync_full=False)
    from server.cli.main import prepare_demo

    started = time.perf_counter()
    prepare_demo(settings)
    with Seenext(settings) as service:
        bare, priced = arrivals(service)
        service.upsert_items([*bare, *priced])
        bare_ids, priced_ids = {i.item_id for i in bare}, {i.item_id for i in priced}
        accounts = service.account_ids(10**9)
        home = Counter[str]()
        for customer in accounts:
            rec = service.recommend(
                RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", customer), placement="home", k=10)
            )
            ids = [r.item_id for r in rec.items]
            home["pages"] += 1
            home["with a bare new item"] += bool(bare_ids & set(ids))
            home["with a priced new item"] += bool(priced_ids & set(ids))
            home["a new item first"] += bool(ids and ids[0] in bare_ids | priced_ids)
            home["new items above the last place"] += len((bare_ids | priced_ids) & set(ids[:-1]))
            home["new_in reasons"] += sum(r.reasons[0].code == "new_in" for r in rec.items)
        mail = Counter[str]()
        for rec in service.recommend_batch(
            [Identifier("CUSTOMER_ID", c) for c in accounts], "EMAIL", "newsletter", k=4
        ):
            if not rec.items:
                continue
            sent = {r.item_id for r in rec.items}
            mail["mails"] += 1
            mail["with a bare new item"] += bool(bare_ids & sent)
            mail["with a new item"] += bool((bare_ids | priced_ids) & sent)
            mail["with two or more new items"] += len((bare_ids | priced_ids) & sent) >= 2
    print(f"demo seeded, trained and asked in {time.perf_counter() - started:.0f}s ({folder})")
    for name, counts in (("WEB home, k=10", home), ("EMAIL newsletter, k=4", mail)):
        print(name)
        for key, value in counts.items():
            print(f"  {key:32} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
