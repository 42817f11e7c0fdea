"""The full service evaluated as a caller sees it, and the run that puts every method in one report.

The pipeline is not re-implemented: the train events are tracked into a fresh service (its own
SQLite file in a temporary folder) through `track_batch`, the cut-off catalogue and customer
attributes are upserted, `Seenext.train()` builds and fits the model, and every evaluated customer
is asked for through `Seenext.recommend()` — the dataset builder, trainer, ranking, fold-in,
repurchase blend, exclusions and fallbacks of the real path.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from models.domain import DAY, Event, Identifier, Item
from models.evaluation import baselines
from models.evaluation.methods import DESCRIPTIONS, METHODS
from models.evaluation.protocol import MethodResult, Ranker, Report, Split, bootstrap, evaluate_method
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from models.settings import Settings
from models.validation import MAX_BATCH

log = logging.getLogger(__name__)


def _events(train: pd.DataFrame) -> Iterator[Event]:
    for r in train.itertuples(index=False):
        yield Event(
            event_id=r.event_id,
            identifiers=(Identifier("CUSTOMER_ID", r.customer_id),),
            channel=r.channel,
            type=r.type,
            item_id=r.item_id,
            quantity=int(r.quantity or 1),
            price=float(r.price or 0.0),
            store_id=r.store_id or "",
            order_id=r.order_id or "",
            recommendation_id=r.recommendation_id or "",
            occurred_at=float(r.occurred_at),
            attributes=json.loads(r.attributes) if r.attributes else {},
        )


@contextmanager
def pipeline_ranker(
    split: Split,
    catalog: Mapping[str, Item],
    attributes: Mapping[str, Mapping[str, str]],
    settings: Settings,
    k: int,
    channel: str = "WEB",
    placement: str = "home",
    stale_days: float = 0.0,
) -> Iterator[Ranker]:
    """A fresh service holding only the train part, trained, answering Recommend per customer.

    With `stale_days`, the model is trained on the train part minus its last `stale_days`, and those
    events are tracked after training: what fold-in makes of events newer than the model.
    """
    with tempfile.TemporaryDirectory(prefix="seenext-eval-") as tmp:
        svc = Seenext(
            dataclasses.replace(
                settings,
                data_dir=Path(tmp),
                sync_full=False,
                eval_holdout_days=0,
                holdout=0.0,
                retrain_every_hours=0.0,
            )
        )
        try:
            items = [catalog[i] for i in split.candidates if i in catalog]
            for start in range(0, len(items), MAX_BATCH):
                svc.upsert_items(items[start : start + MAX_BATCH])
            customers = set(split.train["customer_id"])
            rows = [(Identifier("CUSTOMER_ID", c), a) for c, a in attributes.items() if c in customers and a]
            for start in range(0, len(rows), MAX_BATCH):
                svc.upsert_customer_attributes(rows[start : start + MAX_BATCH])
            until = split.reference_time - stale_days * DAY if stale_days > 0 else np.inf
            older = split.train["occurred_at"].to_numpy() <= until
            if not older.any():
                raise ValueError(f"--stale-days {stale_days:g} leaves no train event older than the model")
            _track(svc, split.train[older])
            svc.train()
            _track(svc, split.train[~older])  # newer than the model: only fold-in can use them

            def rank(customer: str) -> list[str]:
                rec = svc.recommend(
                    RecommendQuery(
                        channel=channel, who=Identifier("CUSTOMER_ID", customer), k=k, placement=placement
                    )
                )
                return [r.item_id for r in rec.items]

            yield rank
        finally:
            svc.close()


def _track(svc: Seenext, events: pd.DataFrame) -> None:
    batch: list[Event] = []
    for ev in _events(events):
        batch.append(ev)
        if len(batch) == MAX_BATCH:
            svc.track_batch(batch)
            batch = []
    if batch:
        svc.track_batch(batch)


def run(
    dataset_name: str,
    split: Split,
    catalog: Mapping[str, Item],
    attributes: Mapping[str, Mapping[str, str]],
    settings: Settings,
    k: int,
    *,
    recent_days: float = 7.0,
    methods: tuple[str, ...] = METHODS,
    channel: str = "WEB",
    placement: str = "home",
    resamples: int = 1000,
    stale_days: float = 0.0,
    progress: Callable[[str], None] = lambda name: None,
) -> Report:
    """Every requested method on the split, bootstrap intervals, and the pipeline's paired differences."""
    results: list[MethodResult] = []
    for name in methods:
        progress(name)
        started = time.perf_counter()
        description = DESCRIPTIONS[name].format(recent_days=recent_days, stale=stale_days)
        if name.startswith("pipeline"):
            description += f" (Recommend, channel {channel}, placement {placement})"
            stale = stale_days if name != "pipeline" else 0.0
            tuned = (
                settings
                if name != "pipeline_stale_nofold"
                else dataclasses.replace(settings, foldin_prior=1e12)
            )
            with pipeline_ranker(split, catalog, attributes, tuned, k, channel, placement, stale) as rank:
                results.append(
                    evaluate_method(name, description, split, rank, k, time.perf_counter() - started)
                )
            continue
        if name == "popularity":
            rank = baselines.popularity(split, settings, k)
        elif name == "popularity_recent":
            rank = baselines.popularity_recent(split, settings, k, recent_days)
        elif name == "popularity_repeat":
            rank = baselines.popularity_repeat(split, settings, k)
        elif name == "lightfm_ids":
            rank = baselines.lightfm_alone(split, settings, k)
        elif name == "lightfm_defaults":
            rank = baselines.lightfm_alone(split, settings, k, defaults=True)
        else:
            raise ValueError(f"method {name!r} is not one of {', '.join(METHODS)}")
        results.append(evaluate_method(name, description, split, rank, k, time.perf_counter() - started))
    comparisons = bootstrap(results, resamples, seed=settings.seed)
    chosen = {
        f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name in _MODEL_SETTINGS
    }
    return Report(
        dataset=dataset_name,
        split=split.description,
        k=k,
        customers=len(split.truth),
        cold_customers=split.cold_customers,
        candidates=len(split.candidates),
        train_events=len(split.train),
        methods=results,
        comparisons=comparisons,
        settings=chosen,
        bootstrap=resamples,
    )


_MODEL_SETTINGS = {
    "components",
    "loss",
    "epochs",
    "learning_rate",
    "item_alpha",
    "user_alpha",
    "max_sampled",
    "train_threads",
    "recency_half_life_days",
    "event_weights",
    "item_identity_weight",
    "user_attribute_weight",
    "foldin_prior",
    "repurchase_weight",
    "repurchase_half_life_days",
    "popular_window_days",
    "seed",
}
