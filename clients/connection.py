"""What every channel client shares: a channel to the server, the caller's key, identifier shorthands."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import grpc

from protos.seenext.v1 import common_pb2

DEFAULT_TARGET = "127.0.0.1:50051"


def open_channel(
    target: str = DEFAULT_TARGET, api_key: str | None = None, tls_ca_file: str | None = None
) -> grpc.Channel:
    """A channel to the server; TLS trusting `tls_ca_file` (or SEENEXT_TLS_CA_FILE) when one is given.

    The clients of this folder send `auth_metadata()` with each call. Code using the generated stubs
    directly may pass `api_key` instead: the channel then adds `authorization: Bearer <api_key>` to
    every call.
    """
    tls_ca_file = tls_ca_file or os.environ.get("SEENEXT_TLS_CA_FILE") or None
    if tls_ca_file:
        with open(tls_ca_file, "rb") as fh:
            channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=fh.read()))
    else:
        channel = grpc.insecure_channel(target)
    if api_key:
        channel = grpc.intercept_channel(channel, _ApiKey(api_key))
    return channel


class _ApiKey(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the API key to the metadata of every unary and server-streaming call."""

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def _details(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), self._header]
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(
        self,
        method: str,
        timeout: float | None,
        metadata: Any,
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
    ) -> None:
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def auth_metadata(api_key: str | None = None) -> tuple[tuple[str, str], ...]:
    """`authorization: Bearer <key>` for servers that check callers; the key defaults to SEENEXT_API_KEY."""
    key = os.environ.get("SEENEXT_API_KEY", "") if api_key is None else api_key
    return (("authorization", f"Bearer {key}"),) if key else ()


def customer(customer_id: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer_id)


def device(device_id: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_DEVICE_ID, value=device_id)


def identifier(kind: str, value: str) -> common_pb2.Identifier:
    """Any kind by name: identifier("email", "a@b.c"), identifier("LOYALTY_CARD", "6335…")."""
    return common_pb2.Identifier(kind=f"IDENTIFIER_KIND_{kind.upper()}", value=value)


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
        lines.append(
            f"{indent}{n:2}. {it.item_id:<12} {it.title[:36]:<36} {price(it.offer):9.2f}{promo} {reason}"
        )
    return lines


def run_command(main: Callable[[], None]) -> None:
    """Runs a client's command line; a failed call prints the server's status and message, not a traceback."""
    try:
        main()
    except grpc.RpcError as err:
        raise SystemExit(f"{err.code().name}: {err.details()}") from None
