"""Domain errors. Each knows the gRPC status it stands for (by name, so models never import grpc);
the server's interceptor turns them into that status with the message.
"""

from __future__ import annotations

import errno


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
        self.problem = problem

    def within(self, parent: str) -> InvalidArgument:
        """The same error for a message checked where it sits inside another (`request.k`, not `k`)."""
        return InvalidArgument(f"{parent}.{self.field}", self.problem)


class NotFound(SeenextError):
    status = "NOT_FOUND"


class FailedPrecondition(SeenextError):
    status = "FAILED_PRECONDITION"


class AlreadyRunning(SeenextError):
    status = "ABORTED"


class ResourceExhausted(SeenextError):
    """The disk (or a size limit) is full: nothing of the failed write was kept; retry once there is room."""

    status = "RESOURCE_EXHAUSTED"


class Unavailable(SeenextError):
    """The disk or the database failed (an I/O error, a read-only or locked file): retry later."""

    status = "UNAVAILABLE"


# A write that fails for want of room: a full disk, a quota, a file-size limit (ulimit -f).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def disk_fault(exc: OSError, doing: str) -> SeenextError:
    """The domain error for a failed file write: RESOURCE_EXHAUSTED when the disk is full, else
    UNAVAILABLE. `doing` says what was being written ("writing the model")."""
    reason = exc.strerror or str(exc)
    if exc.errno in _NO_ROOM:
        return ResourceExhausted(
            f"{doing} failed: the server's disk has no room left ({reason}); nothing was kept, "
            "retry once space is freed"
        )
    return Unavailable(f"{doing} failed: the server's disk could not be written ({reason}); retry later")
