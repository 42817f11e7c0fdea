"""Full retrain (`Seenext.train()`: store -> interaction log -> dataset -> fit -> artifact -> publish)
beside a bare `LightFM.fit` of the same matrices with the same features, weights, epochs and threads.

The retrain runs with eval_holdout_days=0: the optional hold-out evaluation is a second fit on
purpose, not overhead, so it is left out of both sides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lightfm import LightFM

from bench.world import settings_for
from models.learning import dataset
from models.service import Seenext


@dataclass(frozen=True)
class RetrainFigures:
    item_events: int  # rows of the interaction log read from the store
    matrix_nnz: int  # distinct (customer, item) pairs with a positive weight: the fitted matrix
    users: int
    items: int
    epochs: int
    components: int
    threads: int
    loss: str
    train_seconds: float  # the whole Seenext.train()
    fit_seconds: float  # its LightFM.fit part (from the manifest)
    build_seconds: float  # its dataset.build part (from the manifest)
    bare_fit_seconds: float

    @property
    def other_seconds(self) -> float:
        """Reading the log from SQLite, the artifact, saving and swapping it in."""
        return self.train_seconds - self.fit_seconds - self.build_seconds

    @property
    def ratio(self) -> float:
        return self.train_seconds / self.bare_fit_seconds


def measure(data_dir: Path, **settings: object) -> RetrainFigures:
    s = settings_for(data_dir, **settings)
    service = Seenext(s)
    try:
        started = time.perf_counter()
        info = service.train()
        train_seconds = time.perf_counter() - started
        manifest = service.serving_model.manifest if service.serving_model is not None else {}
        log = service.interaction_log()
        data = dataset.build(log, service.all_items(), s.recency_half_life_days)
    finally:
        service.close()
    model = LightFM(
        no_components=s.components,
        loss=s.loss,
        learning_rate=s.learning_rate,
        item_alpha=s.item_alpha,
        user_alpha=s.user_alpha,
        max_sampled=s.max_sampled,
        random_state=s.seed,
    )
    started = time.perf_counter()
    model.fit(
        data.interactions,
        user_features=data.user_features,
        item_features=data.item_features,
        sample_weight=data.weights,
        epochs=s.epochs,
        num_threads=s.train_threads,
    )
    bare = time.perf_counter() - started
    return RetrainFigures(
        item_events=len(log),
        matrix_nnz=data.n_interactions,
        users=info.customers,
        items=info.items,
        epochs=s.epochs,
        components=s.components,
        threads=s.train_threads,
        loss=s.loss,
        train_seconds=train_seconds,
        fit_seconds=float(manifest.get("fit_seconds", 0.0)),
        build_seconds=float(manifest.get("build_seconds", 0.0)),
        bare_fit_seconds=bare,
    )
