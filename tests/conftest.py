"""Shared fixtures: a small seeded demo, per-test databases on real servers, configs."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from pipelines.demo import DemoSize, generate

ROOT = Path(__file__).resolve().parent.parent
NIGHT = date(2026, 11, 22)
SMALL = DemoSize(days=200, skus=6, warehouses=2, customers=40, end_date=NIGHT, seed=7)
# the small demo's forecast series: its 6 SKUs and its 3 upcoming launches, in 2 warehouses each
SMALL_SERIES = (6 + 3) * 2


SERVER_FIXTURES = {
    "pg_database",
    "mariadb_database",
    "pg_database_module",
    "mariadb_database_module",
    "redis_url",
}
SERVER_PARAMS = {"postgresql", "mariadb", "mysql"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a database server `server` (by its fixtures or its parameters),
    and every test under tests/integration or tests/e2e with its directory's marker."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        uses = set(getattr(item, "fixturenames", ())) & SERVER_FIXTURES
        if uses or {str(v) for v in params.values()} & SERVER_PARAMS or item.get_closest_marker("server"):
            item.add_marker(pytest.mark.server)
        for kind in ("integration", "e2e"):
            if f"/tests/{kind}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, kind))


def _server_url(var: str, what: str) -> str:
    url = os.environ.get(var)
    if not url:
        message = f"{var} is not set: no {what} server to test against (run scripts/services.sh)"
        if os.environ.get("SEAM_REQUIRE_SERVICES") == "1":
            pytest.fail(f"SEAM_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    return url


@contextmanager
def _pg_databases() -> Iterator[Callable[[], str]]:
    admin_url = _server_url("SEAM_TEST_POSTGRES_URL", "PostgreSQL")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"seam_t_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in created:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def _mariadb_databases() -> Iterator[Callable[[], str]]:
    admin_url = _server_url("SEAM_TEST_MARIADB_URL", "MariaDB")
    admin = sa.create_engine(admin_url)
    created: list[str] = []

    def make() -> str:
        name = f"seam_t_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        created.append(name)
        return make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.begin() as conn:
            for name in created:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """Factory of fresh, uniquely named PostgreSQL databases; all dropped after the test."""
    with _pg_databases() as make:
        yield make


@pytest.fixture
def mariadb_database() -> Iterator[Callable[[], str]]:
    """Factory of fresh, uniquely named MariaDB databases; all dropped after the test."""
    with _mariadb_databases() as make:
        yield make


@pytest.fixture(scope="module")
def pg_database_module() -> Iterator[Callable[[], str]]:
    """`pg_database` for a module whose tests share one scenario (e.g. several nights)."""
    with _pg_databases() as make:
        yield make


@pytest.fixture(scope="module")
def mariadb_database_module() -> Iterator[Callable[[], str]]:
    """`mariadb_database` for a module whose tests share one scenario."""
    with _mariadb_databases() as make:
        yield make


# the tables of a lean night: every kind of step, fewer tasks (tests that run many nights)
LEAN_TABLES = {"erp": ("order_lines", "products", "customers"), "crm": ("tickets",)}


def write_config(
    path: Path,
    *,
    erp_env: str,
    crm_env: str,
    lake: Path,
    reports: Path,
    overrides: dict | None = None,
    lean: bool = False,
) -> Path:
    """A copy of the demo config whose sources come from environment variables (`lean`: only
    `LEAN_TABLES`, and the anomaly metrics they feed)."""
    cfg = yaml.safe_load((ROOT / "config" / "demo.yml").read_text())
    cfg["lake"] = str(lake)
    cfg["sources"]["erp"].pop("url")
    cfg["sources"]["erp"]["url_env"] = erp_env
    cfg["sources"]["crm"].pop("url")
    cfg["sources"]["crm"]["url_env"] = crm_env
    cfg["report"] = {"directory": str(reports)}
    cfg["forecast"]["horizon"] = 14
    cfg["anomaly"]["history_days"] = 200
    if lean:
        for name, keep in LEAN_TABLES.items():
            tables = cfg["sources"][name]["tables"]
            cfg["sources"][name]["tables"] = {t: v for t, v in tables.items() if t in keep}
        cfg["anomaly"]["metrics"] = ["demand", "revenue", "tickets"]
    for key, value in (overrides or {}).items():
        cfg[key] = value
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Generate the small demo into the given ERP/CRM URLs and return a config file for it."""

    def make(
        erp_url: str | None = None, crm_url: str | None = None, size: DemoSize = SMALL, *, lean: bool = False
    ) -> Path:
        erp_url = erp_url or f"sqlite:///{tmp_path / 'erp.db'}"
        crm_url = crm_url or f"sqlite:///{tmp_path / 'crm.db'}"
        generate(erp_url, crm_url, size)
        tag = uuid.uuid4().hex[:6].upper()
        monkeypatch.setenv(f"SEAM_ERP_URL_{tag}", erp_url)
        monkeypatch.setenv(f"SEAM_CRM_URL_{tag}", crm_url)
        return write_config(
            tmp_path / "seam.yml",
            erp_env=f"SEAM_ERP_URL_{tag}",
            crm_env=f"SEAM_CRM_URL_{tag}",
            lake=tmp_path / "lake",
            reports=tmp_path / "reports",
            lean=lean,
        )

    return make


class Inbox:
    """Messages an in-process SMTP server received: (recipients, message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # aiosmtpd hook
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free local port."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@dataclass
class Webhooks:
    """What a local webhook server received (the JSON bodies POSTed, per path), and the HTTP
    status each path answers (200 when not set; only 200 records the body)."""

    port: int
    posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


@contextmanager
def serving_webhooks() -> Iterator[Webhooks]:
    """A real HTTP server on a free local port standing in for Slack and Teams webhooks."""
    hooks = Webhooks(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            path = self.path.strip("/")
            body = self.rfile.read(int(self.headers["Content-Length"]))
            code = hooks.status.get(path, 200)
            if code == 200:
                hooks.posts.setdefault(path, []).append(json.loads(body))
            answer = b"ok" if code == 200 else b"internal_error"
            self.send_response(code)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hooks.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()
