"""A sweep run as a researcher runs it, on a terminal: its screens read back through a terminal emulator."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pyte


def _user_env() -> dict[str, str]:
    """The environment as a user's shell has it: without the auth mode a Ray started earlier in this test
    process set for itself (its children would then start Ray without its start-up warning)."""
    return {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}


def run_in_terminal(spec: Path, cwd: Path, columns: int = 100, lines: int = 40) -> list[list[str]]:
    """``scalesweep run SPEC`` in a pseudo-terminal: every screen it drew, read as a terminal shows it."""
    screen = pyte.Screen(columns, lines)
    stream = pyte.ByteStream(screen)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", str(spec)],
        cwd=cwd,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**_user_env(), "COLUMNS": str(columns), "LINES": str(lines), "TERM": "xterm-256color"},
    )
    os.close(follower)
    screens: list[list[str]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the sweep exited and closed its terminal
                break
            if not chunk:
                break
            stream.feed(chunk)
            screens.append(list(screen.display))
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, "\n".join(screens[-1] if screens else [])
    return screens
