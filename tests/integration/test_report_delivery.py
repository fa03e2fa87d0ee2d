"""The nightly report as people receive it: e-mail through a real SMTP server, and a real browser."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from pipelines.config import load_config, source_url
from pipelines.demo import generate
from pipelines.errors import SourceUnavailableError
from pipelines.lake import read_dataset
from pipelines.run_context import RunContext
from pipelines.steps import run_all, run_send_report
from tests.conftest import NIGHT, SMALL, SMALL_SERIES, write_config

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def night(tmp_path_factory, smtp_server):
    """One small demo night with hostile text in ERP and CRM names, run end to end with e-mail."""
    _, port = smtp_server
    tmp = tmp_path_factory.mktemp("delivery")
    erp, crm = f"sqlite:///{tmp / 'erp.db'}", f"sqlite:///{tmp / 'crm.db'}"
    generate(erp, crm, SMALL)
    for url, sql in (
        (erp, f"UPDATE products SET product_name = '{HOSTILE}'"),
        (crm, f"UPDATE accounts SET account_name = '{HOSTILE}'"),
    ):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
        engine.dispose()
    tag = uuid.uuid4().hex[:6].upper()
    os.environ[f"SEAM_ERP_{tag}"], os.environ[f"SEAM_CRM_{tag}"] = erp, crm
    notifications = {
        "smtp": {"host": "127.0.0.1", "port": port},
        "sender": "seam@example.com",
        "report_to": ["planning@example.com", "ops@example.com"],
    }
    path = write_config(
        tmp / "seam.yml",
        erp_env=f"SEAM_ERP_{tag}",
        crm_env=f"SEAM_CRM_{tag}",
        lake=tmp / "lake",
        reports=tmp / "reports",
        overrides={"notifications": notifications},
    )
    cfg = load_config(path)
    report = run_all(cfg, RunContext(NIGHT))
    yield cfg, report, path
    os.environ.pop(f"SEAM_ERP_{tag}"), os.environ.pop(f"SEAM_CRM_{tag}")


def test_report_e_mail_is_received_with_both_parts_and_inline_charts(night, smtp_server):
    inbox, _ = smtp_server
    assert len(inbox.messages) == 1
    rcpt, msg = inbox.messages[0]
    assert sorted(rcpt) == ["ops@example.com", "planning@example.com"]
    assert msg["Subject"] == f"Nightly demand and anomaly report: {NIGHT}"
    assert msg.get_content_type() == "multipart/alternative"
    text = (
        next(p for p in msg.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    )
    html = (
        next(p for p in msg.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    )
    images = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert "HEADLINES" in text and "TOP ANOMALIES" in text and "Orders:" in text
    assert len(images) >= 3 and "data:image" not in html
    for img in images:  # every inline image is referenced from the HTML part
        assert f"cid:{img['Content-ID'].strip('<>')}" in html
    assert "<script>" not in html


def test_report_has_forecasts_per_category(night):
    cfg, report, _ = night
    html = report.read_text()
    products = read_dataset(cfg, "products", NIGHT)
    assert "By category" in html
    for category in products["category"].unique():
        assert f'alt="forecast for {category}"' in html


def test_hostile_source_text_is_escaped(night):
    _, report, _ = night
    html = report.read_text()
    assert "<script>document.title" not in html and "<img src=x" not in html
    assert "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;" in html


def test_report_renders_in_a_real_browser(night, tmp_path):
    _, report, _ = night
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("SEAM_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium); .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f"<title>Nightly demand and anomaly report — {NIGHT}</title>" in dom.stdout  # no script ran
    assert "Top anomalies" in dom.stdout and 'src="data:image/png;base64,' in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1000,2400", f"--screenshot={shot}", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 50_000  # charts and tables were painted, not a blank page


def test_smtp_down_fails_visibly_once_and_keeps_the_data(night, tmp_path):
    cfg, _, path = night
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    raw = yaml.safe_load(Path(path).read_text())
    raw["notifications"]["smtp"]["port"] = dead
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(raw))
    with pytest.raises(SourceUnavailableError, match=rf"could not send .* through 127.0.0.1:{dead}"):
        run_send_report(load_config(broken), RunContext(NIGHT))
    engine = sa.create_engine(source_url(cfg.source("erp")))
    with engine.connect() as conn:
        forecasts = conn.exec_driver_sql("SELECT count(*) FROM seam_forecasts").scalar()
        status = conn.exec_driver_sql(
            "SELECT status FROM seam_run_ledger WHERE step = 'send_report' AND attempt = "
            "(SELECT MAX(attempt) FROM seam_run_ledger WHERE step = 'send_report')"
        ).scalar()
    engine.dispose()
    assert forecasts == SMALL_SERIES * 14 and status == "failed"
