"""Fixtures: real appliances on real SQLite files, served by Cheroot on a free loopback port."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from appliance.config import Settings
from appliance.datadir import DATABASE_FILE
from appliance.db import connect
from appliance.server import Appliance

PROJECT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("APPLIANCE_SHARED", PROJECT.parent / "shared"))
PHOTOS = SHARED / "testdata" / "photos"
FACES = SHARED / "testdata" / "faces"
MODELS = SHARED / "models"

TABLES = ("images", "albums", "album_images", "objects", "faces", "people", "counters", "jobs", "job_items")


class Client:
    """A requests session bound to one server, with the few helpers every test wants."""

    def __init__(self, url: str, data_dir: Path, token: str | None = None):
        self.url = url
        self.data_dir = data_dir
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=30, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def wait_for_job(self, job_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            progress = self.get(f"/images/jobs/{job_id}").json()
            if progress["finished"]:
                return progress
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} did not finish in {timeout}s: {progress}")

    def ingest(self, folder: Path) -> dict:
        response = self.post("/images/add-folder", json={"folder_path": str(folder)})
        assert response.status_code == 202, response.text
        return self.wait_for_job(response.json()["job_id"])

    def row(self, sql: str, *args) -> tuple | None:
        """One row straight from the database, for facts no route shows."""
        conn = connect(self.data_dir / DATABASE_FILE)
        try:
            found = conn.execute(sql, args).fetchone()
            return tuple(found) if found else None
        finally:
            conn.close()

    def snapshot(self) -> dict:
        """Every row of every table, to show a refused request changed nothing."""
        conn = connect(self.data_dir / DATABASE_FILE)
        try:
            return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in TABLES}
        finally:
            conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_images(folder: Path, count: int, size=(64, 48), seed: int = 0) -> list[Path]:
    """Distinct small JPEGs (random colours, so no two share a content hash)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"img_{i:05d}.jpg"
        colour = tuple(rng.randrange(256) for _ in range(3))
        image = Image.new("RGB", size, colour)
        image.putpixel((i % size[0], 0), (255 - colour[0], 0, 0))
        image.save(path, quality=90)
        paths.append(path)
    return paths


@pytest.fixture
def library(tmp_path) -> Path:
    root = tmp_path / "library"
    root.mkdir()
    return root


@pytest.fixture
def start_appliance(tmp_path, library):
    """Start in-process appliances (real Cheroot on a loopback port); all are stopped after the test."""
    started = []

    def start(**overrides) -> Client:
        values = {
            "host": "127.0.0.1",
            "port": 0,
            "data_dir": tmp_path / "data",
            "library_roots": [library, PHOTOS, FACES],
            "models_dir": MODELS,
            "server_threads": 4,
            # The roots hold the shared test photos: watching them would index them behind a test's back.
            # The tests of watching turn it on.
            "watch": False,
            **overrides,
        }
        appliance = Appliance(Settings(**values))
        appliance.start()
        started.append(appliance)
        client = Client(f"http://127.0.0.1:{appliance.port}", appliance.settings.data_dir, values.get("api_token"))
        client.appliance = appliance  # for the few tests that drive a service directly
        return client

    yield start
    for appliance in started:
        appliance.stop()


@pytest.fixture
def client(start_appliance) -> Client:
    return start_appliance()


class ServerProcess:
    """`appliance serve` in a subprocess, for what only a real process shows: signals, kill -9, the CLI."""

    def __init__(self, data_dir: Path, roots: list[Path], *extra: str, env: dict | None = None):
        self.port = free_port()
        self.data_dir = data_dir
        args = [sys.executable, "-m", "appliance", "serve", "--port", str(self.port), "--data-dir", str(data_dir)]
        for root in roots:
            args += ["--library-root", str(root)]
        self.log_path = data_dir.parent / f"server-{self.port}.log"
        self.log = open(self.log_path, "wb")
        watch = [] if any(option in extra for option in ("--watch", "--no-watch")) else ["--no-watch"]
        self.process = subprocess.Popen(
            [*args, "--models-dir", str(MODELS), *watch, *extra],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.client = Client(f"http://127.0.0.1:{self.port}", data_dir)

    def wait_ready(self, timeout: float = 30) -> Client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.output()}")
            try:
                if self.client.get("/health").status_code == 200:
                    return self.client
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"server did not answer in {timeout}s: {self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.log.close()
        return code


@pytest.fixture
def run_server(tmp_path):
    servers = []

    def run(*extra: str, data_dir: Path | None = None, roots=None, env=None) -> ServerProcess:
        server = ServerProcess(data_dir or tmp_path / "data", roots or [tmp_path / "library", PHOTOS], *extra, env=env)
        servers.append(server)
        return server

    yield run
    for server in servers:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)
