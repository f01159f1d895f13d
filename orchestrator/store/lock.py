"""One driver per results directory: an OS file lock that dies with its process.

``flock`` is released by the kernel when the holder exits, even on SIGKILL, so a killed driver never
leaves the sweep locked; the file's text only says who holds it, for the error message.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from orchestrator.spec.schema import SpecError

LOCK_FILE = ".driver.lock"


class DriverLock:
    def __init__(self, root: Path) -> None:
        self._path = root / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "DriverLock":
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SpecError(
                f"{self._path.parent}: another driver is running this sweep ({holder}); "
                f"wait for it to finish or stop it, then `scalesweep resume`"
            ) from None
        os.ftruncate(fd, 0)
        os.write(
            fd,
            f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}".encode(),
        )
        self._fd = fd
        return self

    @staticmethod
    def held(root: Path) -> bool:
        """Whether a live driver holds the sweep in ``root`` (probed without taking the lock)."""
        path = root / LOCK_FILE
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
