"""A step's process takes Arrow's buffers from the system allocator, unless the operator chose one."""

from __future__ import annotations

import subprocess
import sys


def _pool_after(env: dict[str, str]) -> str:
    code = "from pipelines.process import use_system_allocator; print(use_system_allocator())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_system_allocator_unless_the_environment_chose_one(monkeypatch):
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    import os

    base = dict(os.environ)
    assert _pool_after(base) == "system"
    assert _pool_after({**base, "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}) == "mimalloc"


def test_every_seam_command_and_airflow_task_sets_it_up(monkeypatch, tmp_path):
    """The CLI's entry and the Airflow tasks' night set the process up before anything else, even
    before the config is read (here: a config that does not exist)."""
    import pyarrow as pa
    import pytest

    from pipelines import cli
    from pipelines.airflow import tasks

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    missing = tmp_path / "missing.yml"
    try:
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        assert cli.main(["status", "--config", str(missing)]) != 0
        assert pa.default_memory_pool().backend_name == "system"
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        with pytest.raises(Exception, match=r"missing\.yml"):
            tasks.night({"logical_date": None, "data_interval_start": None, "run_id": "r"}, missing)
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(pa.system_memory_pool())
