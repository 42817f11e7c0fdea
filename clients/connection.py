"""What every channel client shares: a channel to the server, the caller's key, identifier shorthands."""

from __future__ import annotations

import os

import grpc

from protos.seenext.v1 import common_pb2

DEFAULT_TARGET = "127.0.0.1:50051"


def open_channel(target: str = DEFAULT_TARGET) -> grpc.Channel:
    return grpc.insecure_channel(target)


def auth_metadata(api_key: str | None = None) -> tuple[tuple[str, str], ...]:
    """`authorization: Bearer <key>` for servers that check callers; the key defaults to SEENEXT_API_KEY."""
    key = os.environ.get("SEENEXT_API_KEY", "") if api_key is None else api_key
    return (("authorization", f"Bearer {key}"),) if key else ()


def customer(customer_id: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer_id)


def device(device_id: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_DEVICE_ID, value=device_id)


def loyalty_card(number: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_LOYALTY_CARD, value=number)


def email(address: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_EMAIL, value=address)


def price(offer: common_pb2.Offer) -> float:
    """What the customer pays under the offer."""
    return offer.promo_price or offer.price


def item_lines(items: list[common_pb2.RecommendedItem], indent: str = "  ") -> list[str]:
    """Ranked items as printable lines: rank, id, title, price, and the first reason's sentence."""
    lines = []
    for n, it in enumerate(items, 1):
        promo = "*" if it.offer.promo_price else " "
        reason = it.reasons[0].text or it.reasons[0].code if it.reasons else ""
        lines.append(f"{indent}{n:2}. {it.item_id:<12} {it.title[:36]:<36} {price(it.offer):9.2f}{promo} {reason}")
    return lines
