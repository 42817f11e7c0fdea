"""The till's client: accessory suggestions for the basket at checkout, inside the till's deadline.

    python -m clients.pos --store store-01 --basket sku-00012
    python -m clients.pos --store store-01 --basket sku-00012 --loyalty-card LC-000123 --deadline-ms 150

The till never waits. Every call carries a deadline (150 ms by default) and never waits for a
connection; when the deadline passes, the server is down or answers with an error, `suggest`
returns at once with `fallback=True` and, in this order:

1. ``source="cache"``: the server's last answer for the same basket in this store (kept for
   `cache_seconds`, at most `cache_size` baskets) — stock may have moved since;
2. ``source="catalogue"``: accessories of the basket's items from the till's own product master
   (the `accessories` mapping, main item -> accessory ids, e.g. loaded with --accessories FILE.json),
   basket items left out, without a stock check;
3. ``source="none"``: no suggestions.

`detail` says why (the gRPC status name, e.g. DEADLINE_EXCEEDED or UNAVAILABLE).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc

from clients.connection import DEFAULT_TARGET, loyalty_card, open_channel, price, run_command
from protos.seenext.v1 import common_pb2, recommendation_pb2, recommendation_pb2_grpc

DEFAULT_DEADLINE = 0.150


@dataclass(frozen=True)
class Suggestion:
    item_id: str
    title: str = ""
    price: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class Suggestions:
    items: list[Suggestion]
    fallback: bool = False  # True when the server did not answer in time (or at all)
    source: str = "server"  # "server", "cache", "catalogue" or "none"
    detail: str = ""  # why the fallback was used: the gRPC status name
    recommendation_id: str = ""  # quote it on the purchase event that follows
    strategy: str = ""
    elapsed_ms: float = 0.0


@dataclass
class _Cached:
    at: float
    items: list[Suggestion] = field(default_factory=list)


class PosClient:
    def __init__(
        self,
        channel: grpc.Channel,
        store_id: str,
        deadline: float = DEFAULT_DEADLINE,
        accessories: Mapping[str, Sequence[str]] | None = None,
        cache_size: int = 1024,
        cache_seconds: float = 3600.0,
    ) -> None:
        """The caller's key travels with the channel (`open_channel`)."""
        self._stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        self.store_id = store_id
        self.deadline = deadline
        self._accessories = {k: list(v) for k, v in (accessories or {}).items()}
        self._cache: OrderedDict[tuple[str, ...], _Cached] = OrderedDict()
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds

    def suggest(self, basket: Sequence[str], loyalty_card_number: str = "", k: int = 3) -> Suggestions:
        """Up to k items that go with the basket, in stock in this store; a fallback past the deadline."""
        started = time.perf_counter()
        request = recommendation_pb2.RecommendRequest(
            who=loyalty_card(loyalty_card_number) if loyalty_card_number else None,
            channel=common_pb2.CHANNEL_POS,
            placement="checkout",
            k=k,
            explain=True,
            context=recommendation_pb2.Context(basket_item_ids=list(basket), store_id=self.store_id),
        )
        key = tuple(sorted(set(basket)))
        try:
            rec = self._stub.Recommend(request, timeout=self.deadline, wait_for_ready=False)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None  # a plain RpcError may carry no status
            return self._fallback(key, k, code.name if code is not None else "ERROR", started)
        items = [
            Suggestion(it.item_id, it.title, price(it.offer), it.reasons[0].text if it.reasons else "")
            for it in rec.items
        ]
        self._remember(key, items)
        return Suggestions(
            items, recommendation_id=rec.recommendation_id, strategy=rec.strategy, elapsed_ms=_ms(started)
        )

    def _fallback(self, key: tuple[str, ...], k: int, detail: str, started: float) -> Suggestions:
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached.at <= self._cache_seconds:
            return Suggestions(cached.items[:k], True, "cache", detail, elapsed_ms=_ms(started))
        basket = set(key)
        picked: list[Suggestion] = []
        for main in key:
            for acc in self._accessories.get(main, ()):
                if acc not in basket and all(s.item_id != acc for s in picked):
                    picked.append(Suggestion(acc, reason="Accessory for an item in your basket"))
        if picked:
            return Suggestions(picked[:k], True, "catalogue", detail, elapsed_ms=_ms(started))
        return Suggestions([], True, "none", detail, elapsed_ms=_ms(started))

    def _remember(self, key: tuple[str, ...], items: list[Suggestion]) -> None:
        self._cache[key] = _Cached(time.monotonic(), items)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Accessory suggestions at the till from seenext")
    p.add_argument("--target", default=DEFAULT_TARGET)
    p.add_argument("--store", required=True, help="the store id of this till")
    p.add_argument("--basket", action="append", required=True, help="an item in the basket (repeatable)")
    p.add_argument("--loyalty-card", default="", help="the customer's loyalty card, if shown")
    p.add_argument("-k", type=int, default=3)
    p.add_argument("--deadline-ms", type=float, default=DEFAULT_DEADLINE * 1000)
    p.add_argument("--accessories", help="JSON file {main item: [accessory ids]} for the offline fallback")
    args = p.parse_args(argv)
    accessories = None
    if args.accessories:
        with open(args.accessories) as fh:
            accessories = json.load(fh)
    with open_channel(args.target) as channel:
        client = PosClient(channel, args.store, args.deadline_ms / 1000, accessories)
        result = client.suggest(args.basket, args.loyalty_card, args.k)
    how = (
        f"fallback from {result.source} ({result.detail})"
        if result.fallback
        else f"strategy {result.strategy}"
    )
    print(
        f"store {args.store}, basket {', '.join(args.basket)}: {len(result.items)} suggestions,"
        f" {how}, {result.elapsed_ms:.0f} ms"
    )
    for n, s in enumerate(result.items, 1):
        print(f"  {n}. {s.item_id:<12} {s.title[:36]:<36} {s.price:9.2f}  {s.reason}")


if __name__ == "__main__":
    run_command(main)
