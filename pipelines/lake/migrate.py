"""One-time move of a lake written by seam before 0.2 into the current layout.

The old layout had `<source>/<table>/snapshot_date=D/` for source tables and `_seam/<output>/
run_date=D/[shard=NNNNN/]` for outputs, with `_manifest.json` inside every partition and the
night's date repeated inside output files.  `migrate_layout` moves source partitions (a rename),
rewrites outputs in the current form, and removes what it moved.  It runs at the start of every
step under a file lock, so an existing lake keeps working without anyone running anything.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pandas as pd

from pipelines.lake.store import OUTPUTS, Lake, _read_json, _replace_folder, _write_json

log = logging.getLogger(__name__)
_OLD_MANIFEST = "_manifest.json"


def _old_sources(root: Path) -> list[Path]:
    """Top-level folders of the old layout (a source name, or `_seam`)."""
    if not root.is_dir():
        return []
    return [
        p
        for p in root.iterdir()
        if p.is_dir() and "=" not in p.name and (p.name == OUTPUTS or not p.name.startswith(("_", ".")))
    ]


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    lock = root / "_state" / "layout.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def migrate_layout(lake: Lake) -> list[str]:
    """Move an old-layout lake into the current layout; returns what was moved (empty: nothing)."""
    root = Path(lake.root)
    if not _old_sources(root):
        return []
    moved: list[str] = []
    with _locked(root):
        for top in _old_sources(root):  # again, under the lock: another process may have done it
            for table in sorted(p for p in top.iterdir() if p.is_dir() and not p.name.startswith(".")):
                for part in sorted(table.iterdir()):
                    if part.name.startswith("."):  # a crash leftover of the old writer
                        shutil.rmtree(part, ignore_errors=True)
                        continue
                    key, _, day_text = part.name.partition("=")
                    if not day_text:
                        continue
                    day = date.fromisoformat(day_text)
                    if top.name == OUTPUTS:
                        _move_output(lake, table.name, day, part)
                    else:
                        _move_table(lake, top.name, table.name, day, part)
                    moved.append(f"{top.name}/{table.name}/{key}={day_text}")
            shutil.rmtree(top, ignore_errors=True)
    if moved:
        log.info("lake %s: moved %d partitions of the old layout into the current one", root, len(moved))
    return moved


def _move_table(lake: Lake, source: str, table: str, day: date, part: Path) -> None:
    manifest = _read_json(part / _OLD_MANIFEST)
    (part / _OLD_MANIFEST).unlink(missing_ok=True)
    _replace_folder(part, lake.table_partition(source, table, day))
    if manifest is not None:  # only complete partitions had one; the others stay incomplete
        _write_json(lake._meta(source, table, day), manifest)


def _frame(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def _move_output(lake: Lake, output: str, day: date, part: Path) -> None:
    if output.startswith("quality_"):
        lake.write_quality(output.removeprefix("quality_"), day, _frame(part))
    elif output.startswith("quarantine_"):
        manifest = _read_json(part / _OLD_MANIFEST) or {}
        lake.write_quarantine(output.removeprefix("quarantine_"), day, _frame(part), manifest=manifest)
    else:
        plan = _read_json(part / _OLD_MANIFEST)
        for shard_dir in sorted(part.glob("shard=*")):
            shard_manifest = _read_json(shard_dir / _OLD_MANIFEST)
            if shard_manifest is None:
                continue  # an incomplete shard: the night stays incomplete
            shard = int(shard_dir.name.split("=", 1)[1])
            lake.write_shard(output, day, shard, _frame(shard_dir), manifest=shard_manifest)
        if plan is not None:
            lake.write_shard_plan(output, day, int(plan.get("shards", 0)))
    shutil.rmtree(part, ignore_errors=True)
