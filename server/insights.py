"""InsightsService: reports for marketing and campaign tools.

Each RPC is one method that converts, calls the Seenext facade and replies; an RPC not built yet
falls through to the generated base class, which answers UNIMPLEMENTED.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from models.service import Seenext
from protos.seenext.v1 import insights_pb2, insights_pb2_grpc
from server import convert


class InsightsServicer(insights_pb2_grpc.InsightsServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    # -- story 4 ----------------------------------------------------------------------------------

    def DueReminders(
        self, request: insights_pb2.DueRemindersRequest, context: grpc.ServicerContext
    ) -> Iterator[insights_pb2.Reminder]:
        """Customers due in the window, streamed as they are found; a cancelled call stops the scan."""
        reminders = self.service.due_reminders(
            convert.time_or_none(request.window_start, request.HasField("window_start")),
            convert.time_or_none(request.window_end, request.HasField("window_end")),
            request.k, convert.channel(request.channel) if request.channel else "",
        )
        for reminder in reminders:
            if not context.is_active():
                return
            yield insights_pb2.Reminder(
                customer_id=reminder.customer_id, reason=reminder.reason,
                items=[convert.recommended_msg(r) for r in reminder.items],
            )

    # -- story 6: ChannelReport and FunnelReport are added here as methods of this class ----------
