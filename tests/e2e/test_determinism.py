"""The same inputs give bit-identical results: one night run in two fresh processes (different
hash seeds, different process counts) loads the same batches, checksum for checksum."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from pipelines.config import load_config, source_url
from tests.conftest import NIGHT

pytestmark = pytest.mark.e2e


def _checksums(config: Path) -> dict[tuple[str, str], str]:
    cfg = load_config(config)
    out = {}
    for name in ("erp", "crm"):
        engine = sa.create_engine(source_url(cfg.source(name)))
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT table_name, checksum, row_count FROM seam_load_batches").all()
        engine.dispose()
        out.update({(name, t): f"{c}:{n}" for t, c, n in rows})
    return out


def test_a_night_is_bit_identical_across_processes(demo_env, tmp_path: Path) -> None:
    runs = []
    for n, (seed, processes) in enumerate((("1", 1), ("2", 2))):
        config = demo_env(
            f"sqlite:///{tmp_path / f'erp{n}.db'}", f"sqlite:///{tmp_path / f'crm{n}.db'}", lean=True
        )
        raw = yaml.safe_load(config.read_text())
        raw["lake"], raw["report"] = str(tmp_path / f"lake{n}"), {"directory": str(tmp_path / f"reports{n}")}
        raw["scale"] = {"processes_per_task": processes}
        path = tmp_path / f"seam{n}.yml"
        path.write_text(yaml.safe_dump(raw))
        env = {**os.environ, "PYTHONHASHSEED": seed}
        res = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "run", "--config", str(path), "--date", str(NIGHT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(_checksums(path))
    assert runs[0].keys() == runs[1].keys() and len(runs[0]) >= 6
    differ = {k: (runs[0][k], runs[1][k]) for k in runs[0] if runs[0][k] != runs[1][k]}
    assert not differ, differ
