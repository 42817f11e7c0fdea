"""Domain errors. Each knows the gRPC status it stands for (by name, so models never import grpc);
the server's interceptor turns them into that status with the message.
"""

from __future__ import annotations


class SeenextError(Exception):
    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SeenextError):
    """Bad input; the message names the field and the value received."""

    status = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(SeenextError):
    status = "NOT_FOUND"


class FailedPrecondition(SeenextError):
    status = "FAILED_PRECONDITION"


class AlreadyRunning(SeenextError):
    status = "ABORTED"
