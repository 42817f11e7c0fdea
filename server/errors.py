"""One interceptor turns domain errors into their gRPC status, and anything unexpected into
INTERNAL with an id to find it in the log — never UNKNOWN with a traceback for the caller.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from models.errors import SeenextError

if TYPE_CHECKING:  # grpc-stubs makes the interceptor types generic; grpc's own classes take no parameters
    Interceptor: TypeAlias = grpc.ServerInterceptor[Any, Any]
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:
    Interceptor = grpc.ServerInterceptor
    Handler = grpc.RpcMethodHandler
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Handler | None]

log = logging.getLogger(__name__)


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> None:
    if isinstance(exc, SeenextError):
        context.abort(grpc.StatusCode[exc.status], exc.message)
    if isinstance(exc, NotImplementedError):  # the generated base servicer of a service not built yet
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented in this version")
    incident = uuid.uuid4().hex[:12]
    log.exception("internal error %s in %s", incident, method)
    context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (incident {incident}); the server log has the details"
    )


class ErrorInterceptor(Interceptor):
    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        if handler.unary_unary:
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    return inner(request, context)
                except Exception as exc:
                    if _is_abort(exc, context):
                        raise
                    _abort(context, exc, method)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                try:
                    yield from inner_stream(request, context)
                except Exception as exc:
                    if _is_abort(exc, context):
                        raise
                    _abort(context, exc, method)

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


def _is_abort(exc: Exception, context: grpc.ServicerContext) -> bool:
    # context.abort() records the status, then raises a bare Exception: let that through untouched.
    return type(exc) is Exception and context.code() is not None  # type: ignore[attr-defined]
