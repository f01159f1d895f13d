"""The console is the sweep's: the libraries' own log lines (Ray's start-up warnings, MLflow's database
migrations, Optuna's study notices) go to ``driver.log`` in the results directory, where they are at hand
when something goes wrong; ``-v`` shows them on the console as well."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOG_FILE = "driver.log"
MLFLOW_OWN_HANDLERS = "MLFLOW_CONFIGURE_LOGGING"
LIBRARIES = ("ray", "optuna", "mlflow", "alembic", "sqlalchemy", "urllib3", "filelock")


@contextmanager
def library_logs(root: Path, verbose: bool = False) -> Iterator[Path]:
    """While a driver runs: the libraries' loggers write to ``root/driver.log`` (and, when ``verbose``,
    to the console too); their handlers are put back afterwards, so tests and notebooks calling the
    driver in-process keep their logging."""
    path = root / LOG_FILE
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    import optuna  # noqa: F401 - optuna adds its console handler at import: replace it, not before it

    configure = os.environ.get(MLFLOW_OWN_HANDLERS)
    os.environ[MLFLOW_OWN_HANDLERS] = (
        "false"  # else importing mlflow later puts its console handler back
    )
    saved = {}
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate)
        logger.handlers = [*logger.handlers, handler] if verbose else [handler]
        logger.propagate = logger.propagate and verbose
    try:
        yield path
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()
        if configure is None:
            os.environ.pop(MLFLOW_OWN_HANDLERS, None)
        else:
            os.environ[MLFLOW_OWN_HANDLERS] = configure
