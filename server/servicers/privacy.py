"""PrivacyService: SetConsent, Forget, Export (story 7)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from models.privacy.rights import ConsentRecord
from models.service import Seenext
from protos.seenext.v1 import privacy_pb2, privacy_pb2_grpc
from server import convert
from server.servicers.identity import label, who


def consent_msg(c: ConsentRecord) -> privacy_pb2.Consent:
    return privacy_pb2.Consent(
        channel=label("CHANNEL_", c.channel),
        purpose=c.purpose,
        granted=c.granted,
        updated_at=convert.timestamp(c.updated_at),
    )


class PrivacyServicer(privacy_pb2_grpc.PrivacyServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def SetConsent(
        self, request: privacy_pb2.SetConsentRequest, context: grpc.ServicerContext
    ) -> privacy_pb2.SetConsentResponse:
        customer_id, record = self.service.set_consent(
            who(request), convert.channel(request.channel), request.purpose, request.granted
        )
        return privacy_pb2.SetConsentResponse(customer_id=customer_id, consent=consent_msg(record))

    def Forget(
        self, request: privacy_pb2.ForgetRequest, context: grpc.ServicerContext
    ) -> privacy_pb2.ForgetResponse:
        r = self.service.forget(who(request))
        return privacy_pb2.ForgetResponse(
            events_deleted=r.events,
            identifiers_deleted=r.identifiers,
            consents_deleted=r.consents,
            recommendations_deleted=r.recommendations,
            other_rows_deleted=sum(r.other_rows.values()),
            model_versions_updated=r.model_versions,
            customer_id=r.customer_id,
        )

    def Export(
        self, request: privacy_pb2.ExportRequest, context: grpc.ServicerContext
    ) -> Iterator[privacy_pb2.ExportDocument]:
        for doc in self.service.export(who(request)):
            yield privacy_pb2.ExportDocument(kind=doc.kind, json=doc.json)
