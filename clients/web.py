"""The web shop's client: recommendations for a page, for a customer or an anonymous device.

python -m clients.web --customer cust-00001                              # home page
python -m clients.web --device d-123 --placement product --item sku-00001  # product page
python -m clients.web --customer cust-00001 --placement cart --cart sku-00001
python -m clients.web --similar sku-00001                                  # "similar items" strip
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import grpc

from clients.connection import (
    DEFAULT_TARGET,
    customer,
    device,
    item_lines,
    open_channel,
    run_command,
)
from protos.seenext.v1 import common_pb2, recommendation_pb2, recommendation_pb2_grpc


class WebClient:
    def __init__(self, channel: grpc.Channel, timeout: float = 1.0) -> None:
        """The caller's key travels with the channel (`open_channel`)."""
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
        """Items for a page; the logged-in customer wins over the device id; neither = anonymous.

        `item_ids` are the item on the page and the session's recently viewed items (an anonymous
        visitor's recommendations are built from them); `cart_item_ids` the cart's content."""
        who = customer(customer_id) if customer_id else device(device_id) if device_id else None
        request = recommendation_pb2.RecommendRequest(
            who=who,
            channel=common_pb2.CHANNEL_WEB,
            placement=placement,
            k=k,
            explain=explain,
            context=recommendation_pb2.Context(item_ids=list(item_ids), basket_item_ids=list(cart_item_ids)),
        )
        return self._stub.Recommend(request, timeout=self._timeout)

    def home(
        self, customer_id: str = "", device_id: str = "", viewed: Sequence[str] = (), k: int = 10
    ) -> recommendation_pb2.RecommendResponse:
        return self.for_page("home", customer_id, device_id, viewed, (), k)

    def product(
        self,
        item_id: str,
        customer_id: str = "",
        device_id: str = "",
        viewed: Sequence[str] = (),
        k: int = 10,
    ) -> recommendation_pb2.RecommendResponse:
        """The product page: items like this one first, then the visitor's own ranking."""
        return self.for_page("product", customer_id, device_id, [item_id, *viewed], (), k)

    def cart(
        self, cart_item_ids: Sequence[str], customer_id: str = "", device_id: str = "", k: int = 10
    ) -> recommendation_pb2.RecommendResponse:
        """The cart page: what completes the cart (accessories, bought-together) first."""
        return self.for_page("cart", customer_id, device_id, (), cart_item_ids, k)

    def similar(self, item_id: str, k: int = 10) -> recommendation_pb2.SimilarItemsResponse:
        """Items most similar to one item, in stock online."""
        request = recommendation_pb2.SimilarItemsRequest(item_id=item_id, k=k, channel=common_pb2.CHANNEL_WEB)
        return self._stub.SimilarItems(request, timeout=self._timeout)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Web shop recommendations from seenext")
    p.add_argument("--target", default=DEFAULT_TARGET)
    p.add_argument("--customer", default="", help="the logged-in customer's id")
    p.add_argument("--device", default="", help="an anonymous visitor's device / cookie id")
    p.add_argument("--placement", default="home", choices=["home", "product", "cart"])
    p.add_argument(
        "--item", action="append", default=[], help="item on the page or viewed before (repeatable)"
    )
    p.add_argument("--cart", action="append", default=[], help="item in the cart (repeatable)")
    p.add_argument(
        "--similar", default="", metavar="ITEM", help="show the items most similar to ITEM instead"
    )
    p.add_argument("-k", type=int, default=5)
    args = p.parse_args(argv)
    with open_channel(args.target) as channel:
        client = WebClient(channel)
        if args.similar:
            sim = client.similar(args.similar, args.k)
            print(f"items similar to {args.similar} (model {sim.model_version or 'none'})")
            print("\n".join(item_lines(list(sim.items))))
            return
        rec = client.for_page(args.placement, args.customer, args.device, args.item, args.cart, args.k)
    who = rec.customer_id if rec.recognised else "anonymous visitor"
    print(
        f"{who} on the {args.placement} page — strategy {rec.strategy}, model {rec.model_version or 'none'},"
        f" recommendation {rec.recommendation_id}"
    )
    print("\n".join(item_lines(list(rec.items))))


if __name__ == "__main__":
    run_command(main)
