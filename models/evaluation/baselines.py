"""The methods `seenext evaluate` compares, each a ranker over one Split.

Baselines are computed from the same train events and candidates as the pipeline:
- popularity: most interest (event-type weights) over the whole train period;
- popularity_recent: the same over the last `recent_days` before the cut-off;
- popularity_repeat: the customer's own repeatable purchases (latest first), then popularity;
- repeat_then_popular: everything the customer bought (latest first), then popularity — what a
  retailer can do without any flag (the front door sends none, so no item is known repeatable);
- viewed_not_bought: what the customer carted, then viewed, and has not bought (latest first),
  then popularity — the clickstream baseline ("what they looked at last");
- lightfm_ids: LightFM alone with the service's hyper-parameters — ids only, every interaction 1,
  no features, no recency, no rules;
- lightfm_defaults: LightFM alone as in its MovieLens example (WARP, 10 components, 10 epochs).
The pipeline is the service itself (see models/evaluation/pipeline.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from lightfm import LightFM

from models.domain import DAY
from models.evaluation.protocol import Ranker, Split
from models.learning.event_weights import parse_event_weights
from models.settings import Settings


def _ranked(scores: pd.Series) -> list[str]:
    """Items by score desc, ties by id (deterministic)."""
    frame = scores.rename("s").reset_index()
    frame.columns = ["item", "s"]
    return [str(i) for i in frame.sort_values(["s", "item"], ascending=[False, True])["item"]]


def interest(train: pd.DataFrame, settings: Settings) -> pd.Series:
    weights = parse_event_weights(settings.event_weights)
    return train["type"].map(weights).fillna(0.0)


def _popular(split: Split, settings: Settings, since: float | None = None) -> list[str]:
    train = split.train
    w = interest(train, settings)
    mask = (w > 0) if since is None else (w > 0) & (train["occurred_at"] >= since)
    allowed = set(split.candidates)
    ranked = _ranked(w[mask].groupby(train["item_id"][mask]).sum())
    return [i for i in ranked if i in allowed]


def _top(ordered: Sequence[str], skip: set[str], k: int) -> list[str]:
    out = []
    for item in ordered:
        if item not in skip:
            out.append(item)
            if len(out) == k:
                break
    return out


def popularity(split: Split, settings: Settings, k: int) -> Ranker:
    ranked = _popular(split, settings)
    return lambda customer: _top(ranked, split.owned.get(customer, set()), k)


def popularity_recent(split: Split, settings: Settings, k: int, recent_days: float) -> Ranker:
    recent = _popular(split, settings, since=split.reference_time - recent_days * DAY)
    fill = _popular(split, settings)  # too few recent items: the rest by all-time popularity
    ranked = list(dict.fromkeys(recent + fill))
    return lambda customer: _top(ranked, split.owned.get(customer, set()), k)


def _own_purchases(split: Split) -> dict[str, list[str]]:
    """Each customer's bought candidates, latest purchase first, then most bought, then by id."""
    allowed = set(split.candidates)
    bought = split.train[(split.train["type"] == "PURCHASE") & split.train["item_id"].isin(allowed)]
    own = (
        bought.groupby(["customer_id", "item_id"])["occurred_at"]
        .agg(["max", "size"])
        .reset_index()
        .sort_values(["customer_id", "max", "size", "item_id"], ascending=[True, False, False, True])
    )
    mine: dict[str, list[str]] = own.groupby("customer_id")["item_id"].agg(list).to_dict()
    return mine


def popularity_repeat(split: Split, settings: Settings, k: int) -> Ranker:
    """Own repeatable purchases, latest first (then most bought), then all-time popularity."""
    ranked = _popular(split, settings)
    mine = _own_purchases(split)

    def rank(customer: str) -> list[str]:
        skip = split.owned.get(customer, set())  # non-repeatable purchases stay excluded
        return _top(list(dict.fromkeys(mine.get(customer, []) + ranked)), skip, k)

    return rank


def repeat_then_popular(split: Split, settings: Settings, k: int) -> Ranker:
    """Every own purchase, latest first (then most bought), then all-time popularity; nothing excluded.

    Unlike `popularity_repeat` it does not read `repeatable`: with a catalogue that carries no flags it
    is the rule "what they bought before, then what is popular", and the list stays full.
    """
    ranked = _popular(split, settings)
    mine = _own_purchases(split)
    return lambda customer: list(dict.fromkeys(mine.get(customer, []) + ranked))[:k]


CART_TYPES = ("ADD_TO_CART",)
LOOK_TYPES = ("VIEW", "CLICK")


def viewed_not_bought(split: Split, settings: Settings, k: int) -> Ranker:
    """Carted and not bought (latest cart first), then viewed or clicked and not bought (latest
    first), then all-time popularity without what the customer owns.

    "Not bought" is any purchase of the item by the customer before the cut-off. A cart removal does
    not demote an item (the clickstream samples here have none).
    """
    ranked = _popular(split, settings)
    train = split.train[split.train["item_id"].isin(set(split.candidates))]
    buys = train[train["type"] == "PURCHASE"]
    bought = set(zip(buys["customer_id"], buys["item_id"], strict=True))
    tiers: dict[str, list[str]] = {}
    for types in (CART_TYPES, LOOK_TYPES):
        rows = train[train["type"].isin(list(types))]
        latest = (
            rows.groupby(["customer_id", "item_id"])["occurred_at"]
            .max()
            .reset_index()
            .sort_values(["customer_id", "occurred_at", "item_id"], ascending=[True, False, True])
        )
        for customer, item in zip(latest["customer_id"], latest["item_id"], strict=True):
            if (customer, item) not in bought:
                tiers.setdefault(customer, []).append(item)

    def rank(customer: str) -> list[str]:
        # carted before viewed, each item once (a carted item was usually viewed too)
        mine = tiers.get(customer, [])
        return _top(list(dict.fromkeys(mine + ranked)), split.owned.get(customer, set()), k)

    return rank


def _lightfm_ranker(split: Split, model: LightFM, users: dict[str, int], items: np.ndarray, k: int) -> Ranker:
    # A set, not np.isin: on object arrays isin compares every pair (two minutes for 42k Taobao items).
    candidates = set(split.candidates)
    allowed = np.fromiter((i in candidates for i in items.tolist()), dtype=bool, count=len(items))
    pos = {i: n for n, i in enumerate(items.tolist())}

    def rank(customer: str) -> list[str]:
        row = users[customer]
        scores = model.item_embeddings @ model.user_embeddings[row] + model.item_biases
        scores = np.where(allowed, scores, -np.inf)
        for item in split.owned.get(customer, ()):
            if item in pos:
                scores[pos[item]] = -np.inf
        top = np.argpartition(-scores, min(k, len(scores) - 1))[: k + 1]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [items[j] for j in top if np.isfinite(scores[j])][:k]

    return rank


def lightfm_alone(split: Split, settings: Settings, k: int, defaults: bool = False) -> Ranker:
    """Bare LightFM on the binary (customer, item) matrix of the train events with positive interest."""
    train = split.train[interest(split.train, settings) > 0]
    user_codes, user_ids = pd.factorize(train["customer_id"], sort=True)
    item_codes, item_ids = pd.factorize(train["item_id"], sort=True)
    matrix = sp.coo_matrix(
        (np.ones(len(train), dtype=np.float32), (user_codes, item_codes)),
        shape=(len(user_ids), len(item_ids)),
    ).tocsr()
    matrix.data[:] = 1.0  # duplicates summed by tocsr: back to 1
    if defaults:
        model = LightFM(no_components=10, loss="warp", learning_rate=0.05, random_state=settings.seed)
        epochs = 10
    else:
        model = LightFM(
            no_components=settings.components,
            loss=settings.loss,
            learning_rate=settings.learning_rate,
            item_alpha=settings.item_alpha,
            user_alpha=settings.user_alpha,
            max_sampled=settings.max_sampled,
            random_state=settings.seed,
        )
        epochs = settings.epochs
    model.fit(matrix.tocoo(), epochs=epochs, num_threads=settings.train_threads)
    users = {u: n for n, u in enumerate(user_ids.tolist())}
    fallback = popularity(split, settings, k)
    ranked = _lightfm_ranker(split, model, users, np.asarray(item_ids, dtype=object), k)

    def rank(customer: str) -> Sequence[str]:
        # A customer whose only history has no interest weight (e.g. impressions) has no row.
        return ranked(customer) if customer in users else fallback(customer)

    return rank
