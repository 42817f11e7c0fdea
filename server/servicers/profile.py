"""ProfileService: GetProfile, the call-centre page (story 5)."""

from __future__ import annotations

import grpc

from models.insights.profile import Profile
from models.service import Seenext
from protos.seenext.v1 import profile_pb2, profile_pb2_grpc
from server import convert
from server.servicers.identity import identifier_view_msg, label, who
from server.servicers.privacy import consent_msg


def profile_msg(p: Profile) -> profile_pb2.CustomerProfile:
    return profile_pb2.CustomerProfile(
        customer_id=p.customer_id,
        identifiers=[identifier_view_msg(v) for v in p.identifiers],
        channels=[
            profile_pb2.ChannelUsage(
                channel=label("CHANNEL_", c.channel),
                events=c.events,
                last_seen=convert.timestamp(c.last_seen),
            )
            for c in p.channels
        ],
        purchases=[
            profile_pb2.Purchase(
                item_id=x.item_id,
                title=x.title,
                channel=label("CHANNEL_", x.channel),
                store_id=x.store_id or "",
                order_id=x.order_id or "",
                quantity=x.quantity or 0,
                price=x.price or 0.0,
                occurred_at=convert.timestamp(x.occurred_at),
            )
            for x in p.purchases
        ],
        email=profile_pb2.EmailEngagement(
            sent=p.email.sent,
            opened=p.email.opened,
            clicked=p.email.clicked,
            last_opened=convert.timestamp(p.email.last_opened),
        ),
        consents=[consent_msg(c) for c in p.consents],
        timeline=[
            profile_pb2.TimelineEvent(
                event_id=e.event_id,
                channel=label("CHANNEL_", e.channel),
                type=label("EVENT_TYPE_", e.type),
                item_id=e.item_id,
                store_id=e.store_id,
                occurred_at=convert.timestamp(e.occurred_at),
            )
            for e in p.timeline
        ],
        next_page_token=p.next_page_token,
        next_best_offers=[convert.recommended_msg(r) for r in p.next_best_offers],
        first_seen=convert.timestamp(p.first_seen),
        last_seen=convert.timestamp(p.last_seen),
    )


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: grpc.ServicerContext
    ) -> profile_pb2.CustomerProfile:
        page = self.service.get_profile(who(request), request.timeline_limit, request.page_token)
        return profile_msg(page)
