"""A real ``mlflow server`` on 127.0.0.1, for tests and benchmarks: started, killed, restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from test_k8s import free_port


class Server:
    """``python -m mlflow server`` with one worker on a sqlite store under ``root`` that outlives the
    process, so a test can SIGKILL it mid-sweep and start it again on the same store and port."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{self.root}/mlflow.db",
                "--artifacts-destination",
                str(self.root / "artifacts"),
            ],
            cwd=self.root,
            # its job runner (a dozen huey consumer processes) serves features no test uses
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "a"),
            start_new_session=True,
        )  # its own process group: kill() reaches uvicorn's worker too
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"{self.uri}/health", timeout=2)
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.3)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
