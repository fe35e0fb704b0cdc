"""What the benchmarks share: `appliance serve` in a subprocess on a free loopback port, and its peak RSS."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def running_server(data_dir: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yields (base URL, process) once /health answers; stops the server afterwards."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance", "serve", "--port", str(port), "--data-dir", str(data_dir), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                requests.get(base + "/health", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield base, server
    finally:
        server.terminate()
        server.wait(30)
