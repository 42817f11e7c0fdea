"""The page's figures: the RPC replies themselves, fetched with the visitor's API key.

The dashboard holds no key of its own and no store: it calls the seenext server like any client, so
the figures are the RPCs' (by construction, for the same window) and the server's auth interceptor
decides who may see them — an unknown key is refused (401), a key without the `insights` scope too
(403). The model section needs the `status` scope as well; without it the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clients.connection import is_loopback
from protos.seenext.v1 import insights_pb2, insights_pb2_grpc, model_pb2, model_pb2_grpc

_Req = TypeVar("_Req")
_Reply = TypeVar("_Reply")
# The page waits this long for each reply; a report over a big store may take a few seconds.
CALL_TIMEOUT_SECONDS = 30.0


class Refused(Exception):
    """A page that cannot be shown: its HTTP status and a sentence for the visitor."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Window:
    """The period the reports cover; None = the RPCs' defaults (the last 30 days up to now)."""

    start: float | None = None
    end: float | None = None
    attribution_days: int = 0  # 0 = the server's SEENEXT_ATTRIBUTION_DAYS

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> Window:
        """From the page's query string: start and end as ISO dates or times (UTC unless they say
        otherwise; an end given as a date includes that day), attribution_days as a whole number."""
        days = _first(query, "attribution_days")
        try:
            attribution = int(days) if days else 0
        except ValueError:
            raise Refused(400, f"attribution_days: {days!r} is not a whole number of days") from None
        return cls(
            _when(_first(query, "start"), "start", end=False),
            _when(_first(query, "end"), "end", end=True),
            attribution,
        )

    def channel_request(self) -> insights_pb2.ChannelReportRequest:
        return insights_pb2.ChannelReportRequest(
            period_start=_timestamp(self.start),
            period_end=_timestamp(self.end),
            attribution_days=self.attribution_days,
        )

    def funnel_request(self) -> insights_pb2.FunnelReportRequest:
        return insights_pb2.FunnelReportRequest(
            period_start=_timestamp(self.start), period_end=_timestamp(self.end)
        )


@dataclass(frozen=True)
class Figures:
    """Everything the page shows, as the RPCs replied."""

    channels: insights_pb2.ChannelReportResponse
    funnels: insights_pb2.FunnelReportResponse
    model: model_pb2.ModelStatus | None  # None when the key may not read it (model_note says why)
    versions: list[model_pb2.ModelStatus] = field(default_factory=list)
    model_note: str = ""


class Api:
    """The seenext server's InsightsService and ModelService, called with a visitor's key."""

    def __init__(self, target: str, tls_ca_file: str = "") -> None:
        self.target = target
        if tls_ca_file:
            with open(tls_ca_file, "rb") as fh:
                credentials = grpc.ssl_channel_credentials(root_certificates=fh.read())
            self._channel = grpc.secure_channel(target, credentials)
        elif is_loopback(target):  # the same rule as the Python clients' channels
            self._channel = grpc.insecure_channel(target)
        else:  # the visitors' keys would cross the network in the clear
            raise ValueError(
                f"dashboard target {target!r} is not this machine: reach a remote server over TLS"
                " (SEENEXT_TLS_CA_FILE)"
            )
        self._insights = insights_pb2_grpc.InsightsServiceStub(self._channel)
        self._models = model_pb2_grpc.ModelServiceStub(self._channel)

    @property
    def channel(self) -> grpc.Channel:
        """The channel to the server, for a `RulesSource` that reads the rules through their RPC."""
        return self._channel

    def close(self) -> None:
        self._channel.close()

    def check_key(self, api_key: str) -> None:
        """Raises Refused unless the key may read the reports (a one-second funnel: cheap)."""
        now = datetime.now(UTC).timestamp()
        self._call(
            self._insights.FunnelReport,
            Window(now - 1, now).funnel_request(),
            api_key,
        )

    def figures(self, api_key: str, window: Window) -> Figures:
        channels = self._call(self._insights.ChannelReport, window.channel_request(), api_key)
        funnels = self._call(self._insights.FunnelReport, window.funnel_request(), api_key)
        try:
            model = self._call(self._models.GetModelStatus, model_pb2.GetModelStatusRequest(), api_key)
            versions = self._call(self._models.ListModels, model_pb2.ListModelsRequest(), api_key)
        except Refused as refused:
            if refused.status != 403:
                raise
            return Figures(channels, funnels, None, [], refused.message)
        return Figures(channels, funnels, model, list(versions.models))

    def _call(self, rpc: grpc.UnaryUnaryMultiCallable[_Req, _Reply], request: _Req, api_key: str) -> _Reply:
        try:
            return rpc(
                request, metadata=(("authorization", f"Bearer {api_key}"),), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.RpcError as err:
            raise _refusal(err, self.target) from None


def _refusal(err: grpc.RpcError, target: str) -> Refused:
    code, details = err.code(), err.details() or ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Refused(401, f"this API key is not accepted: {details}")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return Refused(403, f"this API key may not see the reports: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return Refused(400, details)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Refused(502, f"the seenext server at {target} does not answer ({code.name}): {details}")
    return Refused(502, f"the seenext server at {target} answered {code.name}: {details}")


def _first(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[0].strip()


def _when(text: str, name: str, end: bool) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(
            400, f"{name}: {text!r} is not a date or time (e.g. 2026-11-01 or 2026-11-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(text) == 10:  # a date: up to the end of that day
        moment += timedelta(days=1)
    return moment.timestamp()


def _timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(round(seconds * 1e9))
    return ts
