"""Offline evaluation: one split, every method ranked on it, metrics with bootstrap intervals.

Protocol (the same for every method, so the rows of one run compare):
- Split: by time (train on every event before a cut-off, test on what each customer did after it)
  or by a file of held-out (customer, item) pairs such as MovieLens `ua.test`.
- Customers evaluated: those with something to find in the test part and a history in the train part.
- Candidates: the items with at least one train event (and, if the store has a catalogue, in it):
  the catalogue as it stood at the cut-off, so no method learns which new items will sell.
- Exclusions: items a customer bought before the cut-off and that are not `repeatable` are never
  counted as recommendations — the service's own rule, applied to the baselines alike.
- Metrics at k: precision, recall, MAP (AP normalised by min(|relevant|, k)), NDCG, hit rate (share
  of customers with at least one relevant item in their k), and catalogue coverage; 95 % bootstrap
  intervals over customers (paired: every method sees the same resamples).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.domain import DAY, Item
from models.learning import metrics

METRICS = ("precision", "recall", "map", "ndcg", "hit_rate")
EVENT_COLUMNS = (
    "event_id",
    "customer_id",
    "channel",
    "type",
    "item_id",
    "quantity",
    "price",
    "store_id",
    "order_id",
    "recommendation_id",
    "occurred_at",
    "attributes",
)


@dataclass
class Split:
    """The train events, the held-out truth per customer, and what every method may recommend."""

    description: str
    train: pd.DataFrame  # event rows (EVENT_COLUMNS) before the cut
    truth: dict[str, set[str]]  # customer -> items to find
    candidates: list[str]  # rankable items, sorted
    owned: dict[str, set[str]]  # customer -> items excluded for them
    reference_time: float  # the newest train event
    cold_customers: int = 0  # test customers left out for lack of history


@dataclass
class MethodResult:
    name: str
    description: str
    per_user: dict[str, np.ndarray]  # metric -> value per evaluated customer (Split.truth order)
    coverage: float
    seconds: float
    intervals: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # mean, low, high

    def value(self, metric: str) -> float:
        return float(self.per_user[metric].mean())


@dataclass
class Report:
    dataset: str
    split: str
    k: int
    customers: int
    cold_customers: int
    candidates: int
    train_events: int
    methods: list[MethodResult]
    comparisons: dict[
        str, dict[str, tuple[float, float, float, float]]
    ]  # vs name -> metric -> diff, lo, hi, p>0
    settings: dict[str, object]
    bootstrap: int
    reference: str = "pipeline"  # the method the paired differences are taken from

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "k": self.k,
            "customers": self.customers,
            "cold_customers_left_out": self.cold_customers,
            "candidates": self.candidates,
            "train_events": self.train_events,
            "bootstrap_resamples": self.bootstrap,
            "methods": [
                {
                    "name": m.name,
                    "description": m.description,
                    "seconds": round(m.seconds, 2),
                    "coverage": round(m.coverage, 4),
                    "metrics": {
                        f"{name}@{self.k}": {"value": round(v, 5), "ci95": [round(lo, 5), round(hi, 5)]}
                        for name, (v, lo, hi) in m.intervals.items()
                    },
                }
                for m in self.methods
            ],
            f"{self.reference}_minus": {
                other: {
                    f"{name}@{self.k}": {
                        "diff": round(d, 5),
                        "ci95": [round(lo, 5), round(hi, 5)],
                        "share_of_resamples_above_0": round(p, 3),
                    }
                    for name, (d, lo, hi, p) in by_metric.items()
                }
                for other, by_metric in self.comparisons.items()
            },
            "settings": self.settings,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


# -- loading and splitting --------------------------------------------------------------------------


def events_frame(rows: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """Item events (rows of EVENT_COLUMNS, oldest first: `Seenext.item_events`) as a frame."""
    return pd.DataFrame(rows, columns=list(EVENT_COLUMNS))


def time_split(
    events: pd.DataFrame,
    catalog: Mapping[str, Item],
    holdout_days: float,
    truth_types: Sequence[str] = ("PURCHASE",),
    cutoff: float | None = None,
    test_days: float | None = None,
) -> Split:
    """Train before the cut (default: the newest event minus `holdout_days`), truth after it.

    With an explicit earlier `cutoff` and `test_days`, the truth is only that many days after the
    cut: a validation window to tune settings on, leaving the final weeks untouched.
    """
    if events.empty:
        raise ValueError("the store has no item events to evaluate on: import some first")
    cut = float(events["occurred_at"].max()) - holdout_days * DAY if cutoff is None else cutoff
    end = cut + test_days * DAY if test_days else np.inf
    train = events[events["occurred_at"] < cut]
    after = (events["occurred_at"] >= cut) & (events["occurred_at"] < end)
    test = events[after & events["type"].isin(list(truth_types))]
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(cut))
    span = f"the {test_days:g} days after" if test_days else "after"
    return _split(
        f"time: train before {when} UTC, test {', '.join(truth_types)} {span}", train, test, catalog
    )


def pairs_split(
    events: pd.DataFrame, catalog: Mapping[str, Item], pairs: set[tuple[str, str]], name: str
) -> Split:
    """Train on every event not of a held-out (customer, item) pair; the pairs are the truth."""
    key = events["customer_id"].astype(str) + "\x1f" + events["item_id"].astype(str)
    held = {f"{c}\x1f{i}" for c, i in pairs}
    mask = key.isin(held).to_numpy()
    test = pd.DataFrame({"customer_id": [c for c, _ in pairs], "item_id": [i for _, i in pairs]})
    return _split(
        f"pairs: {len(pairs)} held-out (customer, item) pairs from {name}", events[~mask], test, catalog
    )


def read_pairs(path: str, sep: str | None = None) -> set[tuple[str, str]]:
    """(customer, item) from the first two columns of a tab/comma-separated file without header."""
    frame = pd.read_csv(path, sep=sep or r"[\t,]", engine="python", header=None, dtype=str, usecols=[0, 1])
    return set(zip(frame[0].str.strip(), frame[1].str.strip(), strict=True))


def _split(description: str, train: pd.DataFrame, test: pd.DataFrame, catalog: Mapping[str, Item]) -> Split:
    if train.empty:
        raise ValueError(f"{description}: nothing to train on before the cut-off")
    seen_items = set(train["item_id"])
    candidates = sorted(i for i in seen_items if not catalog or (i in catalog and catalog[i].active))
    history = set(train["customer_id"])
    truth: dict[str, set[str]] = {}
    cold: set[str] = set()
    for customer, item in zip(test["customer_id"], test["item_id"], strict=True):
        if customer in history:
            truth.setdefault(customer, set()).add(item)
        else:
            cold.add(customer)
    if not truth:
        raise ValueError(f"{description}: no customer with a history has anything in the test part")
    return Split(
        description=description,
        train=train.reset_index(drop=True),
        truth=dict(sorted(truth.items())),
        candidates=candidates,
        owned=owned_items(train, catalog),
        reference_time=float(train["occurred_at"].max()),
        cold_customers=len(cold),
    )


def owned_items(train: pd.DataFrame, catalog: Mapping[str, Item]) -> dict[str, set[str]]:
    """Bought, not returned, and not repeatable: what the service never offers a customer again."""
    bought = train[train["type"].isin(["PURCHASE", "RETURN"])]
    if bought.empty:
        return {}
    net = (
        bought.assign(n=np.where(bought["type"] == "PURCHASE", 1, -1))
        .groupby(["customer_id", "item_id"])["n"]
        .sum()
    )
    out: dict[str, set[str]] = {}
    for (customer, item), n in net.items():
        it = catalog.get(item)
        if n > 0 and (it is None or not it.repeatable):
            out.setdefault(customer, set()).add(item)
    return out


# -- scoring ----------------------------------------------------------------------------------------

Ranker = Callable[[str], Sequence[str]]  # customer -> items best first (already excluding owned)


def evaluate_method(
    name: str, description: str, split: Split, rank: Ranker, k: int, seconds_so_far: float = 0.0
) -> MethodResult:
    """Per-customer metrics of one method's top k, plus its catalogue coverage."""
    started = time.perf_counter()
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    shown: set[str] = set()
    for customer, relevant in split.truth.items():
        ranked = list(rank(customer))[:k]
        shown.update(ranked)
        values["precision"].append(metrics.precision_at_k(ranked, relevant, k))
        values["recall"].append(metrics.recall_at_k(ranked, relevant, k))
        values["map"].append(metrics.average_precision_at_k(ranked, relevant, k))
        values["ndcg"].append(metrics.ndcg_at_k(ranked, relevant, k))
        values["hit_rate"].append(metrics.hit_rate_at_k(ranked, relevant, k))
    return MethodResult(
        name=name,
        description=description,
        per_user={m: np.array(v) for m, v in values.items()},
        coverage=len(shown) / max(len(split.candidates), 1),
        seconds=seconds_so_far + time.perf_counter() - started,
    )


def bootstrap(
    methods: list[MethodResult], resamples: int = 1000, seed: int = 42, reference: str = "pipeline"
) -> dict[str, dict[str, tuple[float, float, float, float]]]:
    """Fills each method's intervals; returns the paired differences of `reference` against the others."""
    if not methods:
        return {}
    n = len(next(iter(methods[0].per_user.values())))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    means = {m.name: {k: v[idx].mean(axis=1) for k, v in m.per_user.items()} for m in methods}
    for m in methods:
        for k, v in m.per_user.items():
            lo, hi = np.percentile(means[m.name][k], [2.5, 97.5])
            m.intervals[k] = (float(v.mean()), float(lo), float(hi))
    out: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    if reference not in means:
        return out
    ref = next(x for x in methods if x.name == reference)
    for m in methods:
        if m.name == reference:
            continue
        out[m.name] = {}
        for k in m.per_user:
            diff = means[reference][k] - means[m.name][k]
            lo, hi = np.percentile(diff, [2.5, 97.5])
            point = float(ref.per_user[k].mean() - m.per_user[k].mean())
            out[m.name][k] = (point, float(lo), float(hi), float((diff > 0).mean()))
    return out
