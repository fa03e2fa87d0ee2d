"""Retention: what `seam prune` removes, and what it must never remove."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from pipelines.config import parse_config
from pipelines.lake import Lake
from pipelines.quality.gx import expired_validations
from pipelines.run_context import RunContext
from pipelines.steps import run_prune

TODAY = date(2026, 11, 22)


def _config(tmp_path: Path):
    raw = {
        "lake": {"path": str(tmp_path / "lake"), "keep_days": 10, "quarantine_keep_days": 3},
        "sources": {
            "erp": {
                "url": "sqlite:///x.db",
                "tables": {
                    "products": {},
                    "order_lines": {"mode": "incremental", "cursor": "updated_at", "table": "lines"},
                },
            }
        },
        "forecast": {"horizon": 14},
        "report": {"directory": str(tmp_path / "reports"), "keep_days": 5},
    }
    return parse_config(raw, base=tmp_path)


def _night(lake: Lake, source: str, table: str, day: date) -> None:
    with lake.stage_table(source, table, day) as staged:
        pd.DataFrame({"a": [1]}).to_parquet(staged.data_file)
        staged.write_manifest({"rows": 1})


def test_prune_keeps_increments_the_accuracy_window_and_the_newest_night(tmp_path):
    cfg = _config(tmp_path)
    lake = Lake(cfg.lake)
    nights = [TODAY - timedelta(days=k) for k in range(40)]
    for d in nights:
        _night(lake, "erp", "products", d)
        _night(lake, "erp", "order_lines", d)  # incremental: every night is needed
        lake.write_shard_plan("forecasts", d, 1)
        lake.write_shard("forecasts", d, 0, pd.DataFrame({"run_date": [pd.Timestamp(d)], "yhat": [1.0]}), {})
        lake.write_quarantine("order_lines", d, pd.DataFrame({"_seam_row": [0]}))
        lake.write_shard_plan("record_fits", d, 1)  # an exchange between steps, outside the datasets
        lake.write_exchange(
            "record_fits", d, 0, pd.DataFrame({"p": [0], "v": [1]}), by="p", parts=1, manifest={}
        )
    old_only = TODAY - timedelta(days=100)
    _night(lake, "erp", "stale_table", old_only)  # a table whose newest night is old: it stays
    for d in nights[:8]:
        (cfg.report.directory / d.isoformat()).mkdir(parents=True)
    (cfg.report.directory / "gx-project").mkdir()

    planned = run_prune(cfg, RunContext(TODAY), dry_run=True)
    assert lake.partition_days("erp", "products") == sorted(nights)  # a dry run removes nothing
    gone = set(planned.lake)
    assert not [g for g in gone if "table=order_lines/" in g]  # increments: never
    assert f"source=erp/table=stale_table/run_date={old_only}" not in gone  # the newest night: never
    assert len([g for g in gone if "table=products/" in g]) == 40 - 11  # older than keep_days (10)
    # outputs keep the accuracy window (horizon 14 + 7, and the night before) over keep_days
    assert len([g for g in gone if "table=forecasts/" in g]) == 40 - 23
    assert len([g for g in gone if "table=record_fits/" in g]) == 40 - 23  # as the outputs
    assert len([g for g in gone if "table=quarantine_order_lines/" in g]) == 40 - 4
    assert [p.name for p in planned.reports] == [d.isoformat() for d in sorted(nights[6:8])]

    from pipelines.steps import run_migrate

    run_migrate(cfg)  # the ledger records the prune step
    done = run_prune(cfg, RunContext(TODAY))
    assert set(done.lake) == gone
    assert (
        len(lake.partition_days("erp", "products")) == 11
        and len(lake.partition_days("erp", "order_lines")) == 40
    )
    assert lake.table_days("erp", "products") == sorted(nights)[-11:]  # manifests went with the data
    kept = lake.exchange_days("record_fits")
    assert kept == sorted(nights)[-23:]
    assert [d for d in nights if lake.complete_shards("record_fits", d)] == [d for d in nights if d in kept]
    assert sorted(p.name for p in cfg.report.directory.iterdir()) == sorted(
        ["gx-project", *[d.isoformat() for d in nights[:6]]]
    )


def test_expired_data_docs_files_are_found_by_their_night(tmp_path):
    project = tmp_path / "gx-project"
    old = project / "gx" / "uncommitted" / "validations" / "s" / "r" / "20261001T000000.000000Z" / "b.json"
    new = project / "gx" / "uncommitted" / "validations" / "s" / "r" / "20261120T000000.000000Z" / "b.json"
    page = project / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations" / "s" / "r"
    old_page = page / "20261001T000000.000000Z" / "b.html"
    for f in (old, new, old_page):
        f.parent.mkdir(parents=True)
        f.write_text("{}")
    assert expired_validations(project, date(2026, 11, 1)) == sorted([old, old_page])
