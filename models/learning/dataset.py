"""Event log + catalogue -> LightFM inputs.

Interactions are weighted by event type and recency (half-life from the newest event, so an
import of history trains as it would have on its last day). Item features (category, brand,
price band, attributes) and user features (channel mix) let new items and new customers be
scored. Feature rows are normalised to sum to 1, as lightfm.data.Dataset does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.domain import DAY, Item
from models.events import InteractionLog
from models.learning.event_weights import EVENT_WEIGHTS
from models.learning.item_features import item_feature_tokens


@dataclass
class TrainingData:
    user_ids: np.ndarray  # external ids, row order of the matrices
    item_ids: np.ndarray
    interactions: sp.coo_matrix  # 1 where the user interacted with the item
    weights: sp.coo_matrix  # same sparsity, the interest weight
    user_features: sp.csr_matrix  # users x user feature names
    item_features: sp.csr_matrix  # items x item feature names
    user_feature_names: np.ndarray
    item_feature_names: np.ndarray
    reference_time: float  # the newest event time, recency is measured from it

    @property
    def n_interactions(self) -> int:
        return int(self.interactions.nnz)


def build(
    log: InteractionLog,
    items: Sequence[Item],
    half_life_days: float,
    reference_time: float | None = None,
    *,
    event_weights: Mapping[str, float] | None = None,
    item_identity_weight: float = 0.0,
    user_attributes: Mapping[str, Mapping[str, str]] | None = None,
    user_attribute_weight: float = 0.25,
    user_channel_weight: float = 0.5,
) -> TrainingData:
    """The training matrices. `user_attributes` (customer -> {name: value}) become user features."""
    if len(log) == 0:
        raise ValueError("the event log has no item events to train on")
    ref = float(log.occurred_at.max()) if reference_time is None else reference_time
    weights_of = EVENT_WEIGHTS if event_weights is None else event_weights
    type_weight = pd.Series(log.type).map(weights_of).fillna(0.0).to_numpy()
    age_days = np.maximum(ref - log.occurred_at, 0.0) / DAY
    weight = type_weight * np.power(0.5, age_days / half_life_days)
    frame = pd.DataFrame({"user": log.customer_id, "item": log.item_id, "w": weight, "channel": log.channel})

    # Users: everyone with an item event (their channel mix is a feature even if all weights are 0).
    user_codes, user_ids = pd.factorize(frame["user"], sort=True)
    catalog_ids = np.array([it.item_id for it in items], dtype=object)
    item_ids = np.array(
        sorted(set(catalog_ids.tolist()) | set(frame["item"].unique().tolist())), dtype=object
    )
    item_pos = pd.Index(item_ids)
    item_codes = item_pos.get_indexer(frame["item"])

    positive = weight > 0
    pairs = pd.DataFrame({"u": user_codes[positive], "i": item_codes[positive], "w": weight[positive]})
    agg = pairs.groupby(["u", "i"], sort=False)["w"].sum()
    rows = agg.index.get_level_values(0).to_numpy()
    cols = agg.index.get_level_values(1).to_numpy()
    # log1p keeps a hundred views from outweighing a purchase by a hundred times.
    vals = np.log1p(agg.to_numpy()).astype(np.float32)
    shape = (len(user_ids), len(item_ids))
    interactions = sp.coo_matrix((np.ones_like(vals), (rows, cols)), shape=shape)
    weights = sp.coo_matrix((vals, (rows, cols)), shape=shape)

    user_features, user_names = _user_features(
        user_codes, frame["channel"].to_numpy(), len(user_ids), user_channel_weight
    )
    if user_attributes:
        user_features, user_names = _with_attributes(
            user_features, user_names, np.asarray(user_ids), user_attributes, user_attribute_weight
        )
    item_features, item_names = _item_features(
        item_ids, {it.item_id: it for it in items}, item_identity_weight
    )
    return TrainingData(
        user_ids=np.asarray(user_ids, dtype=object),
        item_ids=item_ids,
        interactions=interactions,
        weights=weights,
        user_features=user_features,
        item_features=item_features,
        user_feature_names=user_names,
        item_feature_names=item_names,
        reference_time=ref,
    )


def _user_features(
    user_codes: np.ndarray, channels: np.ndarray, n_users: int, channel_weight: float = 0.5
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Identity feature (1 - channel_weight) plus the user's share of events per channel (channel_weight)."""
    chan_codes, chan_names = pd.factorize(channels, sort=True)
    counts = sp.coo_matrix(
        (np.ones(len(user_codes), dtype=np.float32), (user_codes, chan_codes)),
        shape=(n_users, len(chan_names)),
    ).tocsr()
    share = sp.diags(1.0 / np.maximum(np.asarray(counts.sum(axis=1)).ravel(), 1.0)) @ counts
    identity = sp.identity(n_users, dtype=np.float32, format="csr")
    feats = sp.hstack([identity * (1.0 - channel_weight), share * channel_weight], format="csr").astype(
        np.float32
    )
    names = np.array(
        [f"user:{i}" for i in range(n_users)] + [f"channel:{c}" for c in chan_names], dtype=object
    )
    return feats, names


def _with_attributes(
    feats: sp.csr_matrix,
    names: np.ndarray,
    user_ids: np.ndarray,
    attributes: Mapping[str, Mapping[str, str]],
    share: float,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Gives customers with attributes a `share` of their row on "name=value" tokens (rest scaled down)."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    scale = np.ones(len(user_ids), dtype=np.float32)
    for r, user in enumerate(user_ids.tolist()):
        tokens = [f"{k}={v}" for k, v in sorted((attributes.get(user) or {}).items()) if v]
        if not tokens:
            continue
        scale[r] = 1.0 - share
        for tok in tokens:
            rows.append(r)
            cols.append(vocab.setdefault(tok, len(vocab)))
            vals.append(share / len(tokens))
    if not vocab:
        return feats, names
    extra = sp.csr_matrix((np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(user_ids), len(vocab)))
    scaled = sp.diags(scale) @ feats
    out = sp.hstack([scaled, extra], format="csr").astype(np.float32)
    return out, np.concatenate([names, np.array([f"attr:{t}" for t in vocab], dtype=object)])


def _item_features(
    item_ids: np.ndarray, catalog: Mapping[str, Item], identity_weight: float = 0.0
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Identity feature plus catalogue features, each row summing to 1.

    `identity_weight` 0 gives the id an equal share with each feature; otherwise the id gets that
    share and the features split the rest (a larger share keeps well-known items distinct).
    """
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    n = len(item_ids)
    for r, item_id in enumerate(item_ids):
        item = catalog.get(item_id)
        tokens = item_feature_tokens(item) if item is not None else []
        if identity_weight > 0 and tokens:
            own, share = identity_weight, (1.0 - identity_weight) / len(tokens)
        else:
            own = share = 1.0 / (1 + len(tokens))
        rows.append(r)
        cols.append(r)
        vals.append(own)
        for tok in tokens:
            rows.append(r)
            cols.append(n + vocab.setdefault(tok, len(vocab)))
            vals.append(share)
    feats = sp.csr_matrix((np.array(vals, dtype=np.float32), (rows, cols)), shape=(n, n + len(vocab)))
    names = np.array([f"item:{i}" for i in item_ids] + list(vocab), dtype=object)
    return feats, names
