"""The sqlite shortcuts (orchestrator/store/mlflow_sqlite.py) against MLflow's own way, on real
databases read back through MLflow's client: what they write must be what MLflow would have."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from orchestrator.store.mlflow_sqlite import insert_metrics, prepare

T0 = 1_700_000_000_000
BATCHES = [
    [Metric("loss", 1.0, T0, 0), Metric("loss", 0.5, T0 + 1, 1), Metric("acc", 0.25, T0, 0)]
    + [Metric("acc", math.nan, T0 + 2, 2), Metric("loss", math.inf, T0 + 2, 2)]
    + [Metric("loss", 0.5, T0 + 1, 1)],  # the same value twice: stored once
    [Metric("loss", -math.inf, T0 + 3, 3), Metric("acc", 0.75, T0 + 3, 3)]
    + [Metric("loss", 0.5, T0 + 1, 1)],  # already stored by the batch before
    [Metric("loss", 9.0, T0 + 9, 1), Metric("acc", 0.1, T0 + 9, 2)],  # late, older steps
]


def _read(client: MlflowClient, run_id: str) -> tuple[dict, dict]:
    run = client.get_run(run_id)
    histories = {
        key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key))
        for key in ("loss", "acc")
    }
    return histories, run.data.metrics


def _same(a: object, b: object) -> bool:
    """Equal, where NaN equals NaN (MLflow reads a stored NaN back as NaN)."""
    return repr(a) == repr(b)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache" / "scalesweep"


def test_bulk_inserted_metrics_read_back_as_log_batch_writes_them(cache: Path) -> None:
    clients = {way: MlflowClient(f"sqlite:///{way}.db") for way in ("mlflow", "bulk")}
    runs = {way: c.create_run(c.create_experiment("x")).info.run_id for way, c in clients.items()}
    for batch in BATCHES:
        clients["mlflow"].log_batch(runs["mlflow"], metrics=batch)
        assert insert_metrics(clients["bulk"].tracking_uri, runs["bulk"], batch)
    ours, theirs = (_read(clients[w], runs[w]) for w in ("bulk", "mlflow"))
    assert _same(ours, theirs)
    histories, latest = ours
    assert len(histories["loss"]) == 5  # 1.0, 0.5 once, the late 9.0, +inf, -inf
    assert latest["loss"] == -1.7976931348623157e308  # step 3 is the latest; step 1's 9.0 is not
    assert math.isnan(histories["acc"][1][2])  # step 2, logged as NaN


def test_a_database_from_the_template_is_the_one_mlflow_creates(cache: Path) -> None:
    prepare("sqlite:///copied.db")
    assert (template := next(cache.glob("mlflow-*.db"))).exists()
    made = template.stat().st_mtime_ns
    prepare("sqlite:///sub/second.db")  # a second database copies the template, migrating nothing
    assert template.stat().st_mtime_ns == made and Path("sub/second.db").exists()

    created, copied = MlflowClient("sqlite:///created.db"), MlflowClient("sqlite:///copied.db")
    for client in (created, copied):
        assert client.create_experiment("first") == "1"
    default = [c.get_experiment("0") for c in (created, copied)]
    assert default[0].artifact_location == default[1].artifact_location
    assert default[1].artifact_location.endswith(f"{Path.cwd().name}/mlruns/0")

    def schema(path: str) -> dict:
        """Each table's columns (name, type, not null, default, key) and indexes; the alembic revision.
        Not the tables' SQL text: MLflow's own migrations vary its column order from run to run."""
        with sqlite3.connect(path) as db:
            tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return {
                "revision": db.execute("SELECT * FROM alembic_version").fetchall(),
                **{
                    t: (
                        sorted(c[1:] for c in db.execute(f"PRAGMA table_info('{t}')")),
                        sorted(i[1:3] for i in db.execute(f"PRAGMA index_list('{t}')")),
                    )
                    for t in tables
                },
            }

    assert schema("copied.db") == schema("created.db")


def test_a_database_that_exists_is_left_as_it_is(cache: Path) -> None:
    Path("mine.db").write_bytes(b"")
    prepare("sqlite:///mine.db")
    assert Path("mine.db").read_bytes() == b"" and not cache.exists()


def test_what_the_bulk_insert_cannot_take_goes_to_mlflow(cache: Path) -> None:
    batch = BATCHES[0]
    assert not insert_metrics("http://127.0.0.1:5000", "r", batch)  # a server
    assert not insert_metrics("sqlite:///:memory:", "r", batch)
    with sqlite3.connect("other.db") as db:  # not MLflow's tables: nothing written, then no retry
        db.execute("CREATE TABLE metrics (x INTEGER)")
    assert not insert_metrics("sqlite:///other.db", "r", batch)
    with sqlite3.connect("other.db") as db:
        assert db.execute("SELECT count(*) FROM metrics").fetchone() == (0,)
    client = MlflowClient("sqlite:///named.db")
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    assert not insert_metrics(client.tracking_uri, run_id, [Metric("../up", 1.0, T0, 0)])


def test_without_a_writable_cache_mlflow_creates_the_database(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("not-a-dir").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", "not-a-dir")
    prepare("sqlite:///new.db")
    assert not Path("new.db").exists() and not list(Path.cwd().glob(".new.db.*"))
    client = MlflowClient("sqlite:///new.db")
    assert client.create_experiment("x") == "1"
