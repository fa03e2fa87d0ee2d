"""Retry transient database errors with exponential backoff, full jitter and a bounded total time.

Transient: the connection dropped or the server restarted, a deadlock, a lock wait timeout, a
serialization failure.  Everything else (constraint violations, a wrong schema, permission denied,
bad data) is permanent and raised at once: retrying cannot help and only delays the alert.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATE classes/codes (PostgreSQL, also reported by psycopg):
#   08xxx connection exceptions, 40001 serialization failure, 40P01 deadlock, 55P03 lock not available,
#   57P01/57P02/57P03 admin shutdown / crash shutdown / cannot connect now, 53300 too many connections.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"}
# MariaDB/MySQL error numbers: 1205 lock wait timeout, 1213 deadlock, 1040 too many connections,
# 1053 server shutdown, 1927 connection killed, 2003 can't connect, 2006 server gone away,
# 2013 lost connection during query, 2014 commands out of sync after a drop.
_TRANSIENT_MYSQL = {1040, 1053, 1205, 1213, 1927, 2003, 2006, 2013, 2014}
_TRANSIENT_SQLITE = ("database is locked", "database table is locked")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # including the first
    base_delay: float = 0.5  # seconds before the first retry
    max_delay: float = 8.0  # cap of one backoff step
    max_total: float = 60.0  # no new attempt starts after this many seconds


def sqlstate_of(err: BaseException) -> str | None:
    orig = getattr(err, "orig", err)
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)


def is_transient(err: BaseException) -> bool:
    """True for errors that may succeed on a fresh connection and a new transaction."""
    if isinstance(err, DBAPIError) and err.connection_invalidated:
        return True
    orig = getattr(err, "orig", err)
    code = sqlstate_of(err)
    if code and (code in _TRANSIENT_SQLSTATES or code.startswith("08")):
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _TRANSIENT_MYSQL:
        return True
    text = str(orig).lower()
    if any(t in text for t in _TRANSIENT_SQLITE):
        return True
    # psycopg raises OperationalError without a SQLSTATE when the socket closes under it.
    return type(orig).__name__ == "OperationalError" and code is None and "consuming input failed" in text


def with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn`; on a transient error wait base*2^k (full jitter, capped) and call it again.

    Gives up after `policy.attempts` calls or once `policy.max_total` seconds have passed and
    re-raises the last error; permanent errors are re-raised immediately.
    """
    start = time.monotonic()
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except Exception as err:
            if not is_transient(err):
                raise
            delay = random.uniform(0, min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)))
            elapsed = time.monotonic() - start
            if attempt == policy.attempts or elapsed + delay > policy.max_total:
                raise
            log.warning(
                "%s: transient error on attempt %d/%d (%s); retrying in %.2fs",
                what,
                attempt,
                policy.attempts,
                str(getattr(err, "orig", err)).strip().splitlines()[0][:200]
                if str(err)
                else type(err).__name__,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")
