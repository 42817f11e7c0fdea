"""One interceptor turns domain errors into their gRPC status, and anything unexpected into
INTERNAL with an id to find it in the log — never UNKNOWN with a traceback for the caller.

It also answers request bodies that do not decode. grpc-python deserialises a request before any
interceptor or servicer runs, and on failure aborts INTERNAL ("Exception deserializing request!")
and logs a traceback per call: a client sending garbage would fill the log and look like a server
fault. So the interceptor wraps each method's request deserializer: a body that does not decode
becomes an `Undecodable` value, which the wrapped behaviour answers with INVALID_ARGUMENT
("request body: not a valid seenext.v1.TrackRequest"), for all four call types. Such bodies are
logged as one WARNING line per burst (`UNDECODABLE_EVERY` seconds) with how many came.

A full or failing disk met outside the storage layer (an OSError from a file write) gets the
status the domain gives it (RESOURCE_EXHAUSTED, UNAVAILABLE) rather than INTERNAL.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc

from models.errors import SeenextError, disk_fault
from server import memory

if TYPE_CHECKING:  # grpc-stubs makes the interceptor types generic; grpc's own classes take no parameters
    Interceptor: TypeAlias = grpc.ServerInterceptor[Any, Any]
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:
    Interceptor = grpc.ServerInterceptor
    Handler = grpc.RpcMethodHandler
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Handler | None]
Deserializer: TypeAlias = Callable[[bytes], Any]

log = logging.getLogger(__name__)

UNDECODABLE_EVERY = 10.0  # seconds between two log lines about undecodable bodies
_MAX_WRAPPED = 1_000  # methods whose wrapped handler is kept (a server has a few dozen)
# A file write that failed because of the disk, not because of a bug.
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


class Undecodable:
    """What the wrapped deserializer hands on in place of a request whose body does not decode."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class BurstLog:
    """One WARNING line per `every` seconds about undecodable bodies, counting those in between: the
    first of a burst is logged at once, the rest are counted into the next line."""

    def __init__(self, every: float = UNDECODABLE_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._last: float | None = None

    def note(self, method: str, problem: str) -> None:
        with self._lock:
            self._count += 1
            now = self._clock()
            if self._last is not None and now - self._last < self.every:
                return
            count, self._count, self._last = self._count, 0, now
        log.warning(
            "%d undecodable request bod%s since the last report, answered INVALID_ARGUMENT (latest: %s: %s)",
            count,
            "y" if count == 1 else "ies",
            method,
            problem,
        )


undecodable_log = BurstLog()


def _abort(context: grpc.ServicerContext, exc: Exception, method: str) -> NoReturn:
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:  # e.g. a model file on a full disk
        log.error("%s failed on the disk: %s", method, exc)
        exc = disk_fault(exc, "writing to the server's disk")
    if isinstance(exc, SeenextError):
        context.abort(grpc.StatusCode[exc.status], exc.message)
    if isinstance(exc, NotImplementedError):  # the generated base servicer of a service not built yet
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented in this version")
    incident = uuid.uuid4().hex[:12]
    log.exception("internal error %s in %s", incident, method)
    context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (incident {incident}); the server log has the details"
    )


def _refuse_undecodable(context: grpc.ServicerContext, request: Undecodable, method: str) -> NoReturn:
    undecodable_log.note(method, request.message)
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)


def _tolerant(deserializer: Deserializer | None, method: str) -> Deserializer | None:
    """The method's deserializer, answering `Undecodable` instead of raising (grpc would abort INTERNAL
    and log a traceback)."""
    if deserializer is None:
        return None
    message = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    expected = message.full_name if message is not None else f"request of {method}"
    problem = f"request body: not a valid {expected}"

    def deserialize(body: bytes) -> Any:
        memory.note_request_size(len(body))
        try:
            return deserializer(body)
        except Exception:  # DecodeError, or whatever a deserializer raises on bytes it cannot read
            return Undecodable(problem)

    return deserialize


def _checked(requests: Iterator[Any], context: grpc.ServicerContext, method: str) -> Iterator[Any]:
    """A request stream that ends the call with INVALID_ARGUMENT at its first undecodable message."""
    for request in requests:
        if isinstance(request, Undecodable):
            _refuse_undecodable(context, request, method)
        yield request


def _unary_response(
    inner: Callable[[Any, grpc.ServicerContext], Any], method: str, request_stream: bool
) -> Callable[[Any, grpc.ServicerContext], Any]:
    def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.monotonic()
        try:
            if isinstance(request, Undecodable):
                _refuse_undecodable(context, request, method)
            return inner(_checked(request, context, method) if request_stream else request, context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            _abort(context, exc, method)
        finally:
            memory.after_call(time.monotonic() - started)

    return behaviour


def _stream_response(
    inner: Callable[[Any, grpc.ServicerContext], Iterator[Any]], method: str, request_stream: bool
) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
    def behaviour(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        started = time.monotonic()
        try:
            if isinstance(request, Undecodable):
                _refuse_undecodable(context, request, method)
            yield from inner(_checked(request, context, method) if request_stream else request, context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            _abort(context, exc, method)
        finally:
            memory.after_call(time.monotonic() - started)

    return behaviour


class ErrorInterceptor(Interceptor):
    def __init__(self) -> None:
        # method -> (its handler, that handler wrapped): the wrapping is the same for every call of a
        # method, so it is built once (a handler registered anew is wrapped anew)
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        if len(self._wrapped) < _MAX_WRAPPED:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: Handler, method: str) -> Handler:
        args = (_tolerant(handler.request_deserializer, method), handler.response_serializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary_response(handler.unary_unary, method, False), *args
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _stream_response(handler.unary_stream, method, False), *args
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _unary_response(handler.stream_unary, method, True), *args
            )
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                _stream_response(handler.stream_stream, method, True), *args
            )
        return handler


def _is_abort(exc: Exception, context: grpc.ServicerContext) -> bool:
    # context.abort() records the status, then raises a bare Exception: let that through untouched.
    return type(exc) is Exception and context.code() is not None  # type: ignore[attr-defined]
