"""The Airflow DAG payrecon_t1: it imports cleanly, and `dag.test()` on a simulated day writes the
same bytes as `payrecon recon` on the same day.

Airflow runs in subprocesses against a throwaway AIRFLOW_HOME (its own SQLite metadata database), so
its configuration never leaks into other tests or into the user's ~/airflow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from pipelines.batch.day import run_day
from pipelines.simulate.generator import simulate

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "payrecon_t1.py"
START = date(2026, 11, 2)
# One day keeps the test near half a minute; carry-forward across days is covered by tests/batch,
# and DAG and CLI share every step below the task wrappers.
DAYS = [START]
CHANNELS = ["alipay", "jpbank"]
OUTPUTS = (
    "breaks.csv",
    "breaks.parquet",
    "open_breaks.csv",
    "open_breaks.parquet",
    "closed_breaks.csv",
    "closed_breaks.parquet",
    "summary.json",
)


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FILE.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONPATH": str(REPO),
    }
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return env


def python(env: dict[str, str], code: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)


LOAD = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("payrecon_t1", {str(DAG_FILE)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
dag = module.DAG_T1
"""


@pytest.mark.slow
def test_dag_imports_with_the_expected_shape(airflow_env: dict[str, str]) -> None:
    code = (
        LOAD
        + """
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=str(module.__file__), include_examples=False)
assert not bag.import_errors, bag.import_errors
assert "payrecon_t1" in bag.dag_ids
ids = sorted(t.task_id for t in dag.tasks)
assert ids == ["channel.reconcile", "channel.take_in", "channel.wait_for_files", "plan", "report",
               "stage_internal"], ids
take_in = dag.get_task("channel.take_in")
assert take_in.retries == 3 and take_in.retry_exponential_backoff
assert "channel.wait_for_files" in take_in.upstream_task_ids
assert "channel.reconcile" in dag.get_task("report").upstream_task_ids
print("OK")
"""
    )
    done = python(airflow_env, code)
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


@pytest.mark.slow
def test_dag_test_writes_what_recon_writes(airflow_env: dict[str, str], tmp_path: Path) -> None:
    root = tmp_path / "in"
    simulate(start=START, days=1, payments=600, seed=3, out_root=root, channels=CHANNELS, faults="default")
    dag_out, cli_out = tmp_path / "dag", tmp_path / "cli"
    runs = "\n".join(
        f"""
run = dag.test(logical_date=datetime({d.year}, {d.month}, {d.day}, tzinfo=timezone.utc),
               run_conf={{"input_root": {str(root)!r}, "out_root": {str(dag_out)!r}, "quality_engine": "duckdb",
                          "data_docs": False}})
assert str(run.state) in ("success", "DagRunState.SUCCESS"), run.state
"""
        for d in DAYS
    )
    done = python(airflow_env, LOAD + "from datetime import datetime, timezone\n" + runs + "print('OK')\n")
    assert done.returncode == 0 and "OK" in done.stdout, (done.stdout[-2000:], done.stderr[-4000:])
    for day in DAYS:
        run_day(day, root, cli_out, quality_engine="duckdb", data_docs=False)
    for day in DAYS:
        for name in OUTPUTS:
            assert (dag_out / day.isoformat() / name).read_bytes() == (cli_out / day.isoformat() / name).read_bytes(), (
                day,
                name,
            )
    assert (dag_out / DAYS[0].isoformat() / "report.html").exists()
