"""IdentityService: Identify."""

from __future__ import annotations

import grpc

from models.domain import Identifier
from models.identity.graph import IdentifierView
from models.service import Seenext
from protos.seenext.v1 import common_pb2, identity_pb2, identity_pb2_grpc
from server import auth, convert


def label(prefix: str, name: str) -> str:
    """A domain enum name as the proto's value name ("WEB" -> "CHANNEL_WEB"; "" -> "CHANNEL_UNSPECIFIED")."""
    return f"{prefix}{name or 'UNSPECIFIED'}"


def identifier_view_msg(view: IdentifierView) -> common_pb2.Identifier:
    """An identifier as responses show it: the e-mail or phone the caller sent masked, any other e-mail
    or phone by its kind alone (empty value), other kinds as they are."""
    return common_pb2.Identifier(kind=label("IDENTIFIER_KIND_", view.kind), value=view.display)


def who(request: object) -> Identifier | None:
    """The request's `who`, or None when it was not set (the facade says whether that is allowed)."""
    return convert.identifier(request.who) if request.HasField("who") else None  # type: ignore[attr-defined]


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def Identify(
        self, request: identity_pb2.IdentifyRequest, context: grpc.ServicerContext
    ) -> identity_pb2.IdentifyResponse:
        # A channel's key (no profile or export scope) learns the customer id and nothing more, and may
        # not change a person its call does not prove (docs/identity.md, "What a caller may learn and link").
        trusted = auth.manages_identities()
        result = self.service.identify([convert.identifier(i) for i in request.identifiers], trusted)
        return identity_pb2.IdentifyResponse(
            customer_id=result.customer_id,
            identifiers=[identifier_view_msg(v) for v in result.identifiers] if trusted else [],
            created=result.created,
            merged=result.merged,
        )
