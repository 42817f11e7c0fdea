"""Ranking metrics at k, and the quick hold-out comparison reported with every training."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from models.events import InteractionLog
from models.learning.artifact import ModelArtifact


def precision_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return sum(1 for i in ranked[:k] if i in relevant) / k


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return sum(1 for i in ranked[:k] if i in relevant) / len(relevant) if relevant else 0.0


def average_precision_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    hits, total = 0, 0.0
    for pos, item in enumerate(ranked[:k], start=1):
        if item in relevant:
            hits += 1
            total += hits / pos
    return total / min(len(relevant), k) if relevant else 0.0


def hit_rate_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """1 when at least one of the first k is relevant, else 0 (its mean is the share of customers hit)."""
    return 1.0 if any(i in relevant for i in ranked[:k]) else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    dcg = sum(1.0 / math.log2(pos + 1) for pos, i in enumerate(ranked[:k], start=1) if i in relevant)
    ideal = sum(1.0 / math.log2(pos + 1) for pos in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


def summarise(
    rankings: Mapping[str, Sequence[str]], truth: Mapping[str, set[str]], k: int
) -> dict[str, float]:
    """Mean metrics over the users of `rankings` (each must have a truth set)."""
    users = list(rankings)
    if not users:
        return {}
    return {
        f"precision@{k}": float(np.mean([precision_at_k(rankings[u], truth[u], k) for u in users])),
        f"recall@{k}": float(np.mean([recall_at_k(rankings[u], truth[u], k) for u in users])),
        f"map@{k}": float(np.mean([average_precision_at_k(rankings[u], truth[u], k) for u in users])),
        f"ndcg@{k}": float(np.mean([ndcg_at_k(rankings[u], truth[u], k) for u in users])),
    }


def compare_with_popularity(
    art: ModelArtifact,
    train_log: InteractionLog,
    truth: Mapping[str, set[str]],
    seen: Mapping[str, set[str]],
    k: int,
) -> dict[str, float]:
    """Model vs. most-purchased items, on the users the model knows, excluding what each had seen."""
    user_row = {u: r for r, u in enumerate(art.user_ids.tolist())}
    ids = art.item_ids
    purchases = train_log.item_id[train_log.type == "PURCHASE"]
    pop_ids, pop_counts = np.unique(purchases.astype(str), return_counts=True)
    popular = pop_ids[np.argsort(-pop_counts, kind="stable")].tolist()
    model_rank: dict[str, list[str]] = {}
    pop_rank: dict[str, list[str]] = {}
    for user in truth:
        row = user_row.get(user)
        if row is None:
            continue
        scores = art.item_vectors @ art.user_vectors[row] + art.item_biases
        skip = seen.get(user, set())
        order = np.argsort(-scores)
        model_rank[user] = [i for i in (ids[j] for j in order[: k + len(skip)]) if i not in skip][:k]
        pop_rank[user] = [i for i in popular[: k + len(skip)] if i not in skip][:k]
    out = summarise(model_rank, truth, k)
    out.update({f"popularity.{name}": v for name, v in summarise(pop_rank, truth, k).items()})
    out["holdout_customers"] = float(len(model_rank))
    return out
