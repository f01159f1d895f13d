"""Any program as a trainable: ``trainable: {command: "python train.py"}`` in a spec.

The program gets its config twice, as ``key=value`` arguments (the convention of ``python -m trainables
NAME key=value``) and as JSON in ``SCALESWEEP_CONFIG``. Each line it prints to stdout that is a JSON
object with ``epoch`` is one report; any other line goes to the trial's log. A non-zero exit fails the
trial, with the program's last stderr line as the error. It runs once per seed, as any function does.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .api import Reporter, Trainable
from .errors import ConfigError

CONFIG_ENV = "SCALESWEEP_CONFIG"


def argument(value: Any) -> str:
    """A config value as a command-line argument: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Command:
    """``train(config, report)`` running ``argv`` in ``cwd`` (the spec's directory, where it exists)."""

    argv: tuple[str, ...]
    cwd: str | None = None

    def __call__(self, config: dict[str, Any], report: Reporter) -> None:
        args = [f"{k}={argument(v)}" for k, v in config.items()]
        env = {**os.environ, CONFIG_ENV: json.dumps(config)}
        cwd = self.cwd if self.cwd and Path(self.cwd).is_dir() else None
        proc = subprocess.Popen(
            [*self.argv, *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        tail: deque[str] = deque(maxlen=20)
        errors = threading.Thread(target=_drain, args=(proc.stderr, tail), daemon=True)
        errors.start()
        try:
            for line in proc.stdout:
                parsed = _report_line(line)
                if parsed is None:
                    print(line, end="", flush=True)  # the trial's log
                else:
                    report(parsed)
            code = proc.wait()
        finally:
            if (
                proc.poll() is None
            ):  # the trial was stopped, or reporting failed: do not leave it running
                proc.kill()
                proc.wait()
        errors.join()
        if code != 0:
            last = next((t for t in reversed(tail) if t.strip()), "no output on stderr")
            raise RuntimeError(f"{shlex.join(self.argv)} exited with code {code}: {last.strip()}")


def _drain(stream: Any, tail: deque[str]) -> None:
    for line in stream:
        tail.append(line)
        print(line, end="", file=sys.stderr, flush=True)


def _report_line(line: str) -> dict[str, Any] | None:
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) and "epoch" in value else None


def command_trainable(spec: Mapping[str, Any], directory: str | Path) -> Trainable:
    """The trainable of ``{command: "..."}``; ConfigError when the program cannot be found."""
    argv = tuple(shlex.split(str(spec.get("command", ""))))
    if not argv:
        raise ConfigError("trainable.command", "expected a command line, e.g. python train.py")
    here = Path(directory).resolve()
    if shutil.which(argv[0]) is None and shutil.which(str(here / argv[0])) is None:
        raise ConfigError(
            "trainable.command", f"{argv[0]!r} not found on PATH or in {here}; expected a program"
        )
    for arg in argv[1:]:
        if arg.endswith(".py") and not (here / arg).exists() and not Path(arg).exists():
            raise ConfigError("trainable.command", f"{arg!r}: no such file in {here}")
    return Trainable(train=Command(argv, str(here)), name=shlex.join(argv))
