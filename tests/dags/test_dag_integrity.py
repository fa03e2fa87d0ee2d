"""DAG integrity: the folder imports cleanly and every DAG follows the project's policies."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="session")
def dagbag(tmp_path_factory: pytest.TempPathFactory):
    import os

    home = tmp_path_factory.mktemp("airflow_home")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {p.stem for p in DAGS.glob("*.py") if not p.name.startswith("_")}


def test_policies(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert Path(dag.fileloc).stem == dag_id, "file stem must equal dag_id"
        assert dag.tags, f"{dag_id} needs tags"
        assert dag.doc_md and "backfill" in dag.doc_md.lower()
        assert dag.start_date is not None and dag.start_date.tzinfo is not None
        assert dag.catchup is False
        for t in dag.tasks:
            assert t.owner == "data-engineering"
            if t.task_id != "verdict":  # a verdict on the run, retrying cannot change it
                assert t.retries >= 1 and t.retry_exponential_backoff
            assert t.execution_timeout is not None and t.execution_timeout <= timedelta(hours=6)
            assert not t.on_failure_callback, f"{t.task_id}: alerts go out once per run, from the verdict"
        assert dag.dagrun_timeout is not None and dag.on_failure_callback, (
            f"{dag_id} needs a run deadline alert"
        )
        # the watcher: the one leaf, downstream of every task, runs whatever failed
        leaves = [t for t in dag.tasks if not t.downstream_task_ids]
        assert [t.task_id for t in leaves] == ["verdict"]
        assert leaves[0].upstream_task_ids == {t.task_id for t in dag.tasks} - {"verdict"}
        assert leaves[0].trigger_rule == "all_done"


def test_nightly_task_graph(dagbag):
    dag = dagbag.dags["seam_nightly"]
    up = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    everything = sorted(set(up) - {"verdict"})
    assert up == {
        "begin": [],
        "list_tables": ["begin"],
        "extract": ["list_tables"],
        "datasets": ["extract"],
        "validate": ["datasets"],
        "plan": ["validate"],
        "forecast": ["plan"],
        "score": ["plan"],
        "partitions": ["plan"],
        # the customers' order lines, once every shard of SKUs has fitted its lines
        "score_records": ["partitions", "score"],
        "adjust": ["forecast"],
        "reconcile": ["forecast"],
        "load": ["adjust", "reconcile", "score", "score_records"],
        "alert_incidents": ["load"],
        "report": ["alert_incidents", "load"],
        "send_report": ["report"],
        "prune": ["send_report"],
        "verdict": everything,
    }
    # the steps that report what there is run whatever failed before them
    rules = {t.task_id: t.trigger_rule for t in dag.tasks}
    assert {k for k, v in rules.items() if v == "all_done"} == {
        "datasets",
        "plan",
        "load",
        "alert_incidents",
        "report",
        "send_report",
        "prune",
        "verdict",
    }
    assert {a.name for a in dag.get_task("load").outlets} >= {
        "seam.seam_forecasts",
        "seam.seam_anomaly_scores",
    }


def test_extraction_is_capped_by_the_source_pool(dagbag):
    assert dagbag.dags["seam_nightly"].get_task("extract").pool == "source_databases"


def test_no_heavy_imports_at_parse_time():
    heavy = {"pandas", "statsmodels", "great_expectations", "pyarrow", "sqlalchemy"}
    for path in DAGS.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only; imports inside tasks are fine
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & heavy, f"{path.name} imports {names} at parse time"
            own = [n for n in names if n.split(".")[0] == "pipelines"]
            assert own in ([], ["pipelines.schedule"]), f"{path.name} imports {own} at parse time"


def test_parse_time_imports_stay_light():
    """What a DAG file loads at parse time (pipelines.schedule) pulls in no heavy library."""
    import subprocess
    import sys

    code = (
        "import sys; import pipelines.schedule; "
        "print(sorted(m for m in ('pandas', 'pyarrow', 'sqlalchemy', 'statsmodels', 'great_expectations') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
