"""Which database errors are transient: the classification every caller uses.

Transient: the connection dropped or the server restarted, a deadlock, a lock wait timeout, a
serialization failure.  Everything else (constraint violations, a wrong schema, permission denied,
bad data) is permanent.  Nothing in `pipelines` retries a transient error itself: it is raised as
`SourceUnavailableError`, and the one retry layer is the caller's (Airflow's task retries with
exponential backoff; `seam` exits with code 3).  Every step is idempotent, so a retry is safe.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

# SQLSTATE classes/codes (PostgreSQL, also reported by psycopg):
#   08xxx connection exceptions, 40001 serialization failure, 40P01 deadlock, 55P03 lock not available,
#   57P01/57P02/57P03 admin shutdown / crash shutdown / cannot connect now, 53300 too many connections.
_TRANSIENT_SQLSTATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"}
# MariaDB/MySQL error numbers: 1205 lock wait timeout, 1213 deadlock, 1040 too many connections,
# 1053 server shutdown, 1927 connection killed, 2003 can't connect, 2006 server gone away,
# 2013 lost connection during query, 2014 commands out of sync after a drop.
_TRANSIENT_MYSQL = {1040, 1053, 1205, 1213, 1927, 2003, 2006, 2013, 2014}
_TRANSIENT_SQLITE = ("database is locked", "database table is locked")


def sqlstate_of(err: BaseException) -> str | None:
    orig = getattr(err, "orig", err)
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)


def error_number(err: BaseException) -> int | None:
    """The server's error number (MariaDB/MySQL), if the driver gave one."""
    args = getattr(getattr(err, "orig", err), "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_transient(err: BaseException) -> bool:
    """True for errors that may succeed on a fresh connection and a new transaction."""
    if isinstance(err, DBAPIError) and err.connection_invalidated:
        return True
    orig = getattr(err, "orig", err)
    code = sqlstate_of(err)
    if code and (code in _TRANSIENT_SQLSTATES or code.startswith("08")):
        return True
    if error_number(err) in _TRANSIENT_MYSQL:
        return True
    text = str(orig).lower()
    if any(t in text for t in _TRANSIENT_SQLITE):
        return True
    # psycopg raises OperationalError without a SQLSTATE when the socket closes under it.
    return type(orig).__name__ == "OperationalError" and code is None and "consuming input failed" in text
