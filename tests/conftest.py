"""Shared fixtures: one real local Ray per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from orchestrator.tune.run import _init_ray

    if not ray.is_initialized():
        _init_ray(None)
    yield
    ray.shutdown()
