"""Schema drift between a table's previous snapshot and this run's schema."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from pipelines.errors import SchemaDriftError

log = logging.getLogger(__name__)


def schema_to_json(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def check_drift(previous: list[dict[str, Any]] | None, current: pa.Schema, *, where: str) -> list[str]:
    """Compare schemas: additive changes return warnings; removed, renamed or retyped columns raise.

    A removed column plus an added column of the same type is reported as a probable rename.
    """
    if previous is None:
        return []
    before = {c["name"]: c["type"] for c in previous}
    after = {f.name: str(f.type) for f in current}
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    retyped = [f"{n}: {before[n]} -> {after[n]}" for n in after if n in before and before[n] != after[n]]
    renamed = []
    for old in list(removed):
        match = [new for new in added if after[new] == before[old]]
        if len(match) == 1:
            renamed.append(f"{old} -> {match[0]} ({before[old]})")
            removed.remove(old)
            added.remove(match[0])
    problems = []
    if removed:
        problems.append(f"removed columns {removed}")
    if renamed:
        problems.append(f"renamed columns (probably) {renamed}")
    if retyped:
        problems.append(f"retyped columns {retyped}")
    if problems:
        raise SchemaDriftError(
            f"schema drift in {where}: "
            + "; ".join(problems)
            + ". The previous snapshot's schema is in the lake partition's manifest. Fix the source, or map the "
            "new names in the config's `columns:` and re-run; nothing downstream ran on this table."
        )
    warnings = [f"schema drift in {where}: added columns {added}"] if added else []
    for w in warnings:
        log.warning(w)
    return warnings
