"""Overrides as a CSV file planners edit in a spreadsheet: `seam override list --csv` writes one,
`seam override import` reads one.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return before
one) as a formula, so a reason typed as `=HYPERLINK(...)` into the database would run on the
planner's machine. Written text cells that start with one of those characters get a leading `'`
(OWASP's advice for CSV injection), which spreadsheets show as text and do not keep; reading takes
that `'` off again, so a file written and read back holds the same text. Numbers and dates are
written as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import ConfigError
from pipelines.overrides.rules import INPUT_COLUMNS

if TYPE_CHECKING:  # pandas is imported when a file is read or written (the CLI starts without it)
    import pandas as pd

# the columns a planner writes (`seam override import`): the override's own, and its expiry
CSV_COLUMNS = (*INPUT_COLUMNS, "expires_on")
# written for information by `list --csv`, ignored by `import`
INFO_COLUMNS = ("override_id", "created_at")
TEXT_COLUMNS = ("sku", "category", "warehouse", "author", "reason")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """`text` as a spreadsheet shows it but never runs it."""
    return "'" + text if text.startswith(FORMULA_START) else text


def restore(text: str) -> str:
    """The text `neutralise` was given."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_START) else text


def write_overrides_csv(rows: pd.DataFrame, path: Path) -> int:
    """Write stored overrides (`read_overrides`) as CSV; returns the number of rows."""
    import pandas as pd

    out = pd.DataFrame({c: rows[c] for c in (*INFO_COLUMNS, *CSV_COLUMNS) if c in rows.columns})
    for c in TEXT_COLUMNS:
        if c in out.columns:
            out[c] = out[c].map(lambda v: neutralise(str(v)) if isinstance(v, str) else v)
    for c in ("start_date", "end_date", "expires_on"):
        if c in out.columns:
            out[c] = pd.to_datetime(out[c]).dt.strftime("%Y-%m-%d")
    if "created_at" in out.columns:
        out["created_at"] = pd.to_datetime(out["created_at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        out.to_csv(path, index=False)
    except OSError as err:
        raise ConfigError(f"cannot write overrides to {path}: {err.strerror}") from None
    return len(out)


def read_overrides_csv(path: Path) -> pd.DataFrame:
    """The rows of an override CSV file (text, neutralised cells restored); a file that cannot be
    read or has unknown or missing columns is a ConfigError that says nothing was written."""
    import pandas as pd

    try:
        rows = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ConfigError(f"cannot read overrides from {path}: {err}") from None
    rows = rows.drop(columns=[c for c in INFO_COLUMNS if c in rows.columns])
    unknown = sorted(set(rows.columns) - set(CSV_COLUMNS))
    required = {"start_date", "end_date", "author", "reason"} | (
        {"sku"} if "category" not in rows.columns else set()
    )
    missing = sorted(required - set(rows.columns))
    if unknown or missing:
        raise ConfigError(
            f"{path}: columns must be among {list(CSV_COLUMNS)}; missing {missing}, unknown {unknown}; "
            f"nothing was written"
        )
    if not len(rows):
        raise ConfigError(f"{path} has no override rows; nothing was written")
    for c in TEXT_COLUMNS:
        if c in rows.columns:
            rows[c] = rows[c].map(restore)
    return rows
