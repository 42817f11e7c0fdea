"""What every channel client shares: a channel that carries the caller's key, identifier shorthands."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import grpc

from models.settings import ClientSettings
from protos.seenext.v1 import common_pb2

DEFAULT_TARGET = "127.0.0.1:50051"


def open_channel(
    target: str = DEFAULT_TARGET, api_key: str | None = None, tls_ca_file: str | None = None
) -> grpc.Channel:
    """A channel to the server that sends `authorization: Bearer <api_key>` with every call.

    The key travels one way, as call credentials of the channel: every client here and any generated
    stub on the channel sends it. `api_key` and `tls_ca_file` default to SEENEXT_API_KEY and
    SEENEXT_TLS_CA_FILE. With a CA file the channel is TLS; without one it is plaintext, and gRPC
    lets a key go over plaintext only to this machine (local credentials): a remote server needs TLS.
    """
    env = ClientSettings.from_env()
    key = env.api_key if api_key is None else api_key
    ca_file = tls_ca_file or env.tls_ca_file
    if ca_file:
        with open(ca_file, "rb") as fh:
            credentials = grpc.ssl_channel_credentials(root_certificates=fh.read())
    elif key:
        if not is_loopback(target):
            raise ValueError(
                f"target {target!r} is not this machine: an API key goes to a remote server over TLS"
                " only (tls_ca_file or SEENEXT_TLS_CA_FILE)"
            )
        local = (
            grpc.LocalConnectionType.UDS if target.startswith("unix:") else grpc.LocalConnectionType.LOCAL_TCP
        )
        credentials = grpc.local_channel_credentials(local)
    else:  # no key to protect: plain plaintext, to any host
        return grpc.insecure_channel(target)
    if key:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(key))
    return grpc.secure_channel(target, credentials)


def is_loopback(target: str) -> bool:
    """Whether a gRPC target names this machine: localhost, a loopback address or a name resolving to one."""
    if target.startswith("unix:"):
        return True
    host = target.removeprefix("dns:///").removeprefix("ipv4:").removeprefix("ipv6:")
    if host.startswith("["):  # [::1]:50051
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.partition("%")[0]).is_loopback for a in addresses)


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
    """Runs a client's command line; a failed call or a bad setting prints a line, not a traceback."""
    try:
        main()
    except grpc.RpcError as err:
        raise SystemExit(f"{err.code().name}: {err.details()}") from None
    except ValueError as exc:  # an unknown SEENEXT_ variable, a key for a remote plaintext target
        raise SystemExit(f"error: {exc}") from None
