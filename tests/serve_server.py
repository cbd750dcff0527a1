"""Run ``mtspeech serve`` as a real uvicorn server in a subprocess on a free loopback port (load and page tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (what a process manager sends) and wait for the graceful exit; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@contextlib.contextmanager
def running_server(
    model: Path, *options: str, startup_timeout: float = 120.0, log: Path | None = None
) -> Iterator[Server]:
    """``mtspeech serve --model MODEL OPTIONS`` until the block ends; waits for ``/readyz`` first."""
    port = free_port()
    command = [sys.executable, "-m", "mtspeech", "serve", "--model", str(model), "--port", str(port), *options]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    output = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mtspeech serve exited with status {process.returncode} during startup")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mtspeech serve not ready after {startup_timeout} s")
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.stop()
        if log is not None:
            output.close()
