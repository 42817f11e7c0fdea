"""The customer-facing back office: recognise (Identify), look up (GetProfile, the call centre),
record consent, erase (Forget) and export a customer. Any identifier kind works as `who`.

    python -m clients.customer profile --phone "+44 7700 900123"
    python -m clients.customer identify --customer cust-00001 --email alice@example.com --device d-1
    python -m clients.customer consent --email alice@example.com --channel email --purpose marketing --refuse
    python -m clients.customer export --customer cust-00001
    python -m clients.customer forget --customer cust-00001

The API key comes from SEENEXT_API_KEY (see the server's start-up banner).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from clients.connection import DEFAULT_TARGET, identifier, open_channel, run_command
from protos.seenext.v1 import (
    common_pb2,
    identity_pb2,
    identity_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
)


class CustomerClient:
    """The back office's calls; the caller's key travels with the channel (`open_channel`)."""

    def __init__(self, channel: grpc.Channel, timeout: float = 5.0) -> None:
        self._identity = identity_pb2_grpc.IdentityServiceStub(channel)
        self._profile = profile_pb2_grpc.ProfileServiceStub(channel)
        self._privacy = privacy_pb2_grpc.PrivacyServiceStub(channel)
        self._timeout = timeout

    def identify(self, identifiers: Sequence[common_pb2.Identifier]) -> identity_pb2.IdentifyResponse:
        """Links the identifiers into one customer and returns all of theirs (e-mail and phone masked)."""
        return self._identity.Identify(
            identity_pb2.IdentifyRequest(identifiers=list(identifiers)),
            timeout=self._timeout,
        )

    def profile(
        self, who: common_pb2.Identifier, timeline_limit: int = 20, page_token: str = ""
    ) -> profile_pb2.CustomerProfile:
        return self._profile.GetProfile(
            profile_pb2.GetProfileRequest(who=who, timeline_limit=timeline_limit, page_token=page_token),
            timeout=self._timeout,
        )

    def set_consent(
        self, who: common_pb2.Identifier, channel: str, purpose: str, granted: bool
    ) -> privacy_pb2.SetConsentResponse:
        """`channel` by name ("email", "WEB"); "" records the decision for every channel."""
        request = privacy_pb2.SetConsentRequest(
            who=who, channel=f"CHANNEL_{channel.upper() or 'UNSPECIFIED'}", purpose=purpose, granted=granted
        )
        return self._privacy.SetConsent(request, timeout=self._timeout)

    def forget(self, who: common_pb2.Identifier) -> privacy_pb2.ForgetResponse:
        return self._privacy.Forget(privacy_pb2.ForgetRequest(who=who), timeout=30.0)

    def export(self, who: common_pb2.Identifier) -> Iterator[tuple[str, dict[str, Any]]]:
        """(kind, document) for everything held about the customer."""
        for doc in self._privacy.Export(privacy_pb2.ExportRequest(who=who), timeout=60.0):
            yield doc.kind, json.loads(doc.json)


def _when(ts: object) -> str:
    seconds = getattr(ts, "seconds", 0)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M") if seconds else "-"


def _name(enum: EnumTypeWrapper, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix)


def print_profile(p: profile_pb2.CustomerProfile) -> None:
    ch = common_pb2.Channel
    print(f"customer {p.customer_id}   first seen {_when(p.first_seen)}   last seen {_when(p.last_seen)}")
    print(
        "identifiers: "
        + ", ".join(
            f"{_name(common_pb2.IdentifierKind, i.kind, 'IDENTIFIER_KIND_')} {i.value}" for i in p.identifiers
        )
    )
    print(
        "channels:    "
        + ", ".join(
            f"{_name(ch, c.channel, 'CHANNEL_')} {c.events} (last {_when(c.last_seen)})" for c in p.channels
        )
    )
    print(
        f"e-mail:      sent {p.email.sent}, opened {p.email.opened}, clicked {p.email.clicked}"
        f" (last opened {_when(p.email.last_opened)})"
    )
    consents = [
        f"{_name(ch, c.channel, 'CHANNEL_') if c.channel else 'ALL'}/{c.purpose}"
        f"={'yes' if c.granted else 'no'}"
        for c in p.consents
    ]
    print("consent:     " + (", ".join(consents) or "none recorded (defaults apply)"))
    print(f"purchases ({len(p.purchases)} newest):")
    for x in p.purchases[:10]:
        where = f"store {x.store_id}" if x.store_id else "online"
        print(
            f"  {_when(x.occurred_at)}  {_name(ch, x.channel, 'CHANNEL_'):<11} {where:<16}"
            f" {x.item_id:<10} {x.title[:36]}"
        )
    print("next best offers:")
    for r in p.next_best_offers:
        reason = r.reasons[0].text or r.reasons[0].code if r.reasons else ""
        print(f"  {r.item_id:<10} {r.title[:36]:<36} {reason}")
    more = f", more: --page {p.next_page_token}" if p.next_page_token else ""
    print(f"timeline ({len(p.timeline)} events{more}):")
    for e in p.timeline:
        print(
            f"  {_when(e.occurred_at)}  {_name(ch, e.channel, 'CHANNEL_'):<11} "
            f"{_name(common_pb2.EventType, e.type, 'EVENT_TYPE_'):<14} {e.item_id} {e.store_id}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description="Identify, look up, consent, export and forget customers in seenext"
    )
    p.add_argument("--target", default=DEFAULT_TARGET)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("identify", "profile", "consent", "forget", "export"):
        s = sub.add_parser(name)
        for flag, kind in (
            ("--customer", "CUSTOMER_ID"),
            ("--email", "EMAIL"),
            ("--phone", "PHONE"),
            ("--loyalty", "LOYALTY_CARD"),
            ("--device", "DEVICE_ID"),
            ("--card-token", "POS_CARD_TOKEN"),
        ):
            s.add_argument(flag, action="append", default=[], metavar="VALUE", help=f"a {kind} (repeatable)")
        if name == "profile":
            s.add_argument("--limit", type=int, default=20, help="timeline events per page")
            s.add_argument("--page", default="", help="next_page_token of the previous page")
        if name == "consent":
            s.add_argument(
                "--channel", default="", help="web, app, email, pos, call_center, ads; none = every channel"
            )
            s.add_argument("--purpose", required=True, choices=["marketing", "profiling"])
            g = s.add_mutually_exclusive_group(required=True)
            g.add_argument("--grant", dest="granted", action="store_true")
            g.add_argument("--refuse", dest="granted", action="store_false")
    args = p.parse_args(argv)
    idents = [
        identifier(kind, v)
        for flag, kind in (
            ("customer", "CUSTOMER_ID"),
            ("email", "EMAIL"),
            ("phone", "PHONE"),
            ("loyalty", "LOYALTY_CARD"),
            ("device", "DEVICE_ID"),
            ("card_token", "POS_CARD_TOKEN"),
        )
        for v in getattr(args, flag)
    ]
    if not idents:
        p.error(
            "give at least one identifier (--customer, --email, --phone, --loyalty, --device, --card-token)"
        )
    try:
        run(args, idents)
    except grpc.RpcError as err:  # say what the server said, not a traceback
        raise SystemExit(f"{err.code().name}: {err.details()}") from None


def run(args: argparse.Namespace, idents: list[common_pb2.Identifier]) -> None:
    with open_channel(args.target) as channel:
        client = CustomerClient(channel)
        if args.command == "identify":
            linked = client.identify(idents)
            print(f"customer {linked.customer_id} (created {linked.created}, merged {linked.merged}):")
            for i in linked.identifiers:
                print(f"  {_name(common_pb2.IdentifierKind, i.kind, 'IDENTIFIER_KIND_'):<15} {i.value}")
        elif args.command == "profile":
            print_profile(client.profile(idents[0], args.limit, args.page))
        elif args.command == "consent":
            stored = client.set_consent(idents[0], args.channel, args.purpose, args.granted)
            print(
                f"customer {stored.customer_id}: {args.purpose} on {args.channel or 'every channel'} "
                f"{'granted' if stored.consent.granted else 'refused'} at {_when(stored.consent.updated_at)}"
            )
        elif args.command == "forget":
            gone = client.forget(idents[0])
            print(
                f"forgotten {gone.customer_id or '(nobody had this identifier)'}:"
                f" {gone.events_deleted} events, {gone.identifiers_deleted} identifiers,"
                f" {gone.consents_deleted} consents, {gone.recommendations_deleted} served recommendations,"
                f" {gone.other_rows_deleted} other rows;"
                f" removed from {gone.model_versions_updated} model versions"
            )
        else:
            for kind, doc in client.export(idents[0]):
                print(json.dumps({"kind": kind, **doc}, ensure_ascii=False))


if __name__ == "__main__":
    run_command(main)
