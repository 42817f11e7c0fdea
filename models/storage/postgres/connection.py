"""The PostgreSQL connection pool, and what a failed statement means to a caller.

Every process keeps a pool of autocommit connections (psycopg_pool): a read outside a transaction
borrows one for its one statement; a write transaction holds one from BEGIN to COMMIT. A database
that cannot be reached, is shutting down, is a read-only standby or has no connection free within
the pool's timeout is UNAVAILABLE (retry later); a full disk or an exhausted server resource is
RESOURCE_EXHAUSTED. Anything else is a bug and stays INTERNAL (with an incident id).
"""

from __future__ import annotations

import logging

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from models.errors import ResourceExhausted, SeenextError, Unavailable

log = logging.getLogger(__name__)

# Seconds a caller waits for a free connection before UNAVAILABLE (and a start for the first one).
POOL_TIMEOUT = 10.0

# SQLSTATEs that are the server's or the operator's fault, not the request's.
_EXHAUSTED = {
    "53100": "PostgreSQL's disk has no room left for the database",
    "53200": "PostgreSQL ran out of memory",
    "53400": "a PostgreSQL configuration limit was reached",
}
_UNAVAILABLE = {
    "53300": "PostgreSQL accepts no more connections",
    "57P01": "PostgreSQL is shutting down",
    "57P02": "PostgreSQL crashed",
    "57P03": "PostgreSQL is starting or cannot take connections now",
    "58030": "PostgreSQL's disk failed to read or write",
    "25006": "the database is a read-only standby",
    "40001": "a concurrent transaction conflicted with this one",
    "40P01": "a concurrent transaction deadlocked with this one",
}


def where(url: str) -> str:
    """host:port/database of a URL, never its password (for messages and logs)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable SEENEXT_DATABASE_URL"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def storage_fault(exc: BaseException, url: str) -> SeenextError | None:
    """The domain error a driver error stands for when the database is unreachable, full or failing;
    None for the others (a bug: they stay INTERNAL)."""
    if not isinstance(exc, psycopg.Error):
        return None
    at = where(url)
    if isinstance(exc, PoolTimeout):
        log.error("no PostgreSQL connection to %s within %.0f s: %s", at, POOL_TIMEOUT, exc)
        return Unavailable(
            f"storage unavailable: no database connection free or possible ({at})"
            f" within {POOL_TIMEOUT:.0f} s;"
            " nothing of this write was kept, retry later"
        )
    state = exc.sqlstate or ""
    if state in _EXHAUSTED:
        log.error("the database %s is full: %s (%s); writes fail until space is freed", at, exc, state)
        return ResourceExhausted(
            f"storage full: {_EXHAUSTED[state]} (SQLSTATE {state}); nothing of this write was kept,"
            " retry once space is freed"
        )
    reason = _UNAVAILABLE.get(state)
    if reason is None and (
        state.startswith("08") or (not state and isinstance(exc, psycopg.OperationalError))
    ):
        reason = "the connection to PostgreSQL failed"
    if reason is None:
        return None
    log.error("the database %s cannot be used: %s (%s)", at, exc, state or "no SQLSTATE")
    return Unavailable(
        f"storage unavailable: {reason} ({at}, SQLSTATE {state or 'none'}); nothing of this write was kept,"
        " retry later"
    )


def open_pool(url: str, size: int) -> ConnectionPool:
    """A pool of up to `size` autocommit connections, its first one opened (else UNAVAILABLE)."""
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max(1, size),
        kwargs={"autocommit": True},
        timeout=POOL_TIMEOUT,
        name="seenext",
        open=False,
    )
    try:
        pool.open(wait=True, timeout=POOL_TIMEOUT)
    except PoolTimeout as exc:
        pool.close()
        raise Unavailable(
            f"storage unavailable: cannot connect to PostgreSQL at {where(url)} within {POOL_TIMEOUT:.0f} s"
            " (is it running, and does SEENEXT_DATABASE_URL name it?)"
        ) from exc
    return pool
