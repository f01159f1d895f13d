"""Two things done straight to an MLflow sqlite database, where MLflow's own way costs a core's
seconds in every sweep: a new database starts as a copy of one that MLflow migrated once per MLflow
version (its migrations run a hundred scripts), and metric values go in as one bulk insert (MLflow's
``log_batch`` adds them through its ORM, one object per value). Both write MLflow's tables through
MLflow's own table definitions. Any other store, or a database these definitions do not match,
goes through MLflow's client (:func:`insert_metrics` returns False and writes nothing).
``benchmarks/mlflow_sqlite.py`` measures both against MLflow's own way.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities import Metric
    from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

_MAX_DOUBLE = 1.7976931348623157e308  # MLflow stores ±inf as ±the largest double
_unusable: set[str] = set()  # URIs where the bulk insert failed once: MLflow's client from then on


def database(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI; None for any other store and for ``:memory:``."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scalesweep"


def _template() -> Path:
    """An empty database migrated by this MLflow, without the default experiment (whose artifact
    location names the directory it was created for): MLflow adds it on a copy's first open."""
    import mlflow
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path = _cache_dir() / f"mlflow-{mlflow.__version__}.db"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        draft = Path(tmp) / path.name
        store = SqlAlchemyStore(f"sqlite:///{draft}", str(Path(tmp) / "artifacts"))
        store.engine.dispose()
        with sqlite3.connect(draft) as db:
            db.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")
        db.close()
        os.replace(draft, path)  # atomic: a sweep beside this one copies a whole template or none
    return path


def prepare(uri: str) -> None:
    """Before MLflow first opens ``uri``: a sqlite database that does not exist yet becomes a copy of
    the migrated template. Where the cache cannot be written, MLflow creates the database itself."""
    path = database(uri)
    if path is None or path.exists():
        return
    try:
        template = _template()
        path.parent.mkdir(parents=True, exist_ok=True)
        copy = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            shutil.copyfile(template, copy)
            os.link(copy, path)  # fails where another process created the database meanwhile
        finally:
            copy.unlink(missing_ok=True)
    # a cache it cannot write, a read-only home: the sweep is only slower, never stopped
    except Exception as err:
        logger.debug("no template for %s (%s): MLflow creates the database", uri, err)


@functools.cache
def _engine(uri: str) -> "Engine":
    import sqlalchemy

    return sqlalchemy.create_engine(uri)


def _stored(value: float) -> tuple[float, bool]:
    """(value, is_nan) as MLflow stores a metric value."""
    if math.isnan(value):
        return 0.0, True
    if math.isinf(value):
        return math.copysign(_MAX_DOUBLE, value), False
    return value, False


def insert_metrics(uri: str, run_id: str, metrics: Sequence["Metric"]) -> bool:
    """Write ``metrics`` of run ``run_id`` into ``uri``'s tables in one transaction, as MLflow's
    ``log_batch`` does: a value already there is kept once, ``latest_metrics`` moves to the largest
    (step, timestamp, value) per key. False (and nothing written) where ``uri`` is not a sqlite
    database, a name is one MLflow refuses, or the tables are not MLflow's as this version has them."""
    if database(uri) is None or uri in _unusable:
        return False
    if not metrics:
        return True
    import sqlalchemy
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric
    from mlflow.utils.validation import _validate_metric_name
    from sqlalchemy.dialects.sqlite import insert

    try:
        for key in {m.key for m in metrics}:
            _validate_metric_name(key)
    except MlflowException:
        return False  # MLflow's client says what is wrong with the name
    rows = []
    for m in metrics:
        value, is_nan = _stored(float(m.value))
        rows.append(
            {
                "run_uuid": run_id,
                "key": m.key,
                "value": value,
                "timestamp": m.timestamp,
                "step": m.step,
                "is_nan": is_nan,
            }
        )
    latest: dict[str, dict] = {}
    for row in rows:
        held = latest.get(row["key"])
        if held is None or _order(row) > _order(held):
            latest[row["key"]] = row
    table = SqlLatestMetric.__table__
    upsert = insert(table)
    upsert = upsert.on_conflict_do_update(
        index_elements=[table.c.key, table.c.run_uuid],
        set_={c: upsert.excluded[c] for c in ("value", "timestamp", "step", "is_nan")},
        where=sqlalchemy.tuple_(
            upsert.excluded.step, upsert.excluded.timestamp, upsert.excluded.value
        )
        > sqlalchemy.tuple_(table.c.step, table.c.timestamp, table.c.value),
    )
    try:
        with _engine(uri).begin() as conn:
            conn.execute(SqlMetric.__table__.insert().prefix_with("OR IGNORE"), rows)
            conn.execute(upsert, list(latest.values()))
    except sqlalchemy.exc.SQLAlchemyError as err:
        _unusable.add(uri)
        logger.debug("bulk insert into %s failed (%s): MLflow's client from now on", uri, err)
        return False
    return True


def _order(row: dict) -> tuple[int, int, float]:
    return row["step"], row["timestamp"], row["value"]
