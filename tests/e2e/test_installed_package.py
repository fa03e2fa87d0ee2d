"""The package as a data engineer installs it: the wheel in a fresh virtual environment outside the
checkout, the DAG file and the config laid out as the Docker image lays them out, one night run
through Airflow.  Nothing of the checkout is on `sys.path`."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import NIGHT, ROOT, SMALL_SERIES

pytestmark = pytest.mark.e2e
UV = Path(os.environ.get("SEAM_UV", ROOT / ".venv" / "bin" / "uv"))


def _run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: int = 900) -> str:
    res = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (
        f"{' '.join(argv)} failed ({res.returncode}):\n{(res.stdout + res.stderr)[-4000:]}"
    )
    return res.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not UV.exists():
        pytest.fail(f"{UV} not found: run `make install` (it installs uv into .venv)")
    home = tmp_path_factory.mktemp("installed")
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "AIRFLOW", "SEAM_CONFIG"))
    }
    dist = home / "dist"
    _run([str(UV), "build", "--wheel", "--out-dir", str(dist), str(ROOT)], env=clean, cwd=home)
    (wheel,) = dist.glob("seam-*.whl")
    venv = home / "venv"
    _run([str(UV), "venv", "--python", "3.11", str(venv)], env=clean, cwd=home)
    _run(
        [
            str(UV),
            "pip",
            "install",
            "--python",
            str(venv / "bin" / "python"),
            "-c",
            str(ROOT / "constraints.txt"),
            str(wheel),
        ],
        env=clean,
        cwd=home,
        timeout=1800,
    )
    return {"home": home, "wheel": wheel, "venv": venv, "env": clean}  # type: ignore[dict-item]


def test_wheel_carries_migrations_suites_and_templates(installed: dict) -> None:
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for dialect in ("postgresql", "mysql", "sqlite"):
        shipped = sorted(n for n in names if n.startswith(f"pipelines/sql/{dialect}/"))
        in_checkout = sorted(
            f"pipelines/sql/{dialect}/{p.name}" for p in (ROOT / "sql" / dialect).glob("*.sql")
        )
        assert shipped == in_checkout and shipped
    suites = sorted(p.name for p in (ROOT / "expectations").glob("*.json"))
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("pipelines/expectations/")) == suites
    assert {"pipelines/report/templates/report.html.j2", "pipelines/report/templates/report.txt.j2"} <= set(
        names
    )


def test_a_night_through_airflow_from_the_installed_package(installed: dict) -> None:
    home, bin_ = installed["home"], installed["venv"] / "bin"
    # the Dockerfile's layout: the DAG in Airflow's dags folder, the config elsewhere
    dags, config_dir, data = home / "airflow" / "dags", home / "etc", home / "data"
    dags.mkdir(parents=True)
    config_dir.mkdir()
    shutil.copy(ROOT / "dags" / "seam_nightly.py", dags)
    raw = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    raw["lake"] = str(data / "lake")
    raw["sources"]["erp"]["url"] = f"sqlite:///{data / 'erp.db'}"
    raw["sources"]["crm"]["url"] = f"sqlite:///{data / 'crm.db'}"
    raw["report"] = {"directory": str(data / "reports")}
    raw["forecast"]["horizon"] = 14
    raw["anomaly"]["history_days"] = 200
    config = config_dir / "seam.yml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {
        **installed["env"],
        "PATH": f"{bin_}:{installed['env'].get('PATH', '')}",
        "SEAM_CONFIG": str(config),
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow' / 'airflow.db'}",
    }
    seam = str(bin_ / "seam")
    where = _run(
        [str(bin_ / "python"), "-c", "import pipelines; print(pipelines.__file__)"], env=env, cwd=home
    )
    assert str(installed["venv"]) in where and str(ROOT) not in where
    _run(
        [
            seam,
            "generate",
            "--erp-url",
            f"sqlite:///{data / 'erp.db'}",
            "--crm-url",
            f"sqlite:///{data / 'crm.db'}",
            "--days",
            "200",
            "--skus",
            "6",
            "--warehouses",
            "2",
            "--customers",
            "40",
            "--seed",
            "7",
        ],
        env=env,
        cwd=home,
    )
    assert "applied ['001_results'" in _run([seam, "migrate", "--config", str(config)], env=env, cwd=home)
    airflow = str(bin_ / "airflow")
    _run([airflow, "db", "migrate"], env=env, cwd=home)
    _run([airflow, "pools", "set", "source_databases", "4", "source connections"], env=env, cwd=home)
    _run([airflow, "dags", "test", "seam_nightly", NIGHT.isoformat()], env=env, cwd=home, timeout=1800)
    listing = _run([airflow, "dags", "list-runs", "seam_nightly", "-o", "json"], env=env, cwd=home)
    runs = json.loads(next(line for line in reversed(listing.splitlines()) if line.startswith("[")))
    assert [r["state"] for r in runs] == ["success"], runs
    with sqlite3.connect(data / "erp.db") as conn:
        forecasts = conn.execute(
            "SELECT count(*) FROM seam_forecasts WHERE run_date = ?", (NIGHT.isoformat(),)
        ).fetchone()[0]
        quality = conn.execute("SELECT count(*), sum(success) FROM seam_data_quality_results").fetchone()
    assert forecasts == SMALL_SERIES * 14
    assert quality[0] > 30 and quality[0] == quality[1]
    report = data / "reports" / NIGHT.isoformat() / "report.html"
    assert report.is_file() and "Forecast" in report.read_text()
    status = _run([seam, "status", "--config", str(config)], env=env, cwd=home)
    assert f"{NIGHT}: OK" in status
