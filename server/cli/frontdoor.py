"""`seenext evaluate --front-door`: the service measured as a retailer meets it, through the public API.

`seenext evaluate` without the flag trains in process on what the importers stored, flags included.
Here a dataset file is read by its importer into memory (nothing is stored), split by the protocol of
models/evaluation/protocol.py, and sent to a running server the way a retailer would send it:
- the catalogue at the cut-off (items with a train event) through `UpsertItems`, with only what the
  dataset has: item id, title, category, brand, price, accessory links, attributes. Never
  `repeatable` or `active` (the H&M importer flags every article repeatable; that flag is dropped),
  no stock and no offer (no dataset here has them);
- the train events through `TrackBatch` in batches; the held-out events are never sent;
- then `Train`, then `Recommend(k)` for every evaluated customer (by default channel WEB, placement
  "home"), their CUSTOMER_ID as the identifier.
Nothing is filtered or re-ranked after the server answers: the service's row is its replies as
they came. Customer attributes are not sent: no RPC of the contract takes them.

The server is `--target host:port` (a running one, best empty: a non-empty store is reported), or
one started here: `python -m server serve` on a free loopback port with an empty temporary data
folder, API keys on (the admin key is read from the keys file it writes), stopped at the end.

Every baseline is computed in process from the same train split (models/evaluation/baselines.py);
all rows share the bootstrap resamples, and "service minus X" is a paired difference.

Times: by default every sent event is moved by the same whole number of days so that the newest
train event falls in the day before the server's clock: the retailer sends its history up to today
and asks today (the service reads its clock for recency and windows). `--no-shift` sends the dates
as they are. The baselines see the original dates (only differences of times matter to them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd

from clients.connection import open_channel
from models.domain import DAY, BatchResult, Event, Identifier, Item
from models.evaluation import baselines, protocol
from models.evaluation.protocol import MethodResult, Ranker, Report, Split
from models.settings import Settings
from server.cli.frontdoor_client import FrontDoor, Progress, started_server

DATASETS = ("hm", "movielens", "taobao")
METHODS = (
    "popularity",
    "popularity_recent",
    "repeat_then_popular",
    "viewed_not_bought",
    "lightfm_ids",
    "lightfm_defaults",
    "service",
)
DESCRIPTIONS = {
    "popularity": "most interest over the whole train period, without what the customer bought",
    "popularity_recent": "the same over the last {recent_days:g} days before the cut-off",
    "repeat_then_popular": "what the customer bought (latest first), then popularity; nothing excluded",
    "viewed_not_bought": "carted, then viewed, not bought (latest first), then popularity",
    "lightfm_ids": "LightFM alone, the service's hyper-parameters: ids only, no weights, features or rules",
    "lightfm_defaults": "LightFM alone as in its MovieLens example: WARP, 10 components, 10 epochs",
    "service": "seenext through its public API: UpsertItems, TrackBatch, Train, Recommend",
}
CLICK_TYPES = frozenset({"VIEW", "CLICK", "ADD_TO_CART"})  # viewed_not_bought needs some of these


# -- the dataset, as a retailer holds it -------------------------------------------------------------


class _Collector:
    """An importer's `Target` that keeps what it is given, so a dataset is read by the same code that
    imports it, and nothing is written anywhere."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.events: list[Event] = []

    def upsert_items(self, items: Sequence[Item]) -> int:
        self.items.extend(items)
        return len(items)

    def track_batch(self, events: Sequence[Event]) -> BatchResult:
        self.events.extend(events)
        return BatchResult(accepted=len(events), duplicates=0, rejected=[])

    def upsert_customer_attributes(self, rows: Sequence[tuple[Identifier, Mapping[str, str]]]) -> int:
        return 0  # no RPC carries customer attributes: the front door cannot send them


def load(kind: str, source: Path) -> tuple[pd.DataFrame, dict[str, Item]]:
    """The dataset's events (protocol.EVENT_COLUMNS, the dataset's own customer ids) and items, flags
    removed: `repeatable` unset (learned), `active` left to the contract's default."""
    sink = _Collector()
    if kind == "hm":
        from models.importers.hm import import_hm

        import_hm(source, sink)
    elif kind == "movielens":
        from models.importers.movielens import import_movielens

        import_movielens(source, sink)
    elif kind == "taobao":
        from models.importers.taobao import import_taobao

        import_taobao(source, sink)
    else:
        raise ValueError(f"--dataset {kind!r}: expected one of {', '.join(DATASETS)}")
    rows = [
        (
            e.event_id,
            e.identifiers[0].value,
            e.channel,
            e.type,
            e.item_id,
            e.quantity,
            e.price,
            e.store_id,
            e.order_id,
            e.recommendation_id,
            e.occurred_at,
            json.dumps(e.attributes, sort_keys=True) if e.attributes else None,
        )
        for e in sink.events
    ]
    frame = protocol.events_frame(rows).sort_values("occurred_at", kind="stable").reset_index(drop=True)
    items = {it.item_id: dataclasses.replace(it, repeatable=None, active=True) for it in sink.items}
    return frame, items


def shift_for(split: Split, now: float) -> float:
    """Whole days that move the newest train event into the day before `now`."""
    return math.floor((now - split.reference_time) / DAY) * DAY


# -- the run ------------------------------------------------------------------------------------------


def _baseline(name: str, split: Split, settings: Settings, k: int, recent_days: float) -> Ranker:
    if name == "popularity":
        return baselines.popularity(split, settings, k)
    if name == "popularity_recent":
        return baselines.popularity_recent(split, settings, k, recent_days)
    if name == "repeat_then_popular":
        return baselines.repeat_then_popular(split, settings, k)
    if name == "viewed_not_bought":
        return baselines.viewed_not_bought(split, settings, k)
    if name == "lightfm_ids":
        return baselines.lightfm_alone(split, settings, k)
    if name == "lightfm_defaults":
        return baselines.lightfm_alone(split, settings, k, defaults=True)
    raise ValueError(f"method {name!r} is not one of {', '.join(METHODS)}")


def default_methods(split: Split) -> tuple[str, ...]:
    """Every method; the clickstream baseline only where the train part has views or carts."""
    clicks = bool(CLICK_TYPES & set(split.train["type"].unique()))
    return tuple(m for m in METHODS if m != "viewed_not_bought" or clicks)


def sample(split: Split, customers: int | None, seed: int) -> Split:
    """The split with `customers` of its evaluated customers drawn at random (all, if None)."""
    if customers is None or customers >= len(split.truth):
        return split
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(np.array(sorted(split.truth), dtype=object), size=customers, replace=False))
    return dataclasses.replace(split, truth={c: t for c, t in split.truth.items() if c in chosen})


def run(
    door: FrontDoor | None,
    dataset: str,
    split: Split,
    catalog: Mapping[str, Item],
    settings: Settings,
    k: int,
    *,
    methods: Sequence[str] = METHODS,
    recent_days: float = 7.0,
    channel: str = "WEB",
    placement: str = "home",
    resamples: int = 1000,
    shift: bool = True,
    flag_repeatable: bool = False,
    progress: Progress = lambda stage, done, total: None,
) -> tuple[Report, dict[str, Any]]:
    """Every method on the split; the service through `door`. Returns the report and the conditions
    of the service's row (what was sent, what the server said, how it answered). `door` may be
    None when "service" is not among the methods."""
    results: list[MethodResult] = []
    conditions: dict[str, Any] = {
        "channel": channel,
        "placement": placement,
        "catalogue": "every item flagged repeatable (reference run)" if flag_repeatable else "no flags",
    }
    for name in methods:
        started = time.perf_counter()
        description = DESCRIPTIONS[name].format(recent_days=recent_days)
        if name != "service":
            progress(name, 0, 0)
            rank = _baseline(name, split, settings, k, recent_days)
            results.append(
                protocol.evaluate_method(name, description, split, rank, k, time.perf_counter() - started)
            )
            continue
        if door is None:
            raise ValueError("the service's row needs a server to ask")
        before = door.status()
        moved = shift_for(split, time.time()) if shift else 0.0
        items = [catalog[i] for i in split.candidates if i in catalog]
        sent = door.send(items, split.train, moved, progress, True if flag_repeatable else None)
        version, train_seconds = door.train()
        progress("train", 1, 1)
        after = door.status()
        asked = time.perf_counter()
        lists, strategies, errors = door.recommend_all(list(split.truth), k, channel, placement)
        progress("recommend", len(lists), len(lists))
        conditions.update(
            {
                "events_in_store_before": before.events_stored,
                "time_shift_days": round(moved / DAY),
                "sent": dataclasses.asdict(sent),
                "model": {
                    "version": version,
                    "customers": after.customers,
                    "items": after.items,
                    "interactions": after.interactions,
                    "train_seconds": round(train_seconds, 2),
                },
                "recommend_seconds": round(time.perf_counter() - asked, 2),
                "strategies": dict(strategies.most_common()),
                "empty_lists": sum(1 for v in lists.values() if not v),
                "short_lists": sum(1 for v in lists.values() if 0 < len(v) < k),
                "errors": errors,
            }
        )
        results.append(
            protocol.evaluate_method(
                name,
                description + f" (channel {channel}, placement {placement})",
                split,
                lists.__getitem__,
                k,
                time.perf_counter() - started,
            )
        )
    comparisons = protocol.bootstrap(results, resamples, seed=settings.seed, reference="service")
    report = Report(
        dataset=dataset,
        split=split.description,
        k=k,
        customers=len(split.truth),
        cold_customers=split.cold_customers,
        candidates=len(split.candidates),
        train_events=len(split.train),
        methods=results,
        comparisons=comparisons,
        settings={},
        bootstrap=resamples,
        reference="service",
    )
    return report, conditions


def table(report: Report, conditions: Mapping[str, Any], headline: str) -> str:
    k = report.k
    lines = [
        f"{report.dataset} — {report.split}",
        (
            f"k={k}, {report.customers} customers evaluated "
            f"({report.cold_customers} without history left out), "
            f"{report.candidates} candidate items, {report.train_events} train events, "
            f"95 % bootstrap intervals ({report.bootstrap} resamples over customers)"
        ),
    ]
    if "sent" in conditions:
        sent, model = conditions["sent"], conditions["model"]
        lines.append(
            f"service: {conditions['server']}; catalogue: {conditions['catalogue']}; "
            f"{sent['items']} items and {sent['events']} events sent "
            f"({sent['accepted']} accepted, {sent['duplicates']} duplicates, {sent['rejected']} rejected), "
            f"dates moved {conditions['time_shift_days']} days; model {model['customers']} customers x "
            f"{model['items']} items, trained in {model['train_seconds']:.0f}s; Recommend channel "
            f"{conditions['channel']}, placement {conditions['placement']}: strategies "
            + ", ".join(f"{s} {n}" for s, n in conditions["strategies"].items())
            + f"; {conditions['empty_lists']} empty and {conditions['short_lists']} short lists"
        )
    lines.append("")
    head = (
        f"{'method':<21}"
        + "".join(f"{m + '@' + str(k):<26}" for m in protocol.METRICS)
        + f"{'coverage':>9}{'seconds':>9}"
    )
    lines += [head, "-" * len(head)]
    for m in report.methods:
        cells = "".join(
            f"{v:.4f} [{lo:.4f}, {hi:.4f}]".ljust(26)
            for v, lo, hi in (m.intervals[x] for x in protocol.METRICS)
        )
        lines.append(f"{m.name:<21}{cells}{m.coverage:>9.3f}{m.seconds:>9.1f}")
    if report.comparisons:
        lines += ["", f"service minus each method (paired bootstrap), {headline}@{k}:"]
        for other, by_metric in report.comparisons.items():
            d, lo, hi, p = by_metric[headline]
            lines.append(f"  vs {other:<20} {d:+.4f} [{lo:+.4f}, {hi:+.4f}] above 0 in {p:.0%}")
    return "\n".join(lines)


def _split_of(args: argparse.Namespace, frame: pd.DataFrame, catalog: Mapping[str, Item]) -> Split:
    if args.test_file:
        return protocol.pairs_split(
            frame, catalog, protocol.read_pairs(str(args.test_file)), args.test_file.name
        )
    cutoff = pd.Timestamp(args.cutoff, tz="UTC").timestamp() if args.cutoff else None
    truth_types = [t.strip().upper() for t in args.truth_types.split(",") if t.strip()]
    return protocol.time_split(frame, catalog, args.holdout_days, truth_types, cutoff, args.test_days)


def cmd_front_door(settings: Settings, args: argparse.Namespace, overrides: Mapping[str, str]) -> int:
    """`seenext evaluate --front-door`: `settings` are the baselines' (with --set applied); `overrides`
    the SEENEXT_ variables of --set, given to a server started here."""
    if not args.dataset or not args.source:
        raise SystemExit(
            "--front-door needs --dataset (hm, movielens or taobao) and --source (its file/folder)"
        )
    if args.metric not in protocol.METRICS:
        raise SystemExit(f"--metric {args.metric!r}: expected one of {', '.join(protocol.METRICS)}")
    started = time.perf_counter()
    frame, catalog = load(args.dataset, args.source)
    try:
        split = _split_of(args, frame, catalog)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    everyone = len(split.truth)
    split = sample(split, args.customers, settings.seed)
    methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods else default_methods(split)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"--methods: {', '.join(unknown)} not among {', '.join(METHODS)}")
    name = args.name or f"{args.dataset} ({args.source.name}), front door"
    print(
        f"{name}: {split.description}; {len(split.truth):,} of {everyone:,} customers evaluated, "
        f"{len(split.candidates):,} candidates",
        file=sys.stderr,
    )

    def progress(stage: str, done: int, total: int) -> None:
        if total and done < total:
            return  # a stage's end is enough; its batches stay quiet
        what = f"{stage} {done:,}" if total else f"{stage} …"
        print(f"  {time.perf_counter() - started:5.0f}s {what}", file=sys.stderr, flush=True)

    def measure(door: FrontDoor | None) -> tuple[Report, dict[str, Any]]:
        return run(
            door,
            name,
            split,
            catalog,
            settings,
            args.k,
            methods=methods,
            recent_days=args.recent_days,
            channel=args.channel.upper(),
            placement=args.placement,
            resamples=args.bootstrap,
            shift=not args.no_shift,
            flag_repeatable=args.flag_repeatable,
            progress=progress,
        )

    report, conditions = _through_a_server(args, overrides, "service" in methods, measure)
    conditions.update(
        {
            "dataset": args.dataset,
            "source": str(args.source),
            "customers_evaluated": len(split.truth),
            "customers_with_truth": everyone,
            "seconds": round(time.perf_counter() - started, 1),
            "overrides": dict(overrides),
        }
    )
    if conditions.get("events_in_store_before"):
        print(
            f"  note: the target held {conditions['events_in_store_before']:,} events before the run",
            file=sys.stderr,
        )
    out = args.out or settings.data_dir / f"frontdoor-{args.dataset}"
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_name(out.name + ".json")
    json_path.write_text(json.dumps({**report.as_dict(), "front_door": conditions}, indent=2))
    print(table(report, conditions, args.metric))
    print(f"\nwrote {json_path} ({conditions['seconds']:.0f}s in all)")
    return 0


Measure = Callable[[FrontDoor | None], tuple[Report, dict[str, Any]]]


def _through_a_server(
    args: argparse.Namespace, overrides: Mapping[str, str], needed: bool, measure: Measure
) -> tuple[Report, dict[str, Any]]:
    """`measure` with a door to --target, to a server started here, or (no service row) none."""
    try:
        if not needed:
            report, conditions = measure(None)
            conditions["server"] = "none (no service row asked for)"
            return report, conditions
        if args.target:
            if overrides:
                print(
                    "  --set applies to the baselines only: the target runs its own settings", file=sys.stderr
                )
            return _measured(args.target, args.api_key, f"the running server {args.target}", measure)
        with started_server(overrides, sys.stderr) as (target, key):
            server = "an empty server started here (python -m server serve, API keys on)"
            return _measured(target, key, server, measure)
    except grpc.RpcError as err:
        raise SystemExit(f"the server refused a call: {err.code().name}: {err.details()}") from None
    except (ValueError, RuntimeError, TimeoutError) as exc:  # a bad target or key, a failed start
        raise SystemExit(f"seenext: {exc}") from None


def _measured(target: str, key: str | None, server: str, measure: Measure) -> tuple[Report, dict[str, Any]]:
    with open_channel(target, api_key=key) as channel:
        door = FrontDoor(channel)
        door.wait_until_serving()
        report, conditions = measure(door)
    conditions["server"] = server
    return report, conditions
