"""InsightsService: reports for marketing and campaign tools.

Each RPC is one method that converts, calls the Seenext facade and replies; an RPC not built yet
falls through to the generated base class, which answers UNIMPLEMENTED.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from models.insights import reports
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
            request.k,
            convert.channel(request.channel) if request.channel else "",
        )
        for reminder in reminders:
            if not context.is_active():
                return
            yield insights_pb2.Reminder(
                customer_id=reminder.customer_id,
                reason=reminder.reason,
                items=[convert.recommended_msg(r) for r in reminder.items],
            )

    # -- story 6 ----------------------------------------------------------------------------------

    def ChannelReport(
        self, request: insights_pb2.ChannelReportRequest, context: grpc.ServicerContext
    ) -> insights_pb2.ChannelReportResponse:
        report = self.service.channel_report(
            convert.time_or_none(request.period_start, request.HasField("period_start")),
            convert.time_or_none(request.period_end, request.HasField("period_end")),
            request.attribution_days,
        )
        return channel_report_msg(report)

    def FunnelReport(
        self, request: insights_pb2.FunnelReportRequest, context: grpc.ServicerContext
    ) -> insights_pb2.FunnelReportResponse:
        report = self.service.funnel_report(
            convert.time_or_none(request.period_start, request.HasField("period_start")),
            convert.time_or_none(request.period_end, request.HasField("period_end")),
        )
        return funnel_report_msg(report)


def channel_report_msg(r: reports.ChannelReport) -> insights_pb2.ChannelReportResponse:
    return insights_pb2.ChannelReportResponse(
        rows=[
            insights_pb2.ChannelArmStats(
                channel=f"CHANNEL_{s.channel}",
                arm=s.arm,
                recommendations=s.recommendations,
                impressions=s.impressions,
                clicks=s.clicks,
                conversions=s.conversions,
                revenue=s.revenue,
                click_through=s.click_through,
                conversion_rate=s.conversion_rate,
                customers=s.customers,
                add_to_carts=s.add_to_carts,
                conversions_in_channel=dict(s.conversions_in_channel),
            )
            for s in r.rows
        ],
        uplift=[
            insights_pb2.ChannelUplift(
                channel=f"CHANNEL_{u.channel}",
                uplift=u.uplift,
                ci_low=u.ci_low,
                ci_high=u.ci_high,
                personalised_rate=u.personalised_rate,
                holdout_rate=u.holdout_rate,
            )
            for u in r.uplift
        ],
        period_start=convert.timestamp(r.period_start),
        period_end=convert.timestamp(r.period_end),
        attribution_days=r.attribution_days,
        warnings=r.warnings,
        variant_uplift=[
            insights_pb2.ChannelVariantUplift(
                channel=f"CHANNEL_{v.channel}",
                experiment_id=v.experiment_id,
                variant=v.variant,
                uplift=v.uplift,
                ci_low=v.ci_low,
                ci_high=v.ci_high,
                variant_rate=v.variant_rate,
                control_rate=v.control_rate,
            )
            for v in r.variant_uplift
        ],
    )


def funnel_report_msg(r: reports.FunnelReport) -> insights_pb2.FunnelReportResponse:
    return insights_pb2.FunnelReportResponse(
        funnels=[
            insights_pb2.Funnel(
                name=f.name,
                steps=[
                    insights_pb2.FunnelStep(
                        name=s.name,
                        customers=s.customers,
                        conversion_from_previous=s.conversion_from_previous,
                        finished_in_channel=s.channels,
                    )
                    for s in f.steps
                ],
            )
            for f in r.funnels
        ],
        period_start=convert.timestamp(r.period_start),
        period_end=convert.timestamp(r.period_end),
    )
