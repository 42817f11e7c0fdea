"""Training: event store -> dataset -> LightFM fit -> artifact.

Precomputes each user's and item's representation (features @ feature embeddings) so serving
is one matrix-vector product, never `LightFM.predict`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from lightfm import LightFM

from models.domain import DAY, Item
from models.errors import FailedPrecondition
from models.events import InteractionLog
from models.learning import dataset, metrics
from models.learning.artifact import ModelArtifact
from models.learning.event_weights import parse_event_weights
from models.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    model: LightFM
    data: dataset.TrainingData
    fit_seconds: float


def build_data(
    log_: InteractionLog,
    items: list[Item],
    settings: Settings,
    reference_time: float | None = None,
    user_attributes: Mapping[str, Mapping[str, str]] | None = None,
) -> dataset.TrainingData:
    """The dataset builder with the weights, recency and feature shares the settings ask for."""
    return dataset.build(
        log_,
        items,
        settings.recency_half_life_days,
        reference_time,
        event_weights=parse_event_weights(settings.event_weights),
        item_identity_weight=settings.item_identity_weight,
        user_attributes=user_attributes,
        user_attribute_weight=settings.user_attribute_weight,
        user_channel_weight=settings.user_channel_weight,
    )


def fit(data: dataset.TrainingData, settings: Settings) -> FitResult:
    model = LightFM(
        no_components=settings.components,
        loss=settings.loss,
        learning_rate=settings.learning_rate,
        item_alpha=settings.item_alpha,
        user_alpha=settings.user_alpha,
        max_sampled=settings.max_sampled,
        random_state=settings.seed,
    )
    started = time.perf_counter()
    model.fit(
        data.interactions,
        user_features=data.user_features,
        item_features=data.item_features,
        sample_weight=data.weights,
        epochs=settings.epochs,
        num_threads=settings.train_threads,
    )
    return FitResult(model, data, time.perf_counter() - started)


def to_artifact(result: FitResult, version: str, extra: dict[str, Any] | None = None) -> ModelArtifact:
    m, data = result.model, result.data
    user_vectors = np.asarray(data.user_features @ m.user_embeddings, dtype=np.float32)
    user_biases = np.asarray(data.user_features @ m.user_biases, dtype=np.float32)
    item_vectors = np.asarray(data.item_features @ m.item_embeddings, dtype=np.float32)
    item_biases = np.asarray(data.item_features @ m.item_biases, dtype=np.float32)
    n_items = len(data.item_ids)  # the first n_items item features are the identity features
    manifest = {
        "trained_at": time.time(),
        "customers": len(data.user_ids),
        "items": int(n_items),
        "interactions": data.n_interactions,
        "reference_time": data.reference_time,
        "fit_seconds": round(result.fit_seconds, 3),
        "params": {k: v for k, v in m.get_params().items() if isinstance(v, (int, float, str))},
        "metrics": {},
    }
    manifest.update(extra or {})
    return ModelArtifact(
        version=version,
        user_ids=np.asarray(data.user_ids).astype(str),
        user_vectors=user_vectors,
        user_biases=user_biases,
        item_ids=np.asarray(data.item_ids).astype(str),
        item_vectors=item_vectors,
        item_biases=item_biases,
        item_feature_names=np.asarray(data.item_feature_names[n_items:]).astype(str),
        item_feature_vectors=np.ascontiguousarray(m.item_embeddings[n_items:], dtype=np.float32),
        item_feature_biases=np.ascontiguousarray(m.item_biases[n_items:], dtype=np.float32),
        manifest=manifest,
    )


def train(
    log_: InteractionLog,
    items: list[Item],
    settings: Settings,
    version: str,
    user_attributes: Mapping[str, Mapping[str, str]] | None = None,
) -> ModelArtifact:
    """The whole pipeline on the given history; metrics on a time hold-out when configured."""
    if len(log_) == 0:
        raise FailedPrecondition(
            "no interactions to train on: track events (or start with SEENEXT_DEMO=1) first"
        )
    evaluated: dict[str, float] = {}
    if settings.eval_holdout_days > 0:
        evaluated = holdout_metrics(log_, items, settings)
    started = time.perf_counter()
    # Recency is measured from the newest event, but never from a time still ahead: history stored with
    # future dates (before they were refused) would otherwise make every live event look old.
    reference = min(time.time(), float(log_.occurred_at.max()))
    data = build_data(log_, items, settings, reference_time=reference, user_attributes=user_attributes)
    build_seconds = time.perf_counter() - started
    result = fit(data, settings)
    artifact = to_artifact(result, version, {"build_seconds": round(build_seconds, 3)})
    artifact.manifest["metrics"] = evaluated
    log.info(
        "trained %s: %d customers, %d items, %d interactions, fit %.1fs",
        version,
        len(data.user_ids),
        len(data.item_ids),
        data.n_interactions,
        result.fit_seconds,
    )
    return artifact


def holdout_metrics(
    log_: InteractionLog, items: list[Item], settings: Settings, k: int = 10
) -> dict[str, float]:
    """Fit on all but the last N days, score purchases in those days; popularity as the baseline."""
    cut = float(log_.occurred_at.max()) - settings.eval_holdout_days * DAY
    before = log_.occurred_at < cut
    train_log = InteractionLog(*(np.asarray(getattr(log_, f))[before] for f in _LOG_FIELDS))
    after = (~before) & (log_.type == "PURCHASE")
    if len(train_log) == 0 or not after.any():
        return {}
    data = build_data(train_log, items, settings, reference_time=cut)
    result = fit(data, settings)
    art = to_artifact(result, "holdout")
    truth: dict[str, set[str]] = {}
    for u, i in zip(log_.customer_id[after], log_.item_id[after], strict=True):
        truth.setdefault(u, set()).add(i)
    seen: dict[str, set[str]] = {}
    for u, i in zip(train_log.customer_id, train_log.item_id, strict=True):
        seen.setdefault(u, set()).add(i)
    return metrics.compare_with_popularity(art, train_log, truth, seen, k)


_LOG_FIELDS = ("customer_id", "item_id", "type", "channel", "occurred_at", "order_id")
