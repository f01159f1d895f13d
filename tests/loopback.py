"""A real multi-node Ray on 127.0.0.1: a head and workers, each a `ray start --block` in its own
process group, so a test can kill one node (or all) abruptly, as a lost machine would die."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from test_k8s import free_port

RAY = str(Path(sys.executable).with_name("ray"))
# No auth token: a token file in this machine's home would otherwise switch `ray start` to token auth,
# which drivers started by the tests would then lack.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


class LoopbackCluster:
    """``head_flags`` and each of ``worker_flags`` are extra `ray start` flags (``--num-cpus=1`` ...)."""

    def __init__(self, head_flags: list[str], worker_flags: list[list[str]]) -> None:
        self.temp = tempfile.mkdtemp(
            prefix="ssray", dir="/tmp"
        )  # Ray's socket paths must stay short
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, **RAY_ENV}
        common = ["--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
        self.procs = [
            self._start(
                [
                    RAY,
                    "start",
                    "--head",
                    f"--port={self.port}",
                    f"--temp-dir={self.temp}",
                    "--include-dashboard=false",
                    *common,
                    *head_flags,
                ],
                "head",
            )
        ]
        self.wait_for(nodes=1)
        for i, flags in enumerate(worker_flags, 1):
            self.procs.append(
                self._start(
                    [RAY, "start", f"--address={self.address}", *common, *flags], f"worker{i}"
                )
            )
        self.wait_for(nodes=1 + len(worker_flags))

    def _start(self, argv: list[str], name: str) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(self.temp) / f"{name}.log", "w"),
        )

    def wait_for(self, nodes: int, timeout: float = 120) -> None:
        """Until exactly ``nodes`` nodes are alive (a dead node's loss takes the GCS a while to see)."""
        probe = (
            "import ray; ray.init(log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))"
        )
        deadline = time.monotonic() + timeout
        while True:
            proc = subprocess.run(
                [sys.executable, "-c", probe],
                capture_output=True,
                text=True,
                env={**self.env, "RAY_ADDRESS": self.address},
                timeout=120,
            )
            if proc.returncode == 0 and int(proc.stdout.split()[-1]) == nodes:
                return
            assert time.monotonic() < deadline, proc.stderr[-2000:]
            time.sleep(1)

    def kill_node(self, index: int) -> None:
        """SIGKILL one node's whole process group (raylet, workers and all): no draining."""
        proc = self.procs[index]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def kill(self) -> None:
        """The whole cluster at once, as when a head is lost."""
        for index in range(len(self.procs)):
            self.kill_node(index)
        shutil.rmtree(self.temp, ignore_errors=True)
