"""Checks a running fleet through its front door (docs/deploy.md): a purchase tracked on replica A is
excluded by replica B, and a Forget on B is honoured by A, each timed.

    python -m bench.fleet_check --a 127.0.0.1:50061 --b 127.0.0.1:50062 \
        --keys /tmp/seenext-fleet/keys.json --customer cust-00011

It buys, for the customer, the first item B recommends that A stops offering once bought (an item
customers buy again stays offered, by design), then forgets the customer: destructive, so run it on a
demo or test store.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import grpc

from protos.seenext.v1 import (
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", default="127.0.0.1:50061", help="replica A (host:port)")
    parser.add_argument("--b", default="127.0.0.1:50062", help="replica B (host:port)")
    parser.add_argument("--keys", required=True, help="the fleet's keys file (SEENEXT_KEYS_FILE)")
    parser.add_argument(
        "--key-name", default="admin", help="the key to call with (needs track, recommend, forget)"
    )
    parser.add_argument(
        "--customer", default="cust-00011", help="customer id (CUSTOMER_ID) to buy for, then forget"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for B or A to follow")
    args = parser.parse_args(argv)
    with open(args.keys) as fh:
        keys = {k["name"]: k["key"] for k in json.load(fh)["keys"]}
    metadata: tuple[tuple[str, str | bytes], ...] = (("authorization", f"Bearer {keys[args.key_name]}"),)
    a, b = grpc.insecure_channel(args.a), grpc.insecure_channel(args.b)
    who = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=args.customer)

    def recommend(channel: grpc.Channel) -> tuple[str, list[str]]:
        reply = recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend(
            recommendation_pb2.RecommendRequest(who=who, channel=common_pb2.CHANNEL_WEB, k=20),
            metadata=metadata,
            timeout=10,
        )
        return reply.strategy, [i.item_id for i in reply.items]

    def buy(item: str) -> None:
        event = events_pb2.Event(
            event_id=str(uuid.uuid4()),
            type=common_pb2.EVENT_TYPE_PURCHASE,
            channel=common_pb2.CHANNEL_WEB,
            item_id=item,
            identifiers=[who],
        )
        event.occurred_at.GetCurrentTime()
        events_pb2_grpc.EventServiceStub(a).Track(
            events_pb2.TrackRequest(event=event), metadata=metadata, timeout=10
        )

    def wait(done: object, what: str) -> float:
        started = time.monotonic()
        while time.monotonic() - started < args.timeout:
            if done():  # type: ignore[operator]
                return time.monotonic() - started
            time.sleep(0.01)
        raise SystemExit(f"FAILED: {what} not seen within {args.timeout}s")

    strategy, items = recommend(b)
    print(f"B recommends for {args.customer} ({strategy}): {', '.join(items[:5])}, …")
    for item in items:
        started = time.monotonic()
        buy(item)
        if item in recommend(a)[1]:
            continue  # bought again by customers: offered again on purpose
        seconds = (
            time.monotonic() - started + wait(lambda i=item: i not in recommend(b)[1], "the purchase on B")
        )
        print(f"purchase of {item} tracked on A: excluded by B after {seconds:.3f}s")
        break
    else:
        raise SystemExit("FAILED: no recommended item stops being offered once bought")
    started = time.monotonic()
    privacy_pb2_grpc.PrivacyServiceStub(b).Forget(
        privacy_pb2.ForgetRequest(who=who), metadata=metadata, timeout=30
    )
    # Honoured once A answers as for someone it has never seen: from sources that read nothing of the
    # customer's own (not only "not personalised": complements of the purchase just tracked, or the
    # similar items of their own recent events, would still be built from the erased history).
    seconds = wait(lambda: _anonymous(recommend(a)[0]), "the Forget on A")
    print(
        f"Forget on B: A answers {recommend(a)[0]!r} after {time.monotonic() - started:.3f}s"
        f" ({seconds:.3f}s after the reply)"
    )
    return 0


# The sources (docs/channels.md) a request without the customer's history can be answered from: what
# A answers for a forgotten customer asked for by the same CUSTOMER_ID, with no page or basket.
_ANONYMOUS_SOURCES = frozenset({"popular", "holdout_popular", "exploration"})


def _anonymous(strategy: str) -> bool:
    return set(strategy.split("+")) <= _ANONYMOUS_SOURCES


if __name__ == "__main__":
    sys.exit(main())
