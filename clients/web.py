"""The web shop's client: recommendations for a page, for a customer or an anonymous device.

    python -m clients.web --customer cust-00001 --placement home
    python -m clients.web --device d-123 --placement product --item sku-00001
"""

from __future__ import annotations

import argparse
from typing import Sequence

import grpc

from clients.connection import DEFAULT_TARGET, customer, device, open_channel
from protos.seenext.v1 import common_pb2, recommendation_pb2, recommendation_pb2_grpc


class WebClient:
    def __init__(self, channel: grpc.Channel, timeout: float = 1.0) -> None:
        self._stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        self._timeout = timeout

    def for_page(
        self,
        placement: str = "home",
        customer_id: str = "",
        device_id: str = "",
        item_ids: Sequence[str] = (),
        cart_item_ids: Sequence[str] = (),
        k: int = 10,
        explain: bool = True,
    ) -> recommendation_pb2.RecommendResponse:
        """Items for a page; the logged-in customer wins over the device id; neither = anonymous."""
        who = customer(customer_id) if customer_id else device(device_id) if device_id else None
        request = recommendation_pb2.RecommendRequest(
            who=who, channel=common_pb2.CHANNEL_WEB, placement=placement, k=k, explain=explain,
            context=recommendation_pb2.Context(item_ids=list(item_ids), basket_item_ids=list(cart_item_ids)),
        )
        return self._stub.Recommend(request, timeout=self._timeout)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Web shop recommendations from seenext")
    p.add_argument("--target", default=DEFAULT_TARGET)
    p.add_argument("--customer", default="")
    p.add_argument("--device", default="")
    p.add_argument("--placement", default="home", choices=["home", "product", "cart"])
    p.add_argument("--item", action="append", default=[], help="item on the page (repeatable)")
    p.add_argument("--cart", action="append", default=[], help="item in the cart (repeatable)")
    p.add_argument("-k", type=int, default=5)
    args = p.parse_args(argv)
    with open_channel(args.target) as channel:
        rec = WebClient(channel).for_page(args.placement, args.customer, args.device, args.item, args.cart, args.k)
    who = rec.customer_id if rec.recognised else "anonymous visitor"
    print(f"{who} — strategy {rec.strategy}, model {rec.model_version or 'none'}, id {rec.recommendation_id}")
    for n, it in enumerate(rec.items, 1):
        price = it.offer.promo_price or it.offer.price
        reason = it.reasons[0].text if it.reasons else ""
        print(f"{n:2}. {it.item_id:<10} {it.title[:34]:<34} {price:8.2f}  {it.score:6.3f}  {reason}")


if __name__ == "__main__":
    main()
