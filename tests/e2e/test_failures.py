"""A failure in any kind of task makes the night fail visibly: the DAG run is `failed`, `seam run`
exits non-zero, each sends exactly one alert to the (real, local) SMTP server, and the report
starts by naming the failure.  Failures are injected by a test fixture (`tests/e2e/faults.py`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from pipelines import cli
from pipelines.demo import generate
from tests.conftest import NIGHT, ROOT, SMALL, Webhooks, serving_webhooks, write_config
from tests.e2e.faults import INJECTED, STEPS, faults

pytestmark = pytest.mark.e2e
NIGHTS = {step: NIGHT - timedelta(days=i) for i, step in enumerate(STEPS)}


@pytest.fixture(scope="module")
def slack() -> Iterator[Webhooks]:
    """A local Slack webhook, and the Airflow connection `seam_faults_slack` to it (from the
    environment, as the DAG's tasks and `seam run` read it)."""
    with serving_webhooks() as hooks:
        os.environ["AIRFLOW_CONN_SEAM_FAULTS_SLACK"] = json.dumps(
            {"conn_type": "slackwebhook", "password": hooks.url("slack")}
        )
        try:
            yield hooks
        finally:
            del os.environ["AIRFLOW_CONN_SEAM_FAULTS_SLACK"]


def _slack_alerts(slack: Webhooks, night, by: str = "(seam_nightly, run") -> list[str]:
    return [
        p["text"]
        for p in slack.posts.get("slack", [])
        if p["text"].startswith(f"*[seam] night {night} failed") and by in p["text"]
    ]


@pytest.fixture(scope="module")
def night_env(tmp_path_factory: pytest.TempPathFactory, smtp_server, slack) -> dict:
    _, port = smtp_server
    tmp = tmp_path_factory.mktemp("faults")
    erp, crm = f"sqlite:///{tmp / 'erp.db'}", f"sqlite:///{tmp / 'crm.db'}"
    generate(erp, crm, SMALL)
    tag = uuid.uuid4().hex[:6].upper()
    os.environ[f"SEAM_ERP_{tag}"], os.environ[f"SEAM_CRM_{tag}"] = erp, crm
    notifications = {
        "smtp": {"host": "127.0.0.1", "port": port},
        "sender": "seam@example.com",
        "report_to": ["planning@example.com"],
        "alerts": [
            {"channel": "email", "to": ["oncall@example.com"]},
            {"channel": "slack", "conn_id": "seam_faults_slack"},
        ],
        "incident_alerts": [{"severity": "critical", "channel": "email", "to": ["incidents@example.com"]}],
    }
    config = write_config(
        tmp / "seam.yml",
        erp_env=f"SEAM_ERP_{tag}",
        crm_env=f"SEAM_CRM_{tag}",
        lake=tmp / "lake",
        reports=tmp / "reports",
        overrides={"notifications": notifications, "schedule": {"start_date": "2026-01-01"}},
        lean=True,  # every kind of task, fewer of them: ten nights through Airflow stay affordable
    )
    return {"config": config, "tmp": tmp}


def _alerts(inbox, night, by: str = "(seam_nightly, run") -> list:
    """The run alerts of `night` sent by the DAG (or by `seam run`)."""
    return [
        m
        for _, m in inbox.messages
        if m["Subject"].startswith(f"[seam] night {night} failed") and by in m["Subject"]
    ]


def _body(message) -> str:
    parts = [p for p in message.walk() if p.get_content_type() in ("text/html", "text/plain")]
    return "\n".join(p.get_payload(decode=True).decode() for p in parts)


@pytest.fixture(scope="module")
def dag_results(night_env, smtp_server, request) -> dict[str, tuple[str, str]]:
    """The failure of every selected step (`-k`) through Airflow, in one process (Airflow starts once)."""
    chosen = [
        item.callspec.params["step"]
        for item in request.session.items
        if getattr(item, "originalname", "")
        == "test_a_failed_task_fails_the_run_alerts_once_and_the_report_says_so"
    ]
    home = night_env["tmp"] / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "SEAM_CONFIG": str(night_env["config"]),
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    cases = [f"{step}:{night}" for step, night in NIGHTS.items() if step in chosen]
    res = subprocess.run(
        [sys.executable, "-m", "tests.e2e.faults", *cases],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]
    out = {}
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            _, step, _, state, failed = line.split(" ", 4)
            out[step] = (state, failed)
    assert set(out) == set(chosen), res.stdout[-3000:]
    return out


@pytest.mark.parametrize("step", STEPS)
def test_a_failed_task_fails_the_run_alerts_once_and_the_report_says_so(
    step, dag_results, night_env, smtp_server, slack
):
    inbox, _ = smtp_server
    night = NIGHTS[step]
    state, failed = dag_results[step]
    assert state == "failed", (step, state, failed)
    assert step in failed and "verdict" in failed  # the failed task, and the verdict that failed the run
    (alert,) = _alerts(inbox, night)  # exactly one alert for the run
    body = _body(alert)
    assert f"{INJECTED} in {step}" in body
    assert "/dags/seam_nightly/runs/" in body  # a real log URL, not a run id
    (text,) = _slack_alerts(slack, night)  # the same alert, once, on Slack
    assert f"{INJECTED} in {step}" in text
    assert "/dags/seam_nightly/runs/" in text and f"|{step}" in text  # a Slack link to the task's log
    report = night_env["tmp"] / "reports" / str(night) / "report.txt"
    if step == "report":  # the report itself failed: nothing to read, the alert says why
        assert not report.exists()
        return
    if step == "send_report":  # the report was written before its e-mail failed: the alert says it
        return
    lines = report.read_text().splitlines()
    assert lines[2] == "WHAT WENT WRONG TONIGHT", lines[:4]
    assert f"{INJECTED} in {step}" in lines[3], lines[:5]


@pytest.mark.parametrize("step", STEPS)
def test_seam_run_exits_non_zero_naming_the_failed_step_and_alerts_once(
    step, night_env, smtp_server, slack, monkeypatch, capsys
):
    inbox, _ = smtp_server
    before = len(_alerts(inbox, NIGHT, by="(seam run)"))
    before_slack = len(_slack_alerts(slack, NIGHT, by="(seam run)"))
    for module, attr, replacement in faults(step):
        monkeypatch.setattr(module, attr, replacement)
    cfg = yaml.safe_load(Path(night_env["config"]).read_text())
    cfg["lake"] = str(night_env["tmp"] / f"lake-cli-{step}")  # a lake of its own: nights stay apart
    cfg["report"] = {"directory": str(night_env["tmp"] / f"reports-cli-{step}")}
    config = night_env["tmp"] / f"cli-{step}.yml"
    config.write_text(yaml.safe_dump(cfg))
    code = cli.main(["run", "--config", str(config), "--date", str(NIGHT)])
    err = capsys.readouterr().err
    assert code == (4 if step in ("validate", "load") else 2), err
    assert f"{INJECTED} in {step}" in err and "step(s) did not succeed" in err
    sent = _alerts(inbox, NIGHT, by="(seam run)")[before:]
    assert len(sent) == 1, [m["Subject"] for m in sent]  # exactly one alert for the failed night
    assert f"{step}" in _body(sent[0]) and f"{INJECTED} in {step}" in _body(sent[0])
    (text,) = _slack_alerts(slack, NIGHT, by="(seam run)")[before_slack:]
    assert f"{INJECTED} in {step}" in text
