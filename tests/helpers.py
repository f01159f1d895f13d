"""Helpers for tests: write a spec, run the CLI as a user would."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def scalesweep(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: a fresh process, captured stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
