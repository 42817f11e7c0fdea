"""Fold-in: events newer than the model count at once, without waiting for a retrain.

A customer's events after the model's reference time (the newest event it was trained on) pull
their vector towards the items of those events:

    u' = (1 - a) * u + a * |u| * s / |s|,   a = W / (W + prior)

where s is the weighted mean of the fresh items' vectors, W the sum of the fresh events' weights
(event type weight, halving every `half_life_hours` before the newest fresh event) and `prior` the
weight at which fresh interest counts as much as the whole trained profile. A customer the model
has never seen gets s itself, scaled to a typical user's length, from their first events. The
bias column (last) stays 1, so item biases weigh the same as for any trained customer.
Then the customer's own repeatable purchases are blended in (models/serving/repurchase.py).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from models.catalog import CatalogSnapshot
from models.learning.event_weights import EVENT_WEIGHTS, parse_event_weights
from models.serving import repurchase
from models.serving.customer_state import CustomerState
from models.serving.embeddings import ItemSpace, RankingModel
from models.serving.score_cache import ScoreCache
from models.settings import Settings

MAX_FRESH = 50  # newest fresh events a request reads and folds in


@dataclass(frozen=True)
class Tuning:
    prior: float = 3.0
    half_life_hours: float = 24.0
    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(EVENT_WEIGHTS))
    repurchase_weight: float = 0.0
    repurchase_half_life_days: float = 365.0

    @classmethod
    def from_settings(cls, s: Settings) -> Tuning:
        return cls(
            prior=s.foldin_prior,
            half_life_hours=s.foldin_half_life_hours,
            event_weights=parse_event_weights(s.event_weights),
            repurchase_weight=s.repurchase_weight,
            repurchase_half_life_days=s.repurchase_half_life_days,
        )


def reference_time(model: RankingModel) -> float:
    """The newest event the model was trained on; everything after it is fresh."""
    ref = model.manifest.get("reference_time")
    return float(ref) if ref is not None else float(model.manifest.get("trained_at", 0.0))


def fresh_direction(
    space: ItemSpace, events: Sequence[tuple[str, str, float]], tuning: Tuning
) -> tuple[np.ndarray, float, str] | None:
    """(weighted mean item vector, total weight, the strongest item) of (item, type, time) events."""
    dim = space.scoring.shape[1] - 1
    rows: list[int] = []
    weights: list[float] = []
    newest = max((t for _, _, t in events), default=0.0)
    for item_id, etype, at in events:
        row = space.index.get(item_id)
        w = tuning.event_weights.get(etype, 0.0)
        if row is None or w <= 0:
            continue
        rows.append(row)
        weights.append(w * 0.5 ** (max(newest - at, 0.0) / 3600.0 / tuning.half_life_hours))
    if not rows:
        return None
    ws = np.asarray(weights, dtype=np.float32)
    direction = (space.scoring[rows, :dim] * ws[:, None]).sum(axis=0) / float(ws.sum())
    return direction, float(ws.sum()), str(space.ids[rows[int(np.argmax(ws))]])


def folded_vector(
    user: np.ndarray | None, direction: np.ndarray, weight: float, prior: float, typical_norm: float
) -> np.ndarray:
    """The user vector (with its trailing bias 1) moved towards `direction` by weight / (weight + prior)."""
    dim = len(direction)
    norm = float(np.linalg.norm(direction)) or 1.0
    out = np.empty(dim + 1, dtype=np.float32)
    out[dim] = 1.0
    if user is None:
        out[:dim] = direction * (typical_norm / norm)
        return out
    base = user[:dim]
    share = weight / (weight + prior) if prior > 0 else 1.0
    out[:dim] = (1.0 - share) * base + share * direction * (
        (float(np.linalg.norm(base)) or typical_norm) / norm
    )
    return out


def known_customer_scores(
    model: RankingModel,
    space: ItemSpace,
    state: CustomerState,
    user: np.ndarray,
    snapshot: CatalogSnapshot | Mapping[str, bool],  # or: item -> comes back now (rebuying)
    tuning: Tuning,
    cache: ScoreCache | None = None,
) -> np.ndarray:
    """Scores of a customer the model knows (`user`: their vector with its bias column): folded
    towards their events after the model's data, their own repeatable purchases blended in. `cache`
    keeps the product of the folded vector for their next request (models/serving/score_cache.py)."""
    ref = reference_time(model)
    fresh = state.events_after(ref)[:MAX_FRESH]
    found = fresh_direction(space, fresh, tuning) if fresh else None
    if found is not None:
        direction, weight, _ = found
        user = folded_vector(user, direction, weight, tuning.prior, model.typical_user_norm)
    return _with_repurchase(_product(model, space, user, cache), space, state, snapshot, ref, tuning, user)


def newcomer_scores(
    model: RankingModel,
    space: ItemSpace,
    state: CustomerState,
    context_items: Sequence[str],
    snapshot: CatalogSnapshot | Mapping[str, bool],
    tuning: Tuning,
    cache: ScoreCache | None = None,
) -> tuple[np.ndarray, str] | None:
    """Scores of a customer newer than the model, folded in from their first events (and the page's items)."""
    ref = reference_time(model)
    # Their stored history drives the answer whatever its age (a customer who bought the same coffee
    # every month until two months ago is no stranger): the newest MAX_FRESH item events, decayed by age.
    events: list[tuple[str, str, float]] = list(state.recent[:MAX_FRESH])
    newest = max((t for _, _, t in events), default=time.time())
    events += [(i, "VIEW", newest) for i in context_items]
    found = fresh_direction(space, events, tuning)
    if found is None:
        return None
    direction, _, anchor = found
    user = folded_vector(None, direction, 0.0, tuning.prior, model.typical_user_norm)
    scores = _with_repurchase(_product(model, space, user, cache), space, state, snapshot, ref, tuning, user)
    return scores, anchor


def _product(model: RankingModel, space: ItemSpace, user: np.ndarray, cache: ScoreCache | None) -> np.ndarray:
    """`space.scoring @ user`: the caller's own temporary, or a read-only product `cache` keeps for
    every request of this vector."""
    if cache is None:
        scores: np.ndarray = space.scoring @ user
        return scores
    return cache.product(space.scoring, user, model.version, space.catalog_version)


def state_window_start(model: RankingModel) -> float:
    """How far back a request reads the customer's item events: all ages (the read keeps the newest
    MAX_FRESH), since newcomer fold-in uses a customer's history whatever its age; a known customer's
    fold-in uses those after the model's data."""
    return 0.0


def _with_repurchase(
    scores: np.ndarray,
    space: ItemSpace,
    state: CustomerState,
    snapshot: CatalogSnapshot | Mapping[str, bool],
    ref: float,
    tuning: Tuning,
    user: np.ndarray | None = None,
) -> np.ndarray:
    """`scores` (= space.scoring @ user: changed in place when it is the caller's own temporary, copied
    when it is a read-only product the score cache keeps) with the customer's repeatable purchases
    blended in."""
    if tuning.repurchase_weight <= 0:
        return scores
    return repurchase.blend(
        scores,
        space.index,
        state.bought(),
        snapshot,
        ref,
        tuning.repurchase_weight,
        tuning.repurchase_half_life_days,
        spread=functools.partial(repurchase.score_spread, space, user) if user is not None else None,
        appeal=space.scoring[:, -1],  # the item biases: purchases of one occasion by their appeal to all
        in_place=bool(scores.flags.writeable),  # read-only: kept for other requests (score_cache.py)
    )
