"""The benchmark's world: the demo retailer at a benchmark size, seeded into a temp data folder.

One world serves every server-side measurement: the retrain measures training on it, then the
Recommend and memory measurements serve the model trained there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.demo import generator
from models.service import Seenext
from models.settings import Settings


@dataclass(frozen=True)
class WorldFigures:
    items: int
    customers: int  # demo customers generated
    events: int  # events stored
    item_events: int  # events with an item: the interaction log the dataset is built from
    generate_seconds: float
    seed_seconds: float  # generator.seed: catalogue upsert + EventStore.track_batch in chunks of 10,000


def settings_for(data_dir: Path, **overrides: object) -> Settings:
    """The product's default settings, except what a benchmark must fix: the folder, no evaluation fit."""
    base: dict[str, object] = {"data_dir": data_dir, "eval_holdout_days": 0}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def build(
    data_dir: Path, items: int, customers: int, days: int = 400, seed: int = 42, **settings: object
) -> WorldFigures:
    """Generates the demo retailer and seeds it into `data_dir` (which must be empty); `settings` are
    overrides, e.g. `database_url` for an empty PostgreSQL database."""
    started = time.perf_counter()
    retailer = generator.generate(
        generator.DemoConfig(customers=customers, items=items, days=days, seed=seed)
    )
    generated = time.perf_counter()
    service = Seenext(settings_for(data_dir, **settings))
    try:
        counts = generator.seed(service, retailer)
        seeded = time.perf_counter()
        item_events = len(service.interaction_log())
    finally:
        service.close()
    return WorldFigures(
        items=counts["items"],
        customers=customers,
        events=counts["events"],
        item_events=item_events,
        generate_seconds=generated - started,
        seed_seconds=seeded - generated,
    )


def known_customers(service: Seenext, n: int, seed: int = 7) -> list[str]:
    """`n` customers (with a CUSTOMER_ID identifier) the serving model knows, drawn with a fixed seed."""
    model = service.serving_model
    if model is None:
        raise RuntimeError("no model is serving in the benchmark world: train first")
    known = [c for c in service.account_ids(10**9) if model.user_row(c) is not None]
    if not known:
        raise RuntimeError("the model knows none of the stored customers")
    rng = np.random.default_rng(seed)
    return [known[i] for i in rng.choice(len(known), size=min(n, len(known)), replace=False)]
