"""The `seam` command line: exit codes and messages for bad input."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _seam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_malformed_date_is_refused():
    res = _seam("run", "--config", "config/demo.yml", "--date", "2026-13-45")
    assert res.returncode == 2
    assert "not a date: '2026-13-45'; use YYYY-MM-DD" in res.stderr


def test_missing_config_file(tmp_path):
    res = _seam("extract", "--config", str(tmp_path / "none.yml"), "--date", "2026-11-22")
    assert res.returncode == 2
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr


def test_generate_refuses_to_overwrite_without_replace(tmp_path):
    args = [
        "generate",
        "--erp-url",
        f"sqlite:///{tmp_path}/erp.db",
        "--crm-url",
        f"sqlite:///{tmp_path}/crm.db",
        "--days",
        "60",
        "--skus",
        "2",
        "--warehouses",
        "1",
        "--customers",
        "5",
    ]
    assert _seam(*args).returncode == 0
    res = _seam(*args)
    assert res.returncode == 2 and "pass --replace" in res.stderr
