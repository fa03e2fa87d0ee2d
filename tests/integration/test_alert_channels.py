"""Alerts reach Slack and Microsoft Teams: the real notifiers post to a real (local) HTTP webhook
server through Airflow connections defined in the environment, and the tests read what it got.
Run alerts and incident alerts, severity routing, once per incident, and what a channel that
answers HTTP 500 or cannot be reached does to the outcome."""

from __future__ import annotations

import json
import logging
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

# imported at collection: importing Airflow configures its logging, which would drop the handler
# of a test's caplog that is already set up
from pipelines.airflow.alerts import Alert, incident_sender, send_alert
from pipelines.config import Config, NotifySpec, load_config, results_url
from pipelines.db import make_engine
from pipelines.errors import DeliveryError, SourceUnavailableError
from pipelines.load import load_batch
from pipelines.load.incidents import load_incidents
from pipelines.run_context import RunContext
from pipelines.steps import run_incident_alerts, run_migrate
from tests.conftest import Webhooks, serving_webhooks, write_config
from tests.unit.test_incidents_tracking import TH, _scores

NIGHT = date(2026, 11, 20)


@pytest.fixture
def webhooks() -> Iterator[Webhooks]:
    with serving_webhooks() as hooks:
        yield hooks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connections(monkeypatch: pytest.MonkeyPatch, **urls: str) -> dict[str, str]:
    """Airflow connections from the environment, as a deployment defines them: a Slack Incoming
    Webhook connection (URL in its password) or an HTTP connection for Teams."""
    ids = {}
    for name, url in urls.items():
        conn_id = f"seam_test_{name}_{uuid.uuid4().hex[:6]}"
        kind = "slackwebhook" if name.startswith("slack") else "http"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": kind, "password": url})
        )
        ids[name] = conn_id
    return ids


def make_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, notifications: dict) -> Config:
    monkeypatch.setenv("SEAM_CH_ERP", f"sqlite:///{tmp_path / 'erp.db'}")
    monkeypatch.setenv("SEAM_CH_CRM", f"sqlite:///{tmp_path / 'crm.db'}")
    cfg = load_config(
        write_config(
            tmp_path / "seam.yml",
            erp_env="SEAM_CH_ERP",
            crm_env="SEAM_CH_CRM",
            lake=tmp_path / "lake",
            reports=tmp_path / "reports",
            overrides={"notifications": notifications},
        )
    )
    run_migrate(cfg)
    return cfg


def store_incidents(cfg: Config) -> dict[str, str]:
    """Tonight's scores with one critical incident (SKU-1|WH1) and one medium one (SKU-2|WH1);
    returns {entity: incident id}."""
    critical = _scores(NIGHT, [NIGHT])
    medium = critical.assign(
        entity="SKU-2|WH1", score=critical["score"].where(~critical["is_anomaly"], 0.9996)
    )
    scores = pd.concat([critical, medium], ignore_index=True)
    engine = make_engine(results_url(cfg.source("erp")), write=True)
    try:
        load_incidents(engine, NIGHT, scores, thresholds=TH, window_days=7)
        rows = scores.assign(
            value=1.0, expected=1.0, lower_bound=0.0, upper_bound=2.0, severity=None, model="m"
        )
        load_batch(engine, "seam_anomaly_scores", NIGHT, rows)
        with engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT entity, incident_id, severity FROM seam_anomaly_incidents")
            ).all()
    finally:
        engine.dispose()
    assert {(e, s) for e, _, s in found} == {("SKU-1|WH1", "critical"), ("SKU-2|WH1", "medium")}
    return {e: i for e, i, _ in found}


def alerted(cfg: Config) -> list[tuple[str, str, str]]:
    engine = make_engine(results_url(cfg.source("erp")))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT incident_id, severity, channels FROM seam_anomaly_incident_alerts")
            )
            return sorted((str(i), str(s), str(c)) for i, s, c in rows)
    finally:
        engine.dispose()


def card_texts(post: dict[str, Any]) -> list[str]:
    """The text blocks of a Teams webhook message, after checking it is the envelope Teams takes:
    a `message` with one Adaptive Card attachment."""
    assert post["type"] == "message"
    (attachment,) = post["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    assert all(b["type"] == "TextBlock" and isinstance(b["text"], str) and b["wrap"] for b in card["body"])
    return [b["text"] for b in card["body"]]


def test_a_failed_night_alert_reaches_slack_and_teams_once_with_its_log_links(
    webhooks, tmp_path, monkeypatch
):
    ids = connections(monkeypatch, slack=webhooks.url("slack"), teams=webhooks.url("teams"))
    cfg = make_cfg(
        tmp_path,
        monkeypatch,
        {
            "alerts": [
                {"channel": "slack", "conn_id": ids["slack"]},
                {"channel": "teams", "conn_id": ids["teams"]},
            ]
        },
    )
    log_url = "http://localhost:8080/dags/seam_nightly/runs/scheduled__2026-11-20/tasks/load"
    alert = Alert(  # as the DAG's verdict writes it
        subject="[seam] night 2026-11-20 failed (seam_nightly, run scheduled__2026-11-20)",
        lines=("load: failed (LoadError: the <orders> table refused 3 rows & more)", "report: not run"),
        links=(("load", log_url),),
        footer="Fix the cause, then re-run the failed tasks",
    )
    assert send_alert(cfg, alert) == 2
    (slack,) = webhooks.posts["slack"]
    text = slack["text"]
    assert text.startswith("*[seam] night 2026-11-20 failed (seam_nightly, run scheduled__2026-11-20)*")
    assert "\u2022 load: failed (LoadError: the &lt;orders&gt; table refused 3 rows &amp; more)" in text
    assert "\u2022 report: not run" in text
    assert f"<{log_url}|load>" in text  # a Slack link to the task's log page
    (teams,) = webhooks.posts["teams"]
    texts = card_texts(teams)
    assert texts[0] == alert.subject
    assert "- load: failed (LoadError: the <orders> table refused 3 rows & more)" in texts
    assert "- report: not run" in texts
    assert f"[load]({log_url})" in texts


def test_incident_alerts_go_to_the_channels_of_their_severity_once(webhooks, tmp_path, monkeypatch):
    ids = connections(monkeypatch, slack=webhooks.url("slack"), teams=webhooks.url("teams"))
    cfg = make_cfg(
        tmp_path,
        monkeypatch,
        {
            "incident_alerts": [
                {"severity": "critical", "channel": "slack", "conn_id": ids["slack"]},
                {"severity": "critical", "channel": "teams", "conn_id": ids["teams"]},
                {"severity": "medium", "channel": "teams", "conn_id": ids["teams"]},
            ]
        },
    )
    incidents = store_incidents(cfg)
    assert run_incident_alerts(cfg, RunContext(NIGHT), incident_sender(cfg)) == 2
    (slack,) = webhooks.posts["slack"]  # critical only: the medium incident is not on Slack
    assert "1 new or escalated incident" in slack["text"]
    assert "CRITICAL demand SKU-1|WH1" in slack["text"] and incidents["SKU-1|WH1"] in slack["text"]
    assert "SKU-2|WH1" not in slack["text"]
    (teams,) = webhooks.posts["teams"]  # one message listing both
    texts = card_texts(teams)
    assert "2 new or escalated incident" in texts[0]
    assert any(t.startswith("- CRITICAL demand SKU-1|WH1") and incidents["SKU-1|WH1"] in t for t in texts)
    assert any(t.startswith("- MEDIUM demand SKU-2|WH1") and incidents["SKU-2|WH1"] in t for t in texts)
    assert alerted(cfg) == sorted(
        [(incidents["SKU-1|WH1"], "critical", "slack,teams"), (incidents["SKU-2|WH1"], "medium", "teams")]
    )
    assert run_incident_alerts(cfg, RunContext(NIGHT), incident_sender(cfg)) == 0  # a re-run sends nothing
    assert (len(webhooks.posts["slack"]), len(webhooks.posts["teams"])) == (1, 1)


@pytest.mark.parametrize("broken", ["slack", "teams"])
@pytest.mark.parametrize("fault", ["http 500", "unreachable"])
def test_an_incident_alert_no_channel_took_fails_the_step_and_the_retry_sends_it(
    broken, fault, webhooks, tmp_path, monkeypatch, caplog, capfd
):
    from pipelines.state import read_ledger

    url = webhooks.url(broken) if fault == "http 500" else f"http://127.0.0.1:{_free_port()}/{broken}"
    ids = connections(monkeypatch, **{broken: url})
    cfg = make_cfg(
        tmp_path,
        monkeypatch,
        {"incident_alerts": [{"severity": "critical", "channel": broken, "conn_id": ids[broken]}]},
    )
    incidents = store_incidents(cfg)
    webhooks.status[broken] = 500
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceUnavailableError) as failed:
        run_incident_alerts(cfg, RunContext(NIGHT), incident_sender(cfg))
    message = str(failed.value)
    assert f"{broken} (connection {ids[broken]}) missed 1 incident(s)" in message
    assert ("500" in message) if fault == "http 500" else ("refused" in message.lower())
    assert "reached no channel" in message
    assert f"incident alert '[seam] night {NIGHT}: 1 new or escalated incident(s)' to {broken}" in caplog.text
    printed = capfd.readouterr()
    leaks = [line for line in (caplog.text + printed.out + printed.err + message).splitlines() if url in line]
    assert not leaks  # the webhook URL is the secret
    assert alerted(cfg) == []  # not recorded: the retry sends it
    ledger, _ = read_ledger(cfg, nights=[NIGHT])
    (step,) = ledger[ledger["step"] == "alert_incidents"].itertuples()
    assert step.status == "failed" and "missed 1 incident(s)" in step.error
    if fault == "http 500":  # the channel is back: the retry delivers, once
        webhooks.status[broken] = 200
        assert run_incident_alerts(cfg, RunContext(NIGHT), incident_sender(cfg)) == 1
        (post,) = webhooks.posts[broken]
        assert incidents["SKU-1|WH1"] in json.dumps(post)
        assert [a[1:] for a in alerted(cfg)] == [("critical", broken)]


def test_a_channel_that_missed_incidents_others_took_fails_the_step_without_retry(
    webhooks, tmp_path, monkeypatch
):
    ids = connections(monkeypatch, slack=webhooks.url("slack"), teams=webhooks.url("teams"))
    cfg = make_cfg(
        tmp_path,
        monkeypatch,
        {
            "incident_alerts": [
                {"severity": "critical", "channel": "slack", "conn_id": ids["slack"]},
                {"severity": "critical", "channel": "teams", "conn_id": ids["teams"]},
            ]
        },
    )
    store_incidents(cfg)
    webhooks.status["teams"] = 500
    with pytest.raises(DeliveryError) as failed:
        run_incident_alerts(cfg, RunContext(NIGHT), incident_sender(cfg))
    assert f"teams (connection {ids['teams']}) missed 1 incident(s)" in str(failed.value)
    assert "HTTP 500" in str(failed.value)
    assert len(webhooks.posts["slack"]) == 1
    assert [a[1:] for a in alerted(cfg)] == [("critical", "slack")]  # recorded with the channel it reached


def test_a_run_alert_a_channel_refused_is_logged_and_the_others_get_it(
    webhooks, tmp_path, monkeypatch, caplog
):
    ids = connections(monkeypatch, slack=webhooks.url("slack"), teams=webhooks.url("teams"))
    cfg = make_cfg(
        tmp_path,
        monkeypatch,
        {
            "alerts": [
                {"channel": "slack", "conn_id": ids["slack"]},
                {"channel": "teams", "conn_id": ids["teams"]},
            ]
        },
    )
    webhooks.status["slack"] = 500
    with caplog.at_level(logging.DEBUG):
        assert send_alert(cfg, Alert(subject="[seam] night 2026-11-20 failed", lines=("load: failed",))) == 1
    assert "could not send the alert '[seam] night 2026-11-20 failed' to slack" in caplog.text
    assert f"(connection {ids['slack']})" in caplog.text and "500" in caplog.text
    assert webhooks.url("slack") not in caplog.text
    assert "slack" not in webhooks.posts and len(webhooks.posts["teams"]) == 1


def test_seam_run_sends_the_nights_incident_alerts_once_and_one_alert_when_the_night_fails(
    demo_env, webhooks, monkeypatch, capsys
):
    import yaml

    from pipelines import cli
    from tests.conftest import NIGHT as DEMO_NIGHT
    from tests.e2e.faults import INJECTED, faults

    ids = connections(monkeypatch, slack=webhooks.url("slack"), teams=webhooks.url("teams"))
    path = demo_env(lean=True)
    spike = make_engine(f"sqlite:///{path.parent / 'erp.db'}", write=True)
    with spike.begin() as conn:  # tonight, one order line of 500 units of a product that sells a few a day
        conn.execute(
            sa.text(
                "INSERT INTO sales_order_lines VALUES ((SELECT max(order_id) FROM sales_orders "
                "WHERE order_date = :night), 99, 'SKU-0001', 500, 5.89, 0, 0, 'open', :at)"
            ),
            {"night": str(DEMO_NIGHT), "at": f"{DEMO_NIGHT} 12:00:00"},
        )
    spike.dispose()
    raw = yaml.safe_load(path.read_text())
    raw["notifications"] = {
        "alerts": [{"channel": "teams", "conn_id": ids["teams"]}],
        "incident_alerts": [
            {"severity": s, "channel": "slack", "conn_id": ids["slack"]}
            for s in ("critical", "high", "medium")
        ],
    }
    path.write_text(yaml.safe_dump(raw))
    run = ["run", "--config", str(path), "--date", str(DEMO_NIGHT)]
    assert cli.main(run) == 0, capsys.readouterr().err
    (post,) = webhooks.posts["slack"]
    assert f"[seam] night {DEMO_NIGHT}: " in post["text"] and "new or escalated incident(s)" in post["text"]
    cfg = load_config(path)
    sent = [a for src in ("erp", "crm") for a in _alerted_in(cfg, src)]
    assert sent and all(incident in post["text"] for incident, _ in sent)  # the message names each
    assert "teams" not in webhooks.posts  # the night succeeded: no run alert
    assert cli.main(run) == 0  # the same night again: its incidents are not alerted twice
    assert len(webhooks.posts["slack"]) == 1
    step = ["alert-incidents", "--config", str(path), "--date", str(DEMO_NIGHT)]
    capsys.readouterr()
    assert cli.main(step) == 0  # the step on its own, as a night run step by step does
    assert "0 incident(s) alerted" in capsys.readouterr().out and len(webhooks.posts["slack"]) == 1
    status = ["status", "--config", str(path)]
    assert cli.main(status) == 0
    shown = capsys.readouterr().out
    assert f"{DEMO_NIGHT}: OK (" in shown and re.search(r"\n\s+alert_incidents\s+success", shown)
    from pipelines.state.status import expected_steps  # a complete night has the step, when alerts are set

    assert "alert_incidents" in expected_steps(cfg, 1)
    assert "alert_incidents" not in expected_steps(replace(cfg, notifications=NotifySpec()), 1)
    for module, attr, replacement in faults("report"):
        monkeypatch.setattr(module, attr, replacement)
    assert cli.main(run) == 2
    assert len(webhooks.posts["slack"]) == 1
    (alert,) = webhooks.posts["teams"]  # one run alert naming the failed step
    texts = card_texts(alert)
    assert texts[0] == f"[seam] night {DEMO_NIGHT} failed (seam run)"
    assert f"- report: failed (ConfigError: {INJECTED} in report)" in texts


def _alerted_in(cfg: Config, source: str) -> list[tuple[str, str]]:
    engine = make_engine(results_url(cfg.source(source)))
    try:
        with engine.connect() as conn:
            return [
                (str(i), str(s))
                for i, s in conn.execute(
                    sa.text("SELECT incident_id, severity FROM seam_anomaly_incident_alerts")
                )
            ]
    finally:
        engine.dispose()


def test_seam_run_alerts_even_when_the_ledger_database_is_down(webhooks, tmp_path, monkeypatch, capsys):
    from pipelines import cli

    ids = connections(monkeypatch, teams=webhooks.url("teams"))
    monkeypatch.setenv("SEAM_DOWN_ERP", f"postgresql+psycopg://seam:secret@127.0.0.1:{_free_port()}/erp")
    monkeypatch.setenv("SEAM_DOWN_CRM", f"sqlite:///{tmp_path / 'crm.db'}")
    path = write_config(
        tmp_path / "seam.yml",
        erp_env="SEAM_DOWN_ERP",
        crm_env="SEAM_DOWN_CRM",
        lake=tmp_path / "lake",
        reports=tmp_path / "reports",
        overrides={"notifications": {"alerts": [{"channel": "teams", "conn_id": ids["teams"]}]}},
    )
    code = cli.main(["run", "--config", str(path), "--date", "2026-11-20"])
    assert code == 3, capsys.readouterr().err
    (alert,) = webhooks.posts["teams"]  # one alert, saying what failed, though the ledger cannot be read
    texts = card_texts(alert)
    assert texts[0] == "[seam] night 2026-11-20 failed (seam run)"
    assert any(t.startswith("- SourceUnavailableError: ") for t in texts), texts
    assert not any("secret" in t for t in texts)
