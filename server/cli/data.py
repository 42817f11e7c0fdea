"""`seenext import …` and `seenext evaluate`: real data in, honest figures out.

Kept apart from cli.py (which only registers these commands) so each stays small.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from models.domain import DAY
from models.service import Seenext
from models.settings import Settings, _parse, variable


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub.add_parser(
        "import", help="import a dataset into the store (hm, movielens, taobao, csv) with a progress bar"
    )
    kinds = p.add_subparsers(dest="kind", required=True)

    k = kinds.add_parser(
        "hm", help="H&M Kaggle files: transactions*, customers*, articles* (.csv[.gz]/.parquet)"
    )
    k.add_argument("folder", type=Path)
    k.add_argument("--all-articles", action="store_true", help="the whole catalogue, not only articles sold")
    k.add_argument("--max-rows", type=int, help="only the first N transaction rows (a slice)")

    k = kinds.add_parser("movielens", help="MovieLens 100k: u.data (or another ratings file), u.item, u.user")
    k.add_argument("folder", type=Path)
    k.add_argument("--ratings", default="u.data", help="ratings file in the folder (default u.data)")
    k.add_argument("--max-rows", type=int, help="only the first N ratings (a slice)")

    k = kinds.add_parser(
        "taobao",
        help="Taobao UserBehavior clickstream: user,item,category,behavior,timestamp rows (.csv[.gz])",
    )
    k.add_argument("file", type=Path)
    k.add_argument("--max-rows", type=int, help="only the first N rows (a slice)")

    k = kinds.add_parser("csv", help="a retailer's own export (format: docs/import.md)")
    k.add_argument("events", type=Path, help="events CSV (.csv or .csv.gz)")
    k.add_argument("--items", type=Path, help="items CSV")
    k.add_argument("--customers", type=Path, help="customer attributes CSV")
    k.add_argument("--default-channel", default="WEB", help="channel of rows without one (default WEB)")
    k.add_argument(
        "--default-type", default="PURCHASE", help="event type of rows without one (default PURCHASE)"
    )
    for each in kinds.choices.values():  # what every import takes
        common(each)
        each.add_argument("--train", action="store_true", help="train a model when the import is done")
        each.set_defaults(run=cmd_import)

    p = sub.add_parser("evaluate", help="pipeline vs baselines on a hold-out: table, JSON and PNG chart")
    common(p)
    p.add_argument("--name", help="dataset name for the report (default: the data folder's name)")
    p.add_argument("--holdout-days", type=float, default=28.0, help="time split: days held out at the end")
    p.add_argument(
        "--cutoff", help="time split: explicit cut-off (ISO date/time, UTC) instead of --holdout-days"
    )
    p.add_argument(
        "--test-days",
        type=float,
        help="time split: test only this many days after the cut-off (a validation window)",
    )
    p.add_argument(
        "--test-file",
        type=Path,
        help="pairs split: held-out (customer, item) pairs, first two columns (e.g. MovieLens ua.test)",
    )
    p.add_argument("-k", "--k", type=int, default=10, help="list length (default 10)")
    p.add_argument(
        "--truth-types", default="PURCHASE", help="event types to find after the cut (default PURCHASE)"
    )
    p.add_argument("--recent-days", type=float, default=7.0, help="window of popularity_recent (default 7)")
    p.add_argument(
        "--methods",
        help="comma-separated subset of: "
        + ", ".join(_methods())
        + " (with --front-door: its own list, docs/evaluation.md)",
    )
    p.add_argument("--channel", default="WEB", help="channel the pipeline is asked for (default WEB)")
    p.add_argument(
        "--placement",
        default="home",
        help="placement the pipeline is asked for (default home: owned complements, then the model)",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument(
        "--stale-days",
        type=float,
        default=0.0,
        help="also rank with a model this many days older than the cut-off, with and without fold-in",
    )
    p.add_argument(
        "--out", type=Path, help="output prefix for .json and .png (default <data-dir>/evaluation)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting for this run, e.g. --set recency_half_life_days=30 (repeatable)",
    )
    door = p.add_argument_group(
        "front door",
        "drive a running server through the public API only, with the dataset as a retailer would send"
        " it (no repeatable or active flags): docs/evaluation.md",
    )
    door.add_argument(
        "--front-door",
        action="store_true",
        help="evaluate through UpsertItems, TrackBatch, Train and Recommend instead of in process",
    )
    door.add_argument("--dataset", choices=("hm", "movielens", "taobao"), help="the dataset's importer")
    door.add_argument("--source", type=Path, help="the dataset's folder (hm, movielens) or file (taobao)")
    door.add_argument(
        "--target",
        help="host:port of a running server (best empty); default: start an empty one on a free port",
    )
    door.add_argument("--api-key", help="key for --target with the scopes catalog, track, train, recommend")
    door.add_argument("--customers", type=int, help="evaluate this many customers drawn at random (seeded)")
    door.add_argument(
        "--no-shift",
        action="store_true",
        help="send the original dates (default: moved by whole days so the history ends today)",
    )
    door.add_argument(
        "--metric", default="map", help="metric of the paired differences in the table (default map)"
    )
    door.add_argument(
        "--flag-repeatable",
        action="store_true",
        help="send repeatable=true on every item: a reference run, not a retailer's catalogue",
    )
    p.set_defaults(run=cmd_evaluate)


def add_insight_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub.add_parser("traffic", help="simulate shoppers reacting to recommendations (for the reports)")
    common(p)
    p.add_argument("--customers", type=int, default=500, help="how many stored customers visit (default 500)")
    p.add_argument("--visits", type=int, default=2, help="visits per customer (default 2)")
    p.add_argument(
        "--holdout", type=float, help="share kept on the baseline (SEENEXT_HOLDOUT; use the server's)"
    )
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(run=cmd_traffic)

    p = sub.add_parser("report", help="ChannelReport or FunnelReport of the stored traffic, as a table")
    common(p)
    p.add_argument("which", choices=("channels", "funnels"))
    p.add_argument("--days", type=float, default=30.0, help="period: the last N days (default 30)")
    p.add_argument(
        "--attribution-days", type=int, default=0, help="channels: window (0 = SEENEXT_ATTRIBUTION_DAYS)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=cmd_report)


def cmd_traffic(settings: Settings, args: argparse.Namespace) -> int:
    from models.demo.traffic import simulate

    if args.holdout is not None:
        settings = dataclasses.replace(settings, holdout=args.holdout)
    service = Seenext(settings)
    try:
        # Shoppers who log in: customers with an account id (anonymous devices are not recognised by it).
        customers = service.account_ids(args.customers)
        if not customers:
            raise SystemExit(
                "no customers with a CUSTOMER_ID in the store: import data or run `seenext demo` first"
            )
        started = time.perf_counter()
        tally = simulate(service, customers, visits_per_customer=args.visits, seed=args.seed)
    finally:
        service.close()
    served = sum(tally.recommendations.values())
    print(
        f"{len(customers):,} customers, {served:,} recommendations, {tally.events:,} events, "
        f"{sum(tally.purchases.values()):,} purchases of recommended items, "
        f"hold-out share {settings.holdout:g}, "
        f"{time.perf_counter() - started:.1f}s"
    )
    if settings.holdout <= 0:
        print(
            "hint: with SEENEXT_HOLDOUT=0 (or --holdout 0) there is no hold-out arm to measure uplift against"
        )
    return 0


def cmd_report(settings: Settings, args: argparse.Namespace) -> int:
    service = Seenext(settings)
    try:
        end = time.time()
        start = end - args.days * DAY
        if args.which == "channels":
            report = service.channel_report(start, end, args.attribution_days)
            if args.json:
                print(json.dumps(_plain(report), indent=2))
                return 0
            print(
                f"{'channel':<8}{'arm':<14}{'recs':>7}{'custs':>7}{'impr':>7}{'clicks':>7}{'ctr':>7}"
                f"{'conv':>6}{'conv/rec':>9}{'revenue':>10}  bought in"
            )
            for r in report.rows:
                where = ", ".join(f"{c} {n}" for c, n in sorted(r.conversions_in_channel.items()))
                print(
                    f"{r.channel:<8}{r.arm:<14}{r.recommendations:>7}{r.customers:>7}{r.impressions:>7}"
                    f"{r.clicks:>7}{r.click_through:>7.3f}{r.conversions:>6}{r.conversion_rate:>9.3f}"
                    f"{r.revenue:>10.2f}  {where}"
                )
            for u in report.uplift:
                print(
                    f"uplift {u.channel}: {u.uplift:+.1%} [{u.ci_low:+.1%}, {u.ci_high:+.1%}] "
                    f"(conversions per recommendation {u.personalised_rate:.3f} "
                    f"vs hold-out {u.holdout_rate:.3f})"
                )
            for warning in report.warnings:
                print(f"warning: {warning}")
        else:
            funnels = service.funnel_report(start, end)
            if args.json:
                print(json.dumps(_plain(funnels), indent=2))
                return 0
            for f in funnels.funnels:
                print(f.name)
                for s in f.steps:
                    where = ", ".join(f"{c} {n}" for c, n in s.channels.items())
                    print(f"  {s.name:<14}{s.customers:>7}  {s.conversion_from_previous:>6.1%}  {where}")
    finally:
        service.close()
    return 0


def _plain(obj: object) -> object:
    """Dataclasses (and Counters) to JSON-ready dicts, properties included where they matter."""
    if dataclasses.is_dataclass(obj):
        out = {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        for extra in ("click_through", "conversion_rate"):
            if hasattr(obj, extra):
                out[extra] = getattr(obj, extra)
        return out
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _methods() -> tuple[str, ...]:
    from models.evaluation.methods import METHODS

    return METHODS


class ProgressBar:
    """A one-line bar on stderr per stage: `events [#########.....] 61% 17,500/28,768`."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage and self.stage:
            self.stream.write("\n")
        self.stage = stage
        share = done / total if total else 1.0
        filled = int(self.width * share)
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r{stage:<10} [{bar}] {share:4.0%} {done:,}/{total:,}")
        self.stream.flush()

    def close(self) -> None:
        if self.stage:
            self.stream.write("\n")


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:

    service = Seenext(settings)
    bar = ProgressBar()
    try:
        target = service
        if args.kind == "hm":
            from models.importers.hm import import_hm

            summary = import_hm(
                args.folder, target, all_articles=args.all_articles, max_rows=args.max_rows, progress=bar
            )
        elif args.kind == "movielens":
            from models.importers.movielens import import_movielens

            summary = import_movielens(
                args.folder, target, ratings_file=args.ratings, max_rows=args.max_rows, progress=bar
            )
        elif args.kind == "taobao":
            from models.importers.taobao import import_taobao

            summary = import_taobao(args.file, target, max_rows=args.max_rows, progress=bar)
        else:
            from models.importers.generic_csv import import_csv

            summary = import_csv(
                args.events,
                target,
                items_path=args.items,
                customers_path=args.customers,
                default_channel=args.default_channel,
                default_type=args.default_type,
                progress=bar,
            )
        bar.close()
        print(summary_text(summary.as_dict()))
        if args.train:
            info = service.train()
            print(
                f"trained model {info.version}: {info.customers:,} customers, {info.items:,} items, "
                f"{info.interactions:,} interactions"
            )
    finally:
        service.close()
    return 0


def summary_text(s: dict[str, Any]) -> str:
    def day(t: float | None) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(t)) if t is not None else "-"

    lines = [
        f"imported {s['source']}",
        f"  rows read        {s['rows_read']:,}"
        + (f" ({s['unreadable']:,} unreadable, not events)" if s.get("unreadable") else ""),
        (
            f"  events           {s['events']:,} ({s['accepted']:,} new, {s['duplicates']:,} already stored, "
            f"{s['rejected']:,} rejected)"
        ),
        f"  customers        {s['customers']:,} ({s['customer_attributes']:,} with attributes)",
        f"  items            {s['items']:,}",
        "  by channel       " + ", ".join(f"{k} {v:,}" for k, v in s["by_channel"].items()),
        "  by type          " + ", ".join(f"{k} {v:,}" for k, v in s["by_type"].items()),
        f"  period           {day(s['first_at'])} .. {day(s['last_at'])}",
        f"  took             {s['seconds']:.1f}s ({s['events_per_second']:,} events/s)",
    ]
    lines += [f"  rejected: {r}" for r in s["rejections"]]
    return "\n".join(lines)


def _with_overrides(settings: Settings, pairs: list[str]) -> Settings:
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().lower().removeprefix("seenext_")
        if not sep or name not in fields:
            raise SystemExit(
                f"--set {pair!r}: expected NAME=VALUE with NAME one of the settings (seenext settings)"
            )
        try:
            values[name] = _parse(name, raw.strip(), fields[name].default)
        except ValueError as exc:
            raise SystemExit(f"--set: {exc}") from None
    return dataclasses.replace(settings, **values)


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from models.evaluation import methods as known_methods
    from models.evaluation import output, pipeline, protocol

    settings = _with_overrides(settings, args.set)
    if args.front_door:
        from server.cli.frontdoor import cmd_front_door

        overrides = {}
        for pair in args.set:
            name, _, raw = pair.partition("=")
            overrides[variable(name.strip().lower().removeprefix("seenext_"))] = raw.strip()
        return cmd_front_door(settings, args, overrides)
    known = known_methods.METHODS + known_methods.STALE_METHODS
    methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods else known_methods.METHODS
    if args.stale_days > 0 and not args.methods:
        methods += known_methods.STALE_METHODS
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise SystemExit(f"--methods: {', '.join(unknown)} not among {', '.join(known)}")
    if any(m in known_methods.STALE_METHODS for m in methods) and args.stale_days <= 0:
        raise SystemExit("--methods: pipeline_stale needs --stale-days > 0")
    service = Seenext(settings)
    try:
        events = protocol.events_frame(service.item_events(protocol.EVENT_COLUMNS))
        catalog = {it.item_id: it for it in service.all_items()}
        attributes = service.all_customer_attributes()
    finally:
        service.close()
    name = args.name or settings.data_dir.resolve().name
    truth_types = [t.strip().upper() for t in args.truth_types.split(",") if t.strip()]
    try:
        if args.test_file:
            split = protocol.pairs_split(
                events, catalog, protocol.read_pairs(str(args.test_file)), args.test_file.name
            )
        else:
            cutoff = None
            if args.cutoff:
                import pandas as pd

                cutoff = pd.Timestamp(args.cutoff, tz="UTC").timestamp()
            split = protocol.time_split(
                events, catalog, args.holdout_days, truth_types, cutoff, args.test_days
            )
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    print(
        f"{name}: {split.description}; {len(split.truth):,} customers, {len(split.candidates):,} candidates",
        file=sys.stderr,
    )
    try:
        report = pipeline.run(
            name,
            split,
            catalog,
            attributes,
            settings,
            args.k,
            recent_days=args.recent_days,
            methods=methods,
            channel=args.channel.upper(),
            placement=args.placement,
            resamples=args.bootstrap,
            stale_days=args.stale_days,
            progress=lambda m: print(f"  {m} …", file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    out = args.out or settings.data_dir / "evaluation"
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_name(out.name + ".json")
    json_path.write_text(report.to_json())
    png_path = output.chart(report, out.with_name(out.name + ".png"))
    print(output.table(report))
    print(f"\nwrote {json_path} and {png_path}")
    return 0
