"""Analysts' labels and incident alerts against real databases (SQLite, PostgreSQL, MariaDB):
the label CLI refuses bad input and writes nothing, a label counts from its night on only (a
backfilled earlier night ignores it), the view counts labels, and an incident alert e-mail goes
out once, through a real SMTP server."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from pipelines.anomaly.nightly import feedback_points
from pipelines.cli import main
from pipelines.config import Config, load_config, results_url
from pipelines.db import make_engine
from pipelines.load.feedback import LabelTarget, read_all_labels
from pipelines.load.incidents import load_incidents
from pipelines.run_context import RunContext
from pipelines.steps import run_incident_alerts, run_label, run_migrate
from tests.conftest import write_config
from tests.unit.test_incidents_tracking import TH, _scores

N1, N2, N3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def make_cfg(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def make(notifications: dict | None = None) -> Config:
        if request.param == "sqlite":
            urls = [f"sqlite:///{tmp_path / 'erp.db'}", f"sqlite:///{tmp_path / 'crm.db'}"]
        else:
            factory = request.getfixturevalue(
                "pg_database" if request.param == "postgresql" else "mariadb_database"
            )
            urls = [factory(), factory()]
        monkeypatch.setenv("SEAM_FB_ERP", urls[0])
        monkeypatch.setenv("SEAM_FB_CRM", urls[1])
        path = write_config(
            tmp_path / "seam.yml",
            erp_env="SEAM_FB_ERP",
            crm_env="SEAM_FB_CRM",
            lake=tmp_path / "lake",
            reports=tmp_path / "reports",
            overrides={"notifications": notifications} if notifications else None,
        )
        cfg = load_config(path)
        run_migrate(cfg)
        return cfg

    return make


def erp(cfg: Config) -> sa.Engine:
    return make_engine(results_url(cfg.source("erp")), write=True)


def store_night(cfg: Config, night: date, days: list[date], score: float = 0.999995) -> str:
    """Load one night's demand scores (and so its incidents) into the ERP database."""
    engine = erp(cfg)
    try:
        scores = _scores(night, days).assign(score=lambda f: f["score"].where(~f["is_anomaly"], score))
        load_incidents(engine, night, scores, thresholds=TH, window_days=7)
        rows = scores.assign(
            value=1.0, expected=1.0, lower_bound=0.0, upper_bound=2.0, severity=None, model="m"
        )
        from pipelines.load import load_batch

        load_batch(engine, "seam_anomaly_scores", night, rows)
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT incident_id FROM seam_anomaly_incidents")).scalar())
    finally:
        engine.dispose()


def count(cfg: Config, sql: str = "SELECT count(*) FROM seam_anomaly_feedback") -> int:
    total = 0
    for src in ("erp", "crm"):
        engine = make_engine(results_url(cfg.source(src)))
        with engine.connect() as conn:
            total += int(conn.execute(sa.text(sql)).scalar() or 0)
        engine.dispose()
    return total


def test_label_cli_refuses_bad_input_and_writes_nothing(make_cfg, capsys) -> None:
    cfg = make_cfg()
    incident = store_night(cfg, N1, [N1])
    base = ["anomaly", "label", "--config", str(cfg.path)]
    bad = [
        (
            ["--incident", "0123456789abcdef", "--label", "false_positive", "--author", "ana"],
            "unknown incident",
        ),
        (["--incident", incident, "--label", "wrong", "--author", "ana"], "unknown label 'wrong'"),
        (["--incident", incident, "--label", "expected"], "needs an author"),
        (
            ["--metric", "nope", "--entity", "A", "--date", str(N1), "--label", "expected", "--author", "a"],
            "metric",
        ),
        (["--metric", "demand", "--entity", "SKU-1|WH1", "--label", "expected", "--author", "a"], "--date D"),
        (
            [
                "--metric",
                "demand",
                "--entity",
                "SKU-9|WH1",
                "--date",
                str(N1),
                "--label",
                "fixed",
                "--author",
                "a",
            ],
            "no score",
        ),
    ]
    for args, message in bad:
        assert main(base + args) == 2, args
        assert message in capsys.readouterr().err
    assert count(cfg) == 0
    assert (
        main([*base, "--incident", incident, "--label", "confirmed", "--author", "ana", "--note", "real"])
        == 0
    )
    point = ["--metric", "demand", "--entity", "SKU-1|WH1", "--date", str(N1 - timedelta(days=3))]
    assert main([*base, *point, "--label", "expected", "--author", "bo"]) == 0
    assert count(cfg) == 2
    capsys.readouterr()
    assert main(["anomaly", "labels", "--config", str(cfg.path)]) == 0
    listing = capsys.readouterr().out
    assert "confirmed" in listing and incident in listing and "precision from labels 1.00" in listing


def test_a_label_counts_from_its_night_on_and_the_view_counts_labels(make_cfg, caplog) -> None:
    cfg = make_cfg()
    incident = store_night(cfg, N1, [N1 - timedelta(days=1), N1])
    run_label(
        cfg, LabelTarget(incident_id=incident), label="false_positive", author="ana", note=None, valid_from=N2
    )
    series = pd.DataFrame(
        {"unique_id": "u1", "metric": "demand", "entity": "SKU-1|WH1", "ds": [pd.Timestamp(N1)]}
    )
    # a backfill of night N1 (the label was written later) scores without it; N2 and later use it
    assert feedback_points(read_all_labels(cfg, N1), series) is None
    later = feedback_points(read_all_labels(cfg, N3), series)
    assert later is not None and later["ds"].dt.date.tolist() == [N1 - timedelta(days=1), N1]
    assert set(later["unique_id"]) == {"u1"}
    engine = erp(cfg)
    try:
        with engine.begin() as conn:  # analysts' plain SQL, one of them invalid
            conn.execute(
                sa.text(
                    "INSERT INTO seam_anomaly_feedback (incident_id, label, author) VALUES "
                    "(:i, 'confirmed', 'bo'), (:i, 'False Positive', 'cy')"
                ),
                {"i": incident},
            )
            bad_id = conn.execute(sa.text("SELECT max(feedback_id) FROM seam_anomaly_feedback")).scalar()
        with caplog.at_level(logging.WARNING):
            labels = read_all_labels(cfg, None)
        assert f"feedback_id {bad_id}: unknown label 'False Positive'" in caplog.text
        assert labels["label"].tolist() == ["confirmed"]  # the latest valid label of the incident
        with engine.connect() as conn:
            view = conn.execute(sa.text("SELECT * FROM seam_v_anomaly_feedback")).mappings().one()
        assert (view["n_confirmed"], view["n_false_positive"], view["n_targets"]) == (1, 0, 1)
        assert float(view["label_precision"]) == 1.0
    finally:
        engine.dispose()


def test_incident_alert_e_mail_goes_out_once_and_again_on_escalation(make_cfg, smtp_server) -> None:
    from pipelines.airflow.alerts import incident_sender

    inbox, port = smtp_server
    before = len(inbox.messages)
    cfg = make_cfg(
        {
            "smtp": {"host": "127.0.0.1", "port": port},
            "sender": "seam@example.com",
            "incident_alerts": [{"severity": "critical", "channel": "email", "to": ["oncall@example.com"]}],
        }
    )
    incident = store_night(cfg, N1, [N1])
    assert run_incident_alerts(cfg, RunContext(N1), incident_sender(cfg)) == 1
    assert run_incident_alerts(cfg, RunContext(N1), incident_sender(cfg)) == 0  # a re-run sends nothing
    store_night(cfg, N2, [N1, N2])  # the same incident goes on, still critical: no new alert
    assert run_incident_alerts(cfg, RunContext(N2), incident_sender(cfg)) == 0
    mails = inbox.messages[before:]
    assert len(mails) == 1
    rcpt, msg = mails[0]
    assert rcpt == ["oncall@example.com"] and "1 new or escalated incident" in msg["Subject"]
    body = "".join(
        (part.get_payload(decode=True) or b"").decode() for part in msg.walk() if not part.is_multipart()
    )
    assert incident in body and "SKU-1|WH1" in body
    assert count(cfg, "SELECT count(*) FROM seam_anomaly_incident_alerts") == 1


def test_an_incident_labelled_false_positive_is_not_alerted(make_cfg, smtp_server) -> None:
    from pipelines.airflow.alerts import incident_sender

    inbox, port = smtp_server
    before = len(inbox.messages)
    cfg = make_cfg(
        {
            "smtp": {"host": "127.0.0.1", "port": port},
            "incident_alerts": [{"severity": "high", "channel": "email", "to": ["oncall@example.com"]}],
        }
    )
    incident = store_night(cfg, N1, [N1], score=0.99995)  # high
    run_label(
        cfg, LabelTarget(incident_id=incident), label="expected", author="ana", note=None, valid_from=N1
    )
    assert run_incident_alerts(cfg, RunContext(N1), incident_sender(cfg)) == 0
    assert len(inbox.messages) == before


def test_a_night_after_labels_leaves_them_out_of_its_scores_and_reports_them(demo_env) -> None:
    from pipelines.lake import Lake
    from pipelines.steps import run_all, run_report, run_score
    from tests.conftest import NIGHT

    cfg = load_config(demo_env(lean=True))
    ctx = RunContext(NIGHT)
    run_all(cfg, ctx)
    assert "no labels yet" in (cfg.report.directory / str(NIGHT) / "report.txt").read_text()
    scores = Lake(cfg.lake).read_output("anomalies", NIGHT)
    demand = scores[scores["metric"] == "demand"].sort_values(["entity", "ds"])
    entity, day = demand["entity"].iloc[0], pd.Timestamp(demand["ds"].iloc[-1]).date()
    fp = LabelTarget(metric="demand", entity=entity, ds=day)
    run_label(cfg, fp, label="false_positive", author="ana", note="a stock count", valid_from=NIGHT)
    other = store_night(cfg, NIGHT, [NIGHT])  # an incident of another series, confirmed
    run_label(
        cfg, LabelTarget(incident_id=other), label="confirmed", author="bo", note=None, valid_from=NIGHT
    )
    run_score(cfg, ctx)  # the night again, with the labels in force on it
    again = Lake(cfg.lake).read_output("anomalies", NIGHT)
    row = again[
        (again["metric"] == "demand")
        & (again["entity"] == entity)
        & (pd.to_datetime(again["ds"]).dt.date == day)
    ]
    assert len(row) == 1 and not bool(row["is_anomaly"].iloc[0]) and "analyst" in str(row["reason"].iloc[0])
    run_report(cfg, ctx)
    text = (cfg.report.directory / str(NIGHT) / "report.txt").read_text()
    section = text[text.index("ANALYSTS' FEEDBACK") :]
    assert (
        "2 labelled: 0 expected, 1 false positive, 1 confirmed, 0 fixed; precision from labels 50%" in section
    )
    assert "confirmed, not yet fixed: demand SKU-1|WH1" in section
    html = (cfg.report.directory / str(NIGHT) / "report.html").read_text()
    assert "Confirmed, not yet fixed" in html and "precision" in html.lower()
