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


def test_version_is_the_package_version():
    from importlib.metadata import version

    res = _seam("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"seam {version('seam')}"
    assert version("seam") in (ROOT / "CHANGELOG.md").read_text()  # every version has its entry


def test_config_comes_from_seam_config_and_its_absence_is_explained(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "SEAM_CONFIG"}
    res = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "status"], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert res.returncode == 2 and "pass --config FILE or set SEAM_CONFIG" in res.stderr
    missing = tmp_path / "nowhere.yml"
    res = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "status"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env, "SEAM_CONFIG": str(missing)},
    )
    assert res.returncode == 2 and str(missing) in res.stderr  # the variable's file was the one used


def test_backfill_range_is_checked():
    res = _seam("run", "--config", "config/demo.yml", "--from", "2026-11-22", "--to", "2026-11-20")
    assert res.returncode == 2 and "--to 2026-11-20 is before --from 2026-11-22" in res.stderr
    res = _seam("run", "--config", "config/demo.yml", "--date", "2026-11-22", "--from", "2026-11-20")
    assert res.returncode == 2 and "not both" in res.stderr


def test_backfill_runs_every_night_oldest_first(demo_env):
    config = demo_env()
    res = _seam("run", "--config", str(config), "--from", "2026-11-20", "--to", "2026-11-21")
    assert res.returncode == 0, res.stderr[-3000:]
    done = [line.split(":")[0] for line in res.stdout.splitlines() if line.startswith("night ")]
    assert done == ["night 2026-11-20", "night 2026-11-21"]
