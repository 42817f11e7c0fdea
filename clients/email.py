"""The e-mail system's client: offers for a campaign list, and who is due for a reminder.

    python -m clients.email offers --customer cust-00001 --customer cust-00002
    python -m clients.email offers --file campaign.txt --show 3        # one customer id per line
    python -m clients.email reminders --from 2026-02-10 --to 2026-02-17

Offers come through `RecommendBatch` (server streaming): results are yielded as they arrive, and a
campaign list of any length is sent in chunks, so memory stays bounded on both sides. Customers
without e-mail marketing consent come back with no items (strategy "no_consent").
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
import time
from collections.abc import Iterable, Iterator, Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clients.connection import DEFAULT_TARGET, customer, item_lines, open_channel, run_command
from protos.seenext.v1 import (
    common_pb2,
    insights_pb2,
    insights_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)

CHUNK = 10_000  # customers per RecommendBatch call


class EmailClient:
    def __init__(self, channel: grpc.Channel, timeout: float | None = 3600.0) -> None:
        """The caller's key travels with the channel (`open_channel`)."""
        self._recs = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        self._insights = insights_pb2_grpc.InsightsServiceStub(channel)
        self._timeout = timeout

    def offers(
        self,
        customer_ids: Iterable[str],
        k: int = 5,
        placement: str = "newsletter",
        chunk_size: int = CHUNK,
        explain: bool = True,
    ) -> Iterator[recommendation_pb2.RecommendResponse]:
        """One response per customer, in the order given, as the server produces them."""
        ids = iter(customer_ids)
        while chunk := list(itertools.islice(ids, chunk_size)):
            request = recommendation_pb2.RecommendBatchRequest(
                who=[customer(c) for c in chunk],
                channel=common_pb2.CHANNEL_EMAIL,
                placement=placement,
                k=k,
                explain=explain,
            )
            stream = self._recs.RecommendBatch(request, timeout=self._timeout)
            try:
                yield from stream
            finally:
                stream.cancel()  # a caller that stops reading stops the server's work too

    def reminders(
        self, window_start: dt.datetime, window_end: dt.datetime, k: int = 3
    ) -> Iterator[insights_pb2.Reminder]:
        """Customers due for a reminder in the window (e-mail rules applied), streamed."""
        request = insights_pb2.DueRemindersRequest(
            window_start=_timestamp(window_start),
            window_end=_timestamp(window_end),
            k=k,
            channel=common_pb2.CHANNEL_EMAIL,
        )
        stream = self._insights.DueReminders(request, timeout=self._timeout)
        try:
            yield from stream
        finally:
            stream.cancel()


def _timestamp(when: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(when if when.tzinfo else when.replace(tzinfo=dt.UTC))
    return ts


def _day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _campaign(args: argparse.Namespace) -> Iterator[str]:
    yield from args.customer
    if args.file:
        with open(args.file) as fh:
            yield from (line.strip() for line in fh if line.strip())
    if args.prefix:
        yield from (f"{args.prefix}{n:0{args.width}d}" for n in range(args.first, args.first + args.count))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="E-mail campaign offers and reminders from seenext")
    p.add_argument("--target", default=DEFAULT_TARGET)
    sub = p.add_subparsers(dest="command", required=True)
    o = sub.add_parser("offers", help="offers for a campaign list (RecommendBatch)")
    o.add_argument("--customer", action="append", default=[], help="a customer id (repeatable)")
    o.add_argument("--file", help="a file of customer ids, one per line")
    o.add_argument("--prefix", default="", help="generate ids PREFIX + number, e.g. cust-")
    o.add_argument("--first", type=int, default=1)
    o.add_argument("--count", type=int, default=0)
    o.add_argument("--width", type=int, default=5, help="digits of the generated numbers")
    o.add_argument("--show", type=int, default=5, help="print the offers of the first N customers with items")
    o.add_argument("-k", type=int, default=4)
    r = sub.add_parser("reminders", help="customers due for a reminder in a window (DueReminders)")
    r.add_argument("--from", dest="start", required=True, type=_day, help="window start, e.g. 2026-02-10")
    r.add_argument("--to", dest="end", required=True, type=_day, help="window end, e.g. 2026-02-17")
    r.add_argument("--show", type=int, default=5)
    r.add_argument("-k", type=int, default=3)
    args = p.parse_args(argv)
    with open_channel(args.target) as channel:
        client = EmailClient(channel)
        if args.command == "offers":
            _print_offers(client, args)
        else:
            _print_reminders(client, args)


def _print_offers(client: EmailClient, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    total = with_items = shown = 0
    strategies: dict[str, int] = {}
    for rec in client.offers(_campaign(args), k=args.k):
        total += 1
        strategies[rec.strategy] = strategies.get(rec.strategy, 0) + 1
        if rec.items:
            with_items += 1
            if shown < args.show:
                shown += 1
                print(f"{rec.customer_id} — {rec.strategy}")
                print("\n".join(item_lines(list(rec.items))))
    elapsed = time.perf_counter() - started
    mix = ", ".join(f"{s}: {n}" for s, n in sorted(strategies.items(), key=lambda kv: -kv[1]))
    print(
        f"\n{total} customers, {with_items} with offers, in {elapsed:.2f}s"
        f" ({total / elapsed if elapsed else 0:.0f} customers/s); strategies: {mix}",
        file=sys.stderr,
    )


def _print_reminders(client: EmailClient, args: argparse.Namespace) -> None:
    total = 0
    for reminder in client.reminders(args.start, args.end, k=args.k):
        total += 1
        if total <= args.show:
            print(f"{reminder.customer_id} — {reminder.reason}")
            print("\n".join(item_lines(list(reminder.items))))
    print(f"\n{total} customers due between {args.start:%d %b %Y} and {args.end:%d %b %Y}", file=sys.stderr)


if __name__ == "__main__":
    run_command(main)
