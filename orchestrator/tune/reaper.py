"""Ray processes that outlive a killed driver, ended: the embedded cluster dies with the process that
started it.

A driver stopped normally shuts its embedded Ray down; one killed with SIGKILL cannot, and Ray's raylet and
GCS follow it, but its dashboard and runtime-env agents wait on the raylet for a long time (minutes) and the
agents keep their ports open. So when scalesweep starts Ray itself it also starts this small watcher, in its
own session (a Ctrl-C to the terminal does not reach it): it polls the driver and, once the driver is gone,
kills the processes Ray had started, identified by pid and start time (a pid reused since is left alone).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

POLL_S = 0.5
GRACE_S = 1.0  # after the driver is gone: Ray's own shutdown (a normal exit) gets this long first


def watch_embedded_ray() -> None:
    """Start the watcher for every process the driver has started so far (call right after ``ray.init``)."""
    me = psutil.Process()
    children = [f"{p.pid}:{p.create_time()!r}" for p in me.children(recursive=True)]
    subprocess.Popen(
        [sys.executable, "-m", __name__, f"{me.pid}:{me.create_time()!r}", *children],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def _alive(pid: int, created: float) -> psutil.Process | None:
    """The process, if it still runs (a zombie has exited) and is the one started at ``created``."""
    try:
        process = psutil.Process(pid)
        same = abs(process.create_time() - created) < 0.01
        return process if same and process.status() != psutil.STATUS_ZOMBIE else None
    except psutil.Error:
        return None


def _parse(arg: str) -> tuple[int, float]:
    pid, created = arg.split(":")
    return int(pid), float(created)


def main(driver: str, *processes: str) -> None:
    while _alive(*_parse(driver)):
        time.sleep(POLL_S)
    time.sleep(GRACE_S)
    for arg in processes:
        if process := _alive(*_parse(arg)):
            try:
                process.kill()
            except psutil.Error:
                pass


if __name__ == "__main__":
    os.nice(5)
    main(*sys.argv[1:])
